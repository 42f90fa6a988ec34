"""
Predict the emotions of videos with a trained AV-CANet: one JSON line per video on stdout, a progress bar on stderr.

    python examples/predict.py outputs/avcanet-demo clip.mp4 more_clips/ --top_k 3

Each line holds the file, its top-k labels with probabilities and the polarity of the top label; with `--timeline`,
also one entry per segment (start and end in seconds, top label and score, audio vs visual share), and with `--plot
DIR` one PNG per video of the class probabilities over time and the audio/visual split. A file that cannot
be read gets a line with its `error` instead, and the run goes on; a summary of such files ends the run on stderr.
The model and processor load through the Auto classes with `trust_remote_code=True`, so any saved AV-CANet folder
or Hub repository works, whichever version of this package wrote it.
"""

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from tqdm.auto import tqdm
from timeline import save_timeline_plot, timelines
from transformers import AutoModelForVideoClassification, AutoProcessor

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpeg", ".mpg", ".flv"}


def find_videos(inputs: list[str]) -> list[Path]:
    """Files as given, and the video files under given folders (recursively, sorted)."""
    videos = []
    for item in map(Path, inputs):
        if item.is_dir():
            videos.extend(sorted(path for path in item.rglob("*") if path.suffix.lower() in VIDEO_EXTENSIONS))
        else:
            videos.append(item)
    return videos


def batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def predict(model, processor, videos: list[Path], top_k: int, batch_size: int, timeline=False) -> Iterator[dict]:
    """One result per video, in order: its top-k labels (and its `timeline`), or the reason it could not be read."""
    config = model.config
    device = next(model.parameters()).device
    for batch in batches(videos, batch_size):
        readable, inputs, failures = [], [], {}
        for path in batch:
            try:
                # older saved processors do not know `return_time_spans`: ask only when needed
                inputs.append(processor(videos=str(path), **({"return_time_spans": True} if timeline else {})))
                readable.append(path)
            except (ValueError, OSError) as error:  # the processor's VideoDecodingError is a ValueError
                failures[path] = str(error)
        if readable:
            stacked = {key: torch.cat([item[key] for item in inputs]).to(device) for key in inputs[0]}
            time_spans = stacked.pop("segment_time_spans", None)
            with torch.inference_mode():
                outputs = model(**stacked)
            probabilities = outputs.logits.float().softmax(dim=-1).cpu()
            scores, indices = probabilities.topk(min(top_k, config.num_labels), dim=-1)
        results = {}
        for row, path in enumerate(readable):
            labels = [config.id2label[int(index)] for index in indices[row]]
            results[path] = {
                "path": str(path),
                "labels": [{"label": label, "score": round(float(score), 4)} for label, score in zip(labels, scores[row])],
                "polarity": (config.label_polarities or {}).get(labels[0]),
            }
        if timeline and readable:
            for path, entries in zip(readable, timelines(outputs, time_spans, config.id2label)):
                results[path]["timeline"] = entries
        for path in batch:
            yield results.get(path) or {"path": str(path), "error": failures[path]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a saved AV-CANet folder or Hub repository")
    parser.add_argument("inputs", nargs="+", help="video files and folders of videos")
    parser.add_argument("--top_k", type=int, default=3)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--timeline", action="store_true", help="add each video's per-segment emotion timeline")
    parser.add_argument("--plot", type=Path, metavar="DIR", help="write one timeline PNG per video into DIR")
    args = parser.parse_args(argv)

    model = AutoModelForVideoClassification.from_pretrained(args.model, trust_remote_code=True).to(args.device).eval()
    processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True)
    videos = find_videos(args.inputs)
    unreadable = []
    results = predict(model, processor, videos, args.top_k, args.batch_size, timeline=args.timeline or bool(args.plot))
    for index, result in enumerate(tqdm(results, total=len(videos), unit="video")):
        if args.plot and "timeline" in result:
            name = f"{index:04d}_{Path(result['path']).stem}.png"  # numbered: two folders may hold the same name
            save_timeline_plot(result["timeline"], args.plot / name, title=Path(result["path"]).name)
        if not args.timeline:
            result.pop("timeline", None)
        print(json.dumps(result), flush=True)
        if "error" in result:
            unreadable.append(result["path"])
    if unreadable:
        print(f"{len(unreadable)} of {len(videos)} file(s) could not be read: {unreadable}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
