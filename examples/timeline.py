"""The emotion timeline of a video: JSON entries per segment and a PNG plot, shared by `predict.py` and the demo.

The entries come from the model's own structure (`processing.pipeline_avcanet.segment_timeline`): the per-segment
logits average to the prediction, and each splits exactly into an audio part and a visual part.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402

AUDIO_COLOR, VISUAL_COLOR = "#1f77b4", "#ff7f0e"


def timelines(outputs, time_spans, id2label) -> list[list[dict]]:
    """One timeline per video of a batch, from `AVCANetForVideoClassification` outputs and the processor's
    `segment_time_spans` `(batch, num_segments, 2)`."""
    from processing.pipeline_avcanet import segment_timeline  # the package; the demo needs only the plot

    return [
        segment_timeline(
            outputs.segment_logits[row].cpu(),
            outputs.audio_segment_logits[row].cpu(),
            outputs.visual_segment_logits[row].cpu(),
            time_spans[row].cpu(),
            id2label,
        )
        for row in range(len(time_spans))
    ]


def plot_timeline(entries: list[dict], title: str = ""):
    """A figure of two panels over time: the probability of every class per segment, and how much of each segment's
    top label comes from the audio and from the picture."""
    labels = list(entries[0]["probabilities"])
    centres = [(entry["start"] + entry["end"]) / 2 for entry in entries]
    widths = [max(entry["end"] - entry["start"], 1e-3) for entry in entries]
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.4]}, constrained_layout=True
    )
    for label in labels:
        top.plot(centres, [entry["probabilities"][label] for entry in entries], marker="o", markersize=3, label=label)
    top.set_ylabel("probability")
    top.set_ylim(0, 1)
    top.grid(alpha=0.3)
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    top.set_title(title or "Emotion over time")

    audio = [entry["audio_share"] for entry in entries]
    bottom.bar(centres, audio, widths, color=AUDIO_COLOR, label="audio")
    bottom.bar(centres, [1 - share for share in audio], widths, bottom=audio, color=VISUAL_COLOR, label="visual")
    for centre, entry in zip(centres, entries):
        bottom.text(centre, 1.03, entry["label"], ha="center", va="bottom", fontsize=6, rotation=45)
    bottom.set_ylim(0, 1.35)
    bottom.set_yticks([0, 0.5, 1])
    bottom.set_ylabel("audio / visual\nshare of top label")
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
