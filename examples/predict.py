"""
Predict the emotions of videos with a trained AV-CANet: one JSON line per video on stdout, a progress bar on stderr.

    python examples/predict.py outputs/avcanet-demo clip.mp4 more_clips/ --top_k 3
    python examples/predict.py outputs/avcanet-demo videos/ --num_workers 8 --bf16 --output predictions.jsonl
    python examples/predict.py --onnx outputs/avcanet-onnx videos/ --int8   # an export of examples/export_onnx.py
    accelerate launch examples/predict.py outputs/avcanet-demo videos/ --num_workers 8 --output predictions.jsonl
    python examples/predict.py outputs/avcanet-demo long.mp4 --window_seconds 10 --num_clips 3 --num_crops 3 --plot DIR

Each line holds the file, its top-k labels with probabilities and the polarity of the top label, `"audio"` (false: the
file has no audio track, so the answer comes from the picture alone and its timeline has no audio share) and
`"truncated"` (true: the picture could not be decoded past `"decoded_seconds"`, only that prefix was used); with
`--timeline`, also one entry per segment (start and end in seconds, top label and score, audio vs visual share), and
with `--plot DIR` one PNG per video of the class probabilities over time and the audio/visual split. A file that cannot
be read gets a line with its `error` instead, and the run goes on; a summary of such files ends the run on stderr.
Exit status: 0 when every file was read, 1 when any file could not be read (its line holds the `error`), 2 when the
inputs hold no video file or the model cannot be found.
The model and processor load through the Auto classes with `trust_remote_code=True`, so any saved AV-CANet folder
or Hub repository works, whichever version of this package wrote it.

Long videos: with `--window_seconds W` each file is predicted window by window in one decoding pass (`windows`: one
entry per window; the plot shows them all), and `--num_clips` / `--num_crops` average test-time views
(docs/long-videos.md).

Files are decoded by `--num_workers` DataLoader workers while the model runs on the previous batch. Under `accelerate
launch` every process predicts a contiguous share of the files and writes its lines; the main process then merges
them into one output in the order a single process writes.
"""

import argparse
import contextlib
import inspect
import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import broadcast_object_list
from torch.utils.data import DataLoader, Dataset
from model_notice import synthetic_demo_notice
from timeline import save_timeline_plot, timelines
from tqdm.auto import tqdm
from transformers import AutoModelForVideoClassification, AutoProcessor

from processing.pipeline_avcanet import video_status

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


class VideoFiles(Dataset):
    """`(path, processed inputs, None)` of each file, or `(path, None, why it could not be read)`: a bad file never
    stops the run, also when read in a DataLoader worker."""

    def __init__(self, videos: list[Path], processor, processor_kwargs: dict):
        self.videos, self.processor, self.processor_kwargs = videos, processor, processor_kwargs

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, index: int):
        path = self.videos[index]
        try:
            return path, dict(self.processor(videos=str(path), **self.processor_kwargs)), None
        except (ValueError, OSError) as error:  # the processor's VideoDecodingError is a ValueError naming the file
            return path, None, str(error)
        except Exception as error:  # a decoder failing in an unforeseen way still only costs this file
            return path, None, f"{path}: {type(error).__name__}: {error}"


def predict(
    model,
    processor,
    videos: list[Path],
    top_k: int,
    batch_size: int,
    num_workers: int = 0,
    bf16: bool = False,
    timeline: bool = False,
    windows: dict | None = None,
) -> Iterator[dict]:
    """One result per video, in order: its top-k labels (and its `timeline`), or the reason it could not be read.
    With `windows` (`--window_seconds`, `--num_clips`, ...): `predict_in_windows`."""
    if windows:
        yield from predict_in_windows(model, processor, videos, top_k, batch_size, bf16, timeline, windows)
        return
    config = model.config
    device = model.device  # an onnxruntime model (`--onnx`) takes its inputs on the CPU
    # older saved processors know neither `return_time_spans` nor `return_video_status`: ask only for what they know
    processor_kwargs = {"return_time_spans": True} if timeline else {}
    if "return_video_status" in inspect.signature(processor.__call__).parameters:
        processor_kwargs["return_video_status"] = True
    loader = DataLoader(
        VideoFiles(videos, processor, processor_kwargs),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=list,
        pin_memory=device.type == "cuda",
        prefetch_factor=2 if num_workers else None,
    )
    for batch in loader:
        readable = [(path, inputs) for path, inputs, _ in batch if inputs is not None]
        results = {}
        if readable:
            stacked = {key: torch.cat([inputs[key] for _, inputs in readable]).to(device, non_blocking=True)
                       for key in readable[0][1]}  # fmt: skip
            time_spans = stacked.pop("segment_time_spans", None)
            truncated = stacked.pop("video_truncated", None)
            decoded_seconds = stacked.pop("video_decoded_seconds", None)
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                outputs = model(**stacked)
            probabilities = outputs.logits.float().softmax(dim=-1).cpu()
            scores, indices = probabilities.topk(min(top_k, config.num_labels), dim=-1)
            for row, (path, _) in enumerate(readable):
                labels = [config.id2label[int(index)] for index in indices[row]]
                results[path] = {
                    "path": str(path),
                    "labels": [
                        {"label": label, "score": round(float(score), 4)} for label, score in zip(labels, scores[row])
                    ],
                    "polarity": (config.label_polarities or {}).get(labels[0]),
                    **video_status(
                        stacked["audio_mask"][row],
                        truncated[row] if truncated is not None else None,
                        decoded_seconds[row] if decoded_seconds is not None else None,
                    ),
                }
            if timeline:
                audio_mask = stacked["audio_mask"]
                for (path, _), entries in zip(readable, timelines(outputs, time_spans, config.id2label, audio_mask)):
                    results[path]["timeline"] = entries
        for path, _, error in batch:
            yield results.get(path) or {"path": str(path), "error": error}


