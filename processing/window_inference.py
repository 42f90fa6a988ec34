"""Predictions for long videos (sliding windows) and multi-view tests: what the pipeline, `examples/predict.py` and the
demo return when given `window_seconds` / `window_stride` or `num_clips` / `num_crops`.

The model runs on a few windows at a time while the processor decodes the video in one pass
(`windows.iter_window_batches`), so memory does not grow with the video's length.

Aggregation, and why: every score is a mean of logits, never of probabilities. The model's own prediction is already
the mean of its per-segment logits; the views of a window, and the windows of a video, extend that same temporal mean,
so each result still splits exactly into an audio part and a visual part (the two halves of the linear classifier) and
the video's logits are the mean of all its windows' segment logits. Each window counts once (the last one, aligned to
the end, overlaps its neighbour more when `window_stride` does not divide the video).
"""

import torch

from .pipeline_avcanet import WINDOW_OPTIONS, segment_timeline
from .windows import average_views


def top_labels(logits: torch.Tensor, config, top_k: int) -> list[dict]:
    """`[{"label", "score", "polarity"}]`, best first, from one video's `(num_labels,)` logits."""
    probabilities = logits.float().softmax(dim=-1)
    scores, indices = probabilities.topk(min(top_k, config.num_labels))
    polarities = getattr(config, "label_polarities", None) or {}
    labels = []
    for score, index in zip(scores.tolist(), indices.tolist()):
        label = config.id2label[index]
        labels.append({"label": label, "score": round(score, 4), "polarity": polarities.get(label)})
    return labels


def classify_in_windows(
    model,
    processor,
    video,
    window_seconds: float | None = None,
    window_stride: float | None = None,
    num_clips: int = 1,
    num_crops: int = 1,
    batch_size: int = 4,
    top_k: int = 5,
    timeline: bool = False,
    bf16: bool = False,
) -> dict:
    """One video's prediction from its windows (the whole video as one window without `window_seconds`), each the
    mean of its `num_clips * num_crops` views.

    Returns:
        `{"labels": [...], "audio", "truncated"}`: the video's top-k labels from the mean of its windows' logits (see
        the module docstring), and what they rest on (`pipeline_avcanet.video_status`: `"audio"` False when no
        window has sound);
        with `window_seconds`, `"windows"`: one entry per window in time order, as `segment_timeline` makes them
        (`start`, `end`, top `label`, `score`, `probabilities`, `audio`, `visual`, `audio_share`); with `timeline`,
        `"timeline"`: the segment entries of every window on the video's time axis (a segment's span covers its
        frames in all temporal views).
    """
    config = model.config
    device = model.device  # an `AVCANetOnnxModel` has no parameters: it says the CPU
    views = num_clips * num_crops
    window_parts, segment_parts, has_audio = [], [], False
    batches = processor.iter_windows(video, window_seconds, window_stride, num_clips, num_crops, batch_size)
    for batch in batches:
        window_spans, segment_spans = batch.pop("window_spans"), batch.pop("segment_time_spans")
        batch.pop("window_index")
        has_audio = has_audio or bool(batch["audio_mask"].any())
        inputs = {key: value.to(device) for key, value in batch.items()}
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            outputs = model(**inputs)
        # (windows * views, S, labels) -> (windows, S, labels): each segment averaged over the views
        parts = [average_views(outputs[name].float().cpu(), views) for name in
                 ("segment_logits", "audio_segment_logits", "visual_segment_logits")]  # fmt: skip
        window_parts.append((*(part.mean(dim=1) for part in parts), window_spans))
        if timeline:
            spans = segment_spans.reshape(len(window_spans), views, *segment_spans.shape[1:])  # (windows, V, S, 2)
            spans = torch.stack([spans[..., 0].amin(dim=1), spans[..., 1].amax(dim=1)], dim=-1)  # (windows, S, 2)
            segment_parts.append((*parts, spans))
    logits, audio, visual, spans = (torch.cat(column) for column in zip(*window_parts))  # (windows, labels)
    # a picture that stops decoding raises here (`VideoDecodingError`), so no answer rests on a truncated prefix
    result = {"labels": top_labels(logits.mean(dim=0), config, top_k), "audio": has_audio, "truncated": False}
    if window_seconds is not None:
        result["windows"] = segment_timeline(logits, audio, visual, spans, config.id2label, has_audio=has_audio)
    if timeline:
        logits, audio, visual, spans = (torch.cat(column).flatten(0, 1) for column in zip(*segment_parts))
        result["timeline"] = segment_timeline(logits, audio, visual, spans, config.id2label, has_audio=has_audio)
    return result


def window_options_given(options: dict) -> bool:
    """Whether any window or view option asks for more than the plain prediction."""
    return (
        options.get("window_seconds") is not None
        or options.get("window_stride") is not None
        or options.get("num_clips", 1) != 1
        or options.get("num_crops", 1) != 1
    )


__all__ = ["WINDOW_OPTIONS", "classify_in_windows", "top_labels", "window_options_given"]
