"""`pipeline("video-classification", model=<AV-CANet folder or Hub id>, trust_remote_code=True)` for AV-CANet.

transformers' own video-classification pipeline reads frames only and expects `config.num_frames`; AV-CANet needs the
frames and the sound of the same file, sampled by its processor. A saved AV-CANet folder therefore names this class
in its `config.json` (`custom_pipelines`, as `Pipeline.save_pretrained` writes it for a registered custom pipeline)
and carries this file next to the processor's, so `pipeline()` loads it as remote code.

The emotion timeline comes from the model's structure: the per-segment logits average to the prediction, and each is
exactly the sum of an audio part and a visual part (the two halves of the linear classifier).
"""

import torch
from transformers import Pipeline

from .errors import VideoDecodingError
from .video_decoding import is_single_video


WINDOW_OPTIONS = ("window_seconds", "window_stride", "num_clips", "num_crops")  # `window_inference`


def segment_timeline(
    segment_logits, audio_segment_logits, visual_segment_logits, time_spans, id2label, has_audio: bool = True
) -> list[dict]:
    """One entry per segment, in time order, from one video's `(num_segments, num_labels)` segment logits (and their
    audio and visual halves) and its `(num_segments, 2)` time spans in seconds.

    Each entry holds `start` and `end`, the segment's top `label` and its probability `score`, all class
    `probabilities`, and where that label's lead over the average class comes from: `audio` and `visual` are the two
    parts of the label's logit minus the mean logit (they sum to that lead, which the softmax sees), and `audio_share`
    is the audio's fraction of the support, the parts that are positive (a part below zero argues against the label;
    the top label's lead is never negative, so some part supports it).

    A video without audio (`has_audio=False`: no audio track, `audio_mask` 0) has no sound to credit: its `audio`
    part is what the model's learned no-audio embedding contributes (the silence baseline, the same for every silent
    video), so each entry's `audio_share` is `None` and `audio_baseline` is `True`.
    """
    probabilities = segment_logits.float().softmax(dim=-1)  # (S, labels)
    audio = audio_segment_logits.float() - audio_segment_logits.float().mean(dim=-1, keepdim=True)
    visual = visual_segment_logits.float() - visual_segment_logits.float().mean(dim=-1, keepdim=True)
    entries = []
    for segment in torch.argsort(time_spans[:, 0], stable=True).tolist():
        top = int(probabilities[segment].argmax())
        audio_part, visual_part = float(audio[segment, top]), float(visual[segment, top])
        support = max(audio_part, 0.0) + max(visual_part, 0.0)
        entries.append(
            {
                "start": round(float(time_spans[segment, 0]), 3),
                "end": round(float(time_spans[segment, 1]), 3),
                "label": id2label[top],
                "score": round(float(probabilities[segment, top]), 4),
                "probabilities": {id2label[k]: round(float(p), 4) for k, p in enumerate(probabilities[segment])},
                "audio": round(audio_part, 4),
                "visual": round(visual_part, 4),
                "audio_share": round(max(audio_part, 0.0) / max(support, 1e-12), 4) if has_audio else None,
            }
        )
        if not has_audio:
            entries[-1]["audio_baseline"] = True
    return entries


def video_status(audio_mask, video_truncated=None, decoded_seconds=None) -> dict:
    """What one answer rests on, from the processor's `audio_mask` and (`return_video_status=True`) its
    `video_truncated` and `video_decoded_seconds` of that video: `audio` (False: no audio track, the answer comes
    from the picture and the model's silence baseline), `truncated` (True: the picture could not be decoded past a
    point, only the prefix was used) and then `decoded_seconds`, the length of that prefix."""
    status = {"audio": bool(int(audio_mask)), "truncated": bool(video_truncated is not None and int(video_truncated))}
    if status["truncated"] and decoded_seconds is not None:
        status["decoded_seconds"] = round(float(decoded_seconds), 3)
    return status


def as_processor_input(video):
    """A video as the processor takes it: a `datasets` cell stored undecoded (`{"path", "bytes"}`) becomes its bytes
    or path; everything else (paths, bytes, file objects, torchcodec decoders from a decoded `Video()` column, decoded
    frames) passes unchanged."""
    if isinstance(video, dict):
        if video.get("bytes") is None and video.get("path") is None:
            raise VideoDecodingError(repr(video)[:80], "a video dict needs a 'path' or 'bytes' entry")
        return video.get("bytes") or video["path"]
    return video