def predict_in_windows(model, processor, videos, top_k, batch_size, bf16, timeline, windows) -> Iterator[dict]:
    """`processing.window_inference.classify_in_windows` per file, in order: its windows are decoded in one pass and
    run `batch_size` windows at a time (so memory stays flat however long the file), each the mean of its views."""
    from processing.window_inference import classify_in_windows

    for path in videos:
        try:
            result = classify_in_windows(model, processor, str(path), **windows, batch_size=batch_size, top_k=top_k,
                                         timeline=timeline, bf16=bf16)  # fmt: skip
        except (ValueError, OSError) as error:  # the processor's VideoDecodingError is a ValueError naming the file
            yield {"path": str(path), "error": str(error)}
            continue
        labels = result.pop("labels")
        yield {
            "path": str(path),
            "labels": [{"label": entry["label"], "score": entry["score"]} for entry in labels],
            "polarity": labels[0]["polarity"],
            **result,
        }


def write_lines(results: Iterator[dict], output, total: int, progress: bool, args, first_index: int = 0) -> list[str]:
    """Each result as a JSON line, flushed as it comes, and its timeline plot with `--plot`; returns the paths of the
    files that could not be read."""
    unreadable = []
    for index, result in enumerate(tqdm(results, total=total, unit="video", disable=not progress), first_index):
        if args.plot and ("windows" in result or "timeline" in result):  # windows: one point each, the whole video
            name = f"{index:04d}_{Path(result['path']).stem}.png"  # numbered: two folders may hold the same name
            entries = result.get("windows") or result["timeline"]
            save_timeline_plot(entries, args.plot / name, title=Path(result["path"]).name)
        if not args.timeline:
            result.pop("timeline", None)
        output.write(json.dumps(result) + "\n")
        output.flush()
        if "error" in result:
            unreadable.append(result["path"])
    return unreadable


