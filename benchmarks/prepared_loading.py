"""Training data from prepared copies through the DataLoader: what a GPU host's cores deliver, per core and together.

`prepared_data.py` times the processor alone in one process. A training run also hands every batch from its worker
to the main process; with float32 frames (19 MB per video at the paper's sizes) that hand-over cost about as much as
the decoding. This script measures, in one run, on prepared copies (4:4:4 and 4:2:0) of the 10 s 640x360 and 30 s
720x1280 clips, at batch 8 (`--batch-size`), with 4 batches prefetched per worker and persistent workers:

- in-process: `AVCANetProcessor()(videos=copy, training=True)`, one video per call, one core (the per-core rate of
  `prepared_data.py`);
- `train.py`'s loader: `train.ProcessingCollator` (each batch decoded in its worker, uint8 frames, made in shared
  memory) with 1 worker on 1 core and with one worker per core on all cores;
- the float32 loader `train.py` had before (`Dataset.with_transform` + `default_data_collator`: the batch normalised
  in the worker, split into examples, stacked again and copied into shared memory), on the same cores.

Videos/s are counted from the arrival of each worker's first batch. The main process only receives the batches (no model), as on
a GPU host where the model runs on the GPU. Run it alone: the workers use every core.

    python benchmarks/prepared_loading.py            # ~6 min on 2 cores
    python benchmarks/prepared_loading.py --quick    # the 10 s clip, 4:2:0, 1 round (< 1 min)
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from common import DEFAULT_MEDIA_DIR, MEDIA, machine, markdown_table, media_file, median
from data_loading import dataset_of, train_example
from prepared_data import GPU_VIDEOS_PER_S, mean_call_seconds
from torch.utils.data import DataLoader
from transformers import default_data_collator

from dataset_scripts.prepare import prepare_video, prepared_settings_for
from processing import AVCANetProcessor, AVCANetVideoProcessor

HOST_CORES = 16  # the GPU host of the projection


def float32_loader(dataset, processor, batch_size: int, workers: int) -> DataLoader:
    """The loader `train.py` built before `ProcessingCollator`: float32 batches made by a `with_transform`."""

    def transform(batch):
        inputs = processor(videos=[cell["path"] for cell in batch["video"]], training=True)
        inputs["labels"] = torch.tensor(batch["label"])
        return dict(inputs)

    return DataLoader(dataset.with_transform(transform), batch_size=batch_size, shuffle=True, num_workers=workers,
                      collate_fn=default_data_collator, prefetch_factor=4, persistent_workers=True)  # fmt: skip


def collator_loader(dataset, processor, batch_size: int, workers: int) -> DataLoader:
    """`train.py`'s loader: raw rows, decoded by `ProcessingCollator` in the workers."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, prefetch_factor=4,
                      persistent_workers=True, collate_fn=train_example.ProcessingCollator(processor, training=True))  # fmt: skip


def loader_rate(make_loader, copy: Path, processor, batch_size: int, cores: set[int], batches_per_worker: int):
    """Videos/s a loader with one worker per core of `cores` delivers, after each worker's first batch."""
    os.sched_setaffinity(0, cores)  # the workers inherit it
    workers = len(cores)
    loader = make_loader(dataset_of([copy] * (batch_size * workers * (batches_per_worker + 1))), processor,
                         batch_size, workers)  # fmt: skip
    start, count = None, 0
    for index, batch in enumerate(loader):
        if start is not None:
            count += batch["labels"].shape[0]
        if index == workers - 1:  # each worker's first batch is in: the clock starts now
            start = time.perf_counter()
    return count / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3, --quick 1)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches-per-worker", type=int, default=6, help="timed batches per worker and round")
    parser.add_argument("--media-dir", type=Path, default=DEFAULT_MEDIA_DIR)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    all_cores = os.sched_getaffinity(0)
    one_core = {min(all_cores)}
    rounds = args.rounds or (1 if args.quick else 3)
    keys = ["10s_640x360"] if args.quick else ["10s_640x360", "30s_720x1280"]
    formats = ["yuv420p"] if args.quick else ["yuv444p", "yuv420p"]
    processor = AVCANetProcessor(video_processor=AVCANetVideoProcessor(decoder_threads=1))
    print(f"machine: {machine()}; {len(all_cores)} cores; batch {args.batch_size}, {rounds} rounds", flush=True)

    results = {}
    with tempfile.TemporaryDirectory(prefix="avcanet-loading-bench-") as tmp:
        copies = {}
        for key in keys:
            for pixel_format in formats:
                copy = Path(tmp) / f"{key}_{pixel_format}.mp4"
                prepare_video(media_file(key, args.media_dir), copy, prepared_settings_for(processor, pixel_format=pixel_format))
                copies[f"{MEDIA[key][4]}, {pixel_format}"] = copy
        methods = {
            "in-process, 1 core": lambda copy: in_process_rate(processor, copy, one_core),
            "train.py loader, 1 worker": lambda copy: loader_rate(collator_loader, copy, processor, args.batch_size,
                                                                  one_core, args.batches_per_worker),
            f"train.py loader, {len(all_cores)} workers": lambda copy: loader_rate(
                collator_loader, copy, processor, args.batch_size, all_cores, args.batches_per_worker),
            "float32 loader, 1 worker": lambda copy: loader_rate(float32_loader, copy, processor, args.batch_size,
                                                                 one_core, args.batches_per_worker),
            f"float32 loader, {len(all_cores)} workers": lambda copy: loader_rate(
                float32_loader, copy, processor, args.batch_size, all_cores, args.batches_per_worker),
        }  # fmt: skip
        runs = {(name, method): [] for name in copies for method in methods}
        for round_index in range(rounds):
            for name, copy in copies.items():
                names = list(methods)
                for method in names[round_index % len(names) :] + names[: round_index % len(names)]:
                    runs[name, method].append(methods[method](copy))
                    print(f"  round {round_index + 1}, {name}, {method}: {runs[name, method][-1]:.1f} videos/s",
                          flush=True)  # fmt: skip
        os.sched_setaffinity(0, all_cores)
    for name in copies:
        results[name] = {method: median(runs[name, method]) for method in methods}

    header = ["copy", *methods, f"{HOST_CORES} cores, train.py loader", f"{HOST_CORES} cores, float32 loader"]
    rows = []
    for name, rates in results.items():
        per_core = {kind: rates[f"{kind} loader, {len(all_cores)} workers"] / len(all_cores)
                    for kind in ("train.py", "float32")}  # fmt: skip
        rows.append([name, *(f"{rate:.1f}" for rate in rates.values()),
                     *(f"{HOST_CORES * rate:.0f} videos/s" for rate in per_core.values())])  # fmt: skip
    print(f"\nvideos/s, medians of {rounds} rounds; {HOST_CORES}-core projection = the all-cores rate per core x "
          f"{HOST_CORES} (a GPU training at {GPU_VIDEOS_PER_S} videos/s needs {GPU_VIDEOS_PER_S})")  # fmt: skip
    print(markdown_table(header, rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results, "runs": {
            f"{name} / {method}": values for (name, method), values in runs.items()}}, indent=2))  # fmt: skip


def in_process_rate(processor, copy: Path, cores: set[int]) -> float:
    os.sched_setaffinity(0, cores)
    processor(videos=str(copy), training=True)
    return 1 / mean_call_seconds(lambda: processor(videos=str(copy), training=True), 3.0)


if __name__ == "__main__":
    main()