class AVCANetVideoClassificationPipeline(Pipeline):
    r"""
    Emotion recognition from the frames and the sound of videos.

    ```python
    >>> from transformers import pipeline
    >>> classifier = pipeline("video-classification", model="outputs/avcanet-demo", trust_remote_code=True)
    >>> classifier("clip.mp4", top_k=2)
    [{'label': 'Fear', 'score': 0.91, 'polarity': 'negative', 'audio': True, 'truncated': False}, ...]
    >>> classifier(["a.mp4", b"<mp4 bytes>"], batch_size=2)  # one list per video
    >>> classifier("clip.mp4", timeline=True)  # {"labels": [...], "timeline": [{"start", "end", "label", ...}]}
    ```

    Videos: paths, bytes, binary file objects, `datasets` `Video()` cells (decoded torchcodec decoders
    or undecoded `{"path", "bytes"}` dicts), or decoded frames; one or a list of them. The audio is read from the same
    file. An unreadable video raises `VideoDecodingError` (a `ValueError`) naming it and the cause.

    Every answer says what it rests on (`video_status`): `"audio": False` for a video without an audio track (its
    timeline then has `audio_share` None), `"truncated": True` (and `"decoded_seconds"`) for a video whose picture
    could not be decoded past a point. In the plain list these keys are in each label's dict; with `timeline=True`
    they are in the answer's dict.
    """

    _load_processor = None  # tried, and None when missing: `__init__` then says how to add it
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None:  # an `AVCANetOnnxModel` passed as the model object carries its processor
            self.processor = getattr(self.model, "processor", None)
        if self.processor is None:
            raise ValueError(
                "The AV-CANet pipeline needs the model's processor (AutoProcessor) in the same folder or repository, "
                "and none could be loaded from there. Save it beside the model: `processor.save_pretrained(folder)` "
                "(`AVCANetProcessor.from_model_config(model.config)` is the processor of the model's sizes), or pass "
                "`processor=` to `pipeline()`."
            )
        # batching pads with the feature extractor's settings (all AV-CANet inputs of a model have one shape)
        self.feature_extractor = self.processor.feature_extractor

    def save_pretrained(self, save_directory, **kwargs):
        """Save the model and its processor (whose code includes this file), so the folder works with `pipeline()`
        again; the base class would save the feature extractor alone."""
        self.model.save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory, **kwargs)

    def _sanitize_parameters(self, top_k=None, timeline=None):
        postprocess_params = {}
        if top_k is not None:
            postprocess_params["top_k"] = top_k
        if timeline is not None:
            postprocess_params["timeline"] = timeline
        return {}, {}, postprocess_params

    def __call__(self, inputs, **kwargs):
        """
        Args:
            inputs: one video or a list of them (see the class docstring).
            top_k (`int`, *optional*, defaults to 5): labels returned per video (at most the model's number).
            timeline (`bool`, *optional*, defaults to `False`): also return the per-segment emotion timeline.
            batch_size (`int`, *optional*): videos per model call for a list of videos.
            window_seconds, window_stride (`float`, *optional*): predict each window of `window_seconds` seconds,
                every `window_stride` seconds (default `window_seconds`); the answer gets `windows`, one entry per
                window (`window_inference`), and `batch_size` counts windows per model call.
            num_clips, num_crops (`int`, *optional*, default 1): test-time views, averaged (`window_inference`).

        Returns:
            Per video, a list of `{"label", "score", "polarity", "audio", "truncated"}` dicts, best first; with
            `timeline=True`, a dict `{"labels": [{"label", "score", "polarity"}, ...], "timeline":
            segment_timeline(...), "audio", "truncated"}`. A list of those for a list of videos. `"audio": False`:
            the video has no audio track; `"truncated": True`: its picture could not be decoded past
            `"decoded_seconds"`.
        """
        options = {name: kwargs.pop(name) for name in WINDOW_OPTIONS if name in kwargs}
        if options:
            from .window_inference import window_options_given  # imported here: it imports `segment_timeline`

            if window_options_given(options):  # long videos and multi-view
                return self._classify_in_windows(inputs, options, **kwargs)
        return super().__call__(inputs, **kwargs)

    def _classify_in_windows(self, inputs, options, top_k=5, timeline=False, batch_size=4, **unused):
        """`window_inference.classify_in_windows` per video; a plain multi-view answer keeps the usual form."""
        from .window_inference import classify_in_windows

        videos = [inputs] if is_single_video(inputs) or isinstance(inputs, dict) else list(inputs)
        results = []
        for video in videos:
            result = classify_in_windows(self.model, self.processor, as_processor_input(video), **options,
                                         batch_size=batch_size, top_k=top_k, timeline=timeline)  # fmt: skip
            status = {"audio": result["audio"], "truncated": result["truncated"]}
            labels = [{**entry, **status} for entry in result["labels"]]
            results.append(result if timeline or "windows" in result else labels)
        return results[0] if len(videos) == 1 and (is_single_video(inputs) or isinstance(inputs, dict)) else results

    def preprocess(self, video):
        inputs = self.processor(videos=as_processor_input(video), return_time_spans=True, return_video_status=True)
        return dict(inputs)

    def _forward(self, model_inputs):
        time_spans = model_inputs.pop("segment_time_spans")
        status = {key: model_inputs.pop(key) for key in ("video_truncated", "video_decoded_seconds")}
        outputs = self.model(**model_inputs)
        return {
            **status,
            "audio_mask": model_inputs["audio_mask"],
            "logits": outputs.logits,
            "segment_logits": outputs.segment_logits,
            "audio_segment_logits": outputs.audio_segment_logits,
            "visual_segment_logits": outputs.visual_segment_logits,
            "segment_time_spans": time_spans,
        }

    def postprocess(self, model_outputs, top_k=5, timeline=False):
        config = self.model.config
        probabilities = model_outputs["logits"][0].float().softmax(dim=-1)
        scores, indices = probabilities.topk(min(top_k, config.num_labels))
        polarities = getattr(config, "label_polarities", None) or {}
        status = video_status(
            model_outputs["audio_mask"][0],
            model_outputs["video_truncated"][0],
            model_outputs["video_decoded_seconds"][0],
        )
        labels = []
        for score, index in zip(scores.tolist(), indices.tolist()):
            label = config.id2label[index]
            labels.append({"label": label, "score": score, "polarity": polarities.get(label)})
        if not timeline:
            return [{**entry, **status} for entry in labels]
        entries = segment_timeline(
            model_outputs["segment_logits"][0],
            model_outputs["audio_segment_logits"][0],
            model_outputs["visual_segment_logits"][0],
            model_outputs["segment_time_spans"][0],
            config.id2label,
            has_audio=status["audio"],
        )
        return {"labels": labels, "timeline": entries, **status}


__all__ = ["AVCANetVideoClassificationPipeline", "segment_timeline", "video_status"]