def model_location_problem(model: str) -> str | None:
    """Why `model` is neither a saved folder nor a Hub repository id, or None; decided before any network call. A
    name whose first folder exists here (`outputs/nope`) or that starts like a path is a folder that is missing."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    path = Path(model).expanduser()
    if path.is_dir():
        return None if (path / "config.json").exists() else f"{model} holds no saved model (no config.json)"
    if path.exists():
        return f"{model} is a file, not a saved model folder"
    first_folder_exists = len(path.parts) > 1 and Path(path.parts[0]).is_dir()
    looks_local = model.startswith((".", "/", "~")) or "\\" in model or first_folder_exists
    try:
        validate_repo_id(model)
    except HFValidationError:
        looks_local = True
    return f"no such folder or Hub repository: {model}" if looks_local else None


def open_output(path: str | None):
    return open(path, "w") if path else contextlib.nullcontext(sys.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a saved AV-CANet folder or Hub repository")
    parser.add_argument("inputs", nargs="*", help="video files and folders of videos")
    parser.add_argument("--top_k", type=int, default=3, help="labels per video (default: 3)")
    parser.add_argument("--batch_size", type=int, default=4, help="videos per model call (default: 4)")
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader workers decoding ahead of the model")
    parser.add_argument("--bf16", action="store_true", help="run the model under bfloat16 autocast")
    parser.add_argument("--output", help="write the JSON lines to this file instead of stdout")
    parser.add_argument("--device", default=None, help="default: this process's accelerator, else cpu")
    parser.add_argument("--timeline", action="store_true", help="add each video's per-segment emotion timeline")
    parser.add_argument("--plot", type=Path, metavar="DIR", help="write one timeline PNG per video into DIR")
    parser.add_argument("--onnx", metavar="DIR", help="run the export in DIR (examples/export_onnx.py) with "
                        "onnxruntime instead of a PyTorch model; then every positional argument is an input")
    parser.add_argument("--int8", action="store_true", help="with --onnx: its int8 copy (model_int8.onnx)")
    parser.add_argument("--window_seconds", type=float, help="predict every window of this many seconds (long videos)")
    parser.add_argument("--window_stride", type=float, help="seconds between window starts (default: the window)")
    parser.add_argument("--num_clips", type=int, default=1, help="temporal views per video or window, averaged")
    parser.add_argument("--num_crops", type=int, default=1, choices=(1, 3), help="spatial views (1 centre, 3)")
    args = parser.parse_args(argv)
    if args.onnx:
        args.inputs = [args.model, *args.inputs]
        if args.bf16:
            parser.error("--bf16 is for the PyTorch model; an export runs in its own precision (see --int8)")
    elif not args.inputs:
        parser.error("give video files or folders after the model")
    elif args.int8:
        parser.error("--int8 needs --onnx DIR")
    problem = model_location_problem(args.onnx or args.model)
    if problem is not None:
        print(f"predict.py: {problem}", file=sys.stderr)
        return 2
    if not find_videos(args.inputs):
        extensions = ", ".join(sorted(VIDEO_EXTENSIONS))
        print(f"predict.py: no video files in {' '.join(args.inputs)} (looked for {extensions})", file=sys.stderr)
        return 2

    # one process, or one of those `accelerate launch` started (on CPU, accelerate forms the group only when told)
    state = PartialState(cpu=args.device == "cpu" or not torch.accelerator.is_available())
    device = args.device or state.device
    if args.onnx:
        from processing.onnx_avcanet import AVCANetOnnxModel

        model = AVCANetOnnxModel.from_pretrained(args.onnx, int8=args.int8)
        processor = model.processor
    else:
        model = AutoModelForVideoClassification.from_pretrained(args.model, trust_remote_code=True).to(device).eval()
        processor = AutoProcessor.from_pretrained(args.model, trust_remote_code=True)
    notice = synthetic_demo_notice(model.config)
    if notice and state.is_main_process:
        print(notice, file=sys.stderr)
    videos = find_videos(args.inputs)
    options = dict(num_workers=args.num_workers, bf16=args.bf16, timeline=args.timeline or args.plot is not None)
    windows = {name: getattr(args, name) for name in ("window_seconds", "window_stride", "num_clips", "num_crops")}
    if args.window_seconds is not None or args.window_stride is not None or args.num_clips * args.num_crops > 1:
        options["windows"] = windows  # a file at a time, streamed in windows (--batch_size windows per model call)

    if state.num_processes == 1:
        with open_output(args.output) as stream:
            results = predict(model, processor, videos, args.top_k, args.batch_size, **options)
            unreadable = write_lines(results, stream, len(videos), progress=True, args=args)
    else:  # each process writes its contiguous share into a folder the main process chose, which merges them in order
        parts_dir = [tempfile.mkdtemp(prefix="predict-", dir=Path(args.output).parent if args.output else None)
                     if state.is_main_process else None]  # fmt: skip
        broadcast_object_list(parts_dir)
        part_files = [Path(parts_dir[0]) / f"part-{index:05d}.jsonl" for index in range(state.num_processes)]
        with state.split_between_processes(list(enumerate(videos))) as indexed_share, open(
            part_files[state.process_index], "w"
        ) as part:
            share = [path for _, path in indexed_share]
            print(f"Process {state.process_index} of {state.num_processes}: {len(share)} file(s)", file=sys.stderr)
            results = predict(model, processor, share, args.top_k, args.batch_size, **options)
            first_index = indexed_share[0][0] if indexed_share else 0
            write_lines(results, part, len(share), progress=state.is_main_process, args=args, first_index=first_index)
        state.wait_for_everyone()
        if not state.is_main_process:
            return 0
        with open_output(args.output) as stream:
            unreadable = []
            for part_file in part_files:
                for line in part_file.read_text().splitlines(keepends=True):
                    stream.write(line)
                    result = json.loads(line)
                    unreadable += [result["path"]] if "error" in result else []
        shutil.rmtree(parts_dir[0])
    if unreadable:
        print(f"{len(unreadable)} of {len(videos)} file(s) could not be read: {unreadable}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
