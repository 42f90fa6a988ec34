"""The emotion timeline of a video: JSON entries per segment and a PNG plot, shared by `predict.py` and the demo.

The entries come from the model's own structure (`processing.pipeline_avcanet.segment_timeline`): the per-segment
logits average to the prediction, and each splits exactly into an audio part and a visual part.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402

AUDIO_COLOR, VISUAL_COLOR = "#1f77b4", "#ff7f0e"


def timelines(outputs, time_spans, id2label, audio_mask=None) -> list[list[dict]]:
    """One timeline per video of a batch, from `AVCANetForVideoClassification` outputs and the processor's
    `segment_time_spans` `(batch, num_segments, 2)`; a video whose `audio_mask` is 0 (no audio track) gets no audio
    share (`segment_timeline`'s `has_audio`)."""
    from processing.pipeline_avcanet import segment_timeline  # the package; the demo needs only the plot

    return [
        segment_timeline(
            outputs.segment_logits[row].cpu(),
            outputs.audio_segment_logits[row].cpu(),
            outputs.visual_segment_logits[row].cpu(),
            time_spans[row].cpu(),
            id2label,
            has_audio=audio_mask is None or bool(audio_mask[row]),
        )
        for row in range(len(time_spans))
    ]


def plot_timeline(entries: list[dict], title: str = ""):
    """A figure of two panels over time: the probability of every class per segment, and the audio and visual parts
    of each segment's top label (with the audio's share of its support)."""
    labels = list(entries[0]["probabilities"])
    centres = [(entry["start"] + entry["end"]) / 2 for entry in entries]
    widths = [max(entry["end"] - entry["start"], 1e-3) for entry in entries]
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}, constrained_layout=True
    )
    class_colors = plt.get_cmap("tab10").colors[2:]  # blue and orange stay for audio and visual
    for index, label in enumerate(labels):
        probabilities = [entry["probabilities"][label] for entry in entries]
        color = class_colors[index % len(class_colors)]
        top.plot(centres, probabilities, marker="o", markersize=3, label=label, color=color)
    top.set_ylabel("probability")
    top.set_ylim(0, 1)
    top.grid(alpha=0.3)
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    top.set_title(title or "Emotion over time")

    # the two parts of each segment's top-label lead, side by side; a part below zero argues against the label
    audio, visual = [entry["audio"] for entry in entries], [entry["visual"] for entry in entries]
    bar = [0.4 * width for width in widths]
    bottom.bar([c - w / 2 for c, w in zip(centres, bar)], audio, bar, color=AUDIO_COLOR, label="audio")
    bottom.bar([c + w / 2 for c, w in zip(centres, bar)], visual, bar, color=VISUAL_COLOR, label="visual")
    bottom.axhline(0.0, color="black", linewidth=0.8)
    top_of_bars = max(max(audio), max(visual), 1e-6)
    for centre, entry in zip(centres, entries if len(entries) <= 24 else []):  # many windows: no room for text
        # no audio track: the audio bar is the model's silence baseline, not a share of the sound
        share = "no audio" if entry.get("audio_share") is None else f"{entry['audio_share']:.0%} audio"
        text = f"{entry['label']}\n{share}"
        bottom.text(centre, top_of_bars * 1.08, text, ha="center", va="bottom", fontsize=7)
    bottom.set_ylim(min(min(audio), min(visual), 0.0) * 1.15, top_of_bars * 1.6)
    bottom.set_ylabel("top label's lead:\naudio and visual parts")
    bottom.set_xlabel("time (s)")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return figure


def save_timeline_plot(entries: list[dict], path, title: str = "") -> Path:
    """Write `plot_timeline` as a PNG and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = plot_timeline(entries, title)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


__all__ = ["plot_timeline", "save_timeline_plot", "timelines"]
