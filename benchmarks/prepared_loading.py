"""Training data from prepared copies through the DataLoader: what a GPU host's cores deliver, per core and together.

`prepared_data.py` times the processor alone in one process. A training run also hands every batch from its worker
to the main process, and the work left in the workers decides how many cores a GPU needs. This script measures, in
one run, on prepared copies (4:4:4 and 4:2:0) of the 10 s 640x360 and 30 s 720x1280 clips, read as `train.py` reads
a prepared data set (the copies' bytes in the `video` column of a saved `datasets` folder, memory-mapped), at batch 8
(`--batch-size`), with 4 batches prefetched per worker and persistent workers:

- in-process: a worker's work (`processor(videos=bytes, training=True, finish=False)`), one video per call, one core;
- `train.py`'s loader: `train.ProcessingCollator` (each batch decoded and cropped in its worker, uint8 frames and
  audio windows made in shared memory; the augmentation, the log-mel and the normalisation are left to
  `processor.finish` on the model's device) with 1 worker on 1 core and one worker per core on all cores;
- the loader of commit 16b334a (the same, but the augmentation and the log-mel computed in the workers);
- the float32 loader before it (`Dataset.with_transform` + `default_data_collator`: the batch finished in the
  worker, split into examples, stacked again and copied into shared memory), on all cores.

Videos/s are counted from the arrival of each worker's first batch; with them, the CPU time of the workers and the
main process (`/proc/<pid>/stat`) per video, which the machine's noise moves less. The main process copies each batch
once into reused buffers, as the pin-memory thread of a GPU host copies it into pinned memory, and does nothing
else (no model, no `finish`: on a GPU host they run on the GPU). Run it alone: the workers use every core.

    python benchmarks/prepared_loading.py            # ~8 min on 2 cores
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
from datasets import load_from_disk
from prepared_data import GPU_VIDEOS_PER_S, mean_call_seconds
from torch.utils.data import DataLoader
from transformers import default_data_collator

from dataset_scripts.prepare import prepare_video, prepared_settings_for
from processing import AVCANetProcessor, AVCANetVideoProcessor
from processing.video_processing_avcanet import AUGMENTATIONS, apply_spatial_operation, operation_amount

HOST_CORES = 16  # the GPU host of the projection
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def saved_dataset_of(copy: Path, rows: int, folder: Path):
    """`rows` rows of the copy as `dataset_scripts.prepare` writes a data set: its bytes in `video`, saved, loaded."""
    dataset_of([copy] * rows).save_to_disk(str(folder))  # embeds the file's bytes
    return load_from_disk(str(folder))


def float32_loader(dataset, processor, batch_size: int, workers: int) -> DataLoader:
    """The loader `train.py` built before commit 16b334a: float32 batches made by a `with_transform`."""

    def transform(batch):
        inputs = processor(videos=[train_example.video_source(cell) for cell in batch["video"]], training=True)
        inputs["labels"] = torch.tensor(batch["label"])
        return dict(inputs)

    return DataLoader(dataset.with_transform(transform), batch_size=batch_size, shuffle=True, num_workers=workers,
                      collate_fn=default_data_collator, prefetch_factor=4, persistent_workers=True)  # fmt: skip


class AugmentingCollator(train_example.ProcessingCollator):
    """Commit 16b334a's collator: the augmentation and the log-mel in the worker, only normalisation left."""

    def __call__(self, rows: list[dict]) -> dict:
        inputs = super().__call__(rows)
        frames = inputs["pixel_values_videos"]
        for row, (code, uniform) in enumerate(zip(inputs.pop("augmentation_operations").tolist(),
                                                  inputs.pop("augmentation_draws").tolist())):  # fmt: skip
            if code:
                operation = AUGMENTATIONS[code - 1]
                frames[row] = apply_spatial_operation(frames[row], operation, operation_amount(operation, uniform))
        inputs["input_features"] = self.processor.feature_extractor.features_from_windows(inputs.pop("audio_windows"))
        return inputs


def collator_loader(dataset, processor, batch_size: int, workers: int, collator=train_example.ProcessingCollator):
    """`train.py`'s loader: raw rows, decoded by `ProcessingCollator` in the workers."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers, prefetch_factor=4,
                      persistent_workers=True, collate_fn=collator(processor, training=True))  # fmt: skip


def augmenting_loader(dataset, processor, batch_size: int, workers: int) -> DataLoader:
    return collator_loader(dataset, processor, batch_size, workers, AugmentingCollator)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def loader_rate(make_loader, dataset, processor, batch_size: int, cores: set[int], batches_per_worker: int):
    """Videos/s a loader with one worker per core of `cores` delivers after each worker's first batch, and the CPU
    milliseconds per video its workers and main process spend meanwhile."""
    os.sched_setaffinity(0, cores)  # the workers inherit it
    workers = len(cores)
    rows = batch_size * workers * (batches_per_worker + 1)
    batches = iter(make_loader(dataset.select(range(rows)), processor, batch_size, workers))
    for _ in range(workers):  # each worker's first batch is in: the clock starts now
        next(batches)
    pids = [worker.pid for worker in batches._workers] + [os.getpid()]
    cpu_before, start, count, pinned = sum(map(cpu_seconds, pids)), time.perf_counter(), 0, {}
    for batch in batches:
        count += batch["labels"].shape[0]
        for key, value in batch.items():  # what the pin-memory thread does (a CPU-only torch cannot pin)
            if key not in pinned or pinned[key].shape != value.shape:
                pinned[key] = torch.empty_like(value)
            pinned[key].copy_(value)
    seconds, cpu = time.perf_counter() - start, sum(map(cpu_seconds, pids)) - cpu_before
    return count / seconds, 1000 * cpu / count


def in_process_rate(processor, copy_bytes: bytes, cores: set[int]) -> float:
    os.sched_setaffinity(0, cores)
    read = lambda: processor(videos=copy_bytes, training=True, finish=False)  # noqa: E731
    read()
    return 1 / mean_call_seconds(read, 3.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3, --quick 1)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches-per-worker", type=int, default=8, help="timed batches per worker and round")
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

    with tempfile.TemporaryDirectory(prefix="avcanet-loading-bench-") as tmp:
        copies, datasets = {}, {}
        rows = args.batch_size * len(all_cores) * (args.batches_per_worker + 1)
        for key in keys:
            for pixel_format in formats:
                copy = Path(tmp) / f"{key}_{pixel_format}.mp4"
                prepare_video(media_file(key, args.media_dir), copy, prepared_settings_for(processor, pixel_format=pixel_format))
                name = f"{MEDIA[key][4]}, {pixel_format}"
                copies[name] = copy.read_bytes()
                datasets[name] = saved_dataset_of(copy, rows, Path(tmp) / f"{key}_{pixel_format}_dataset")
        every_core = f"{len(all_cores)} workers"

        def loader(make_loader, cores):
            return lambda name: loader_rate(make_loader, datasets[name], processor, args.batch_size, cores,
                                            args.batches_per_worker)  # fmt: skip

        methods = {
            "in-process, 1 core": lambda name: (in_process_rate(processor, copies[name], one_core), None),
            "train.py loader, 1 worker": loader(collator_loader, one_core),
            f"train.py loader, {every_core}": loader(collator_loader, all_cores),
            f"16b334a loader, {every_core}": loader(augmenting_loader, all_cores),
            f"float32 loader, {every_core}": loader(float32_loader, all_cores),
        }
        runs = {(name, method): [] for name in copies for method in methods}
        for round_index in range(rounds):
            for name in copies:
                names = list(methods)
                for method in names[round_index % len(names) :] + names[: round_index % len(names)]:
                    runs[name, method].append(methods[method](name))
                    rate, cpu = runs[name, method][-1]
                    print(f"  round {round_index + 1}, {name}, {method}: {rate:.1f} videos/s"
                          + (f", {cpu:.1f} CPU ms per video" if cpu else ""), flush=True)  # fmt: skip
        os.sched_setaffinity(0, all_cores)

    rates = {name: {method: median([rate for rate, _ in runs[name, method]]) for method in methods} for name in copies}
    cpu_ms = {name: median([cpu for _, cpu in runs[name, f"train.py loader, {every_core}"]]) for name in copies}
    header = ["copy", *methods, "train.py loader: CPU ms per video", f"{HOST_CORES} cores, train.py loader",
              f"{HOST_CORES} cores, 16b334a loader", f"cores for {GPU_VIDEOS_PER_S} videos/s"]  # fmt: skip
    rows = []
    for name, rate in rates.items():
        per_core = {kind: rate[f"{kind} loader, {every_core}"] / len(all_cores) for kind in ("train.py", "16b334a")}
        rows.append([name, *(f"{value:.1f}" for value in rate.values()), f"{cpu_ms[name]:.1f}",
                     *(f"{HOST_CORES * value:.0f} videos/s" for value in per_core.values()),
                     f"{GPU_VIDEOS_PER_S / per_core['train.py']:.1f} ({GPU_VIDEOS_PER_S * cpu_ms[name] / 1000:.1f} "
                     "by CPU time)"])  # fmt: skip
    print(f"\nvideos/s, medians of {rounds} rounds; {HOST_CORES}-core projection = the all-cores rate per core x "
          f"{HOST_CORES}; cores for {GPU_VIDEOS_PER_S} videos/s from that rate, and from the CPU time per video")
    print(markdown_table(header, rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rates": rates, "cpu_ms_per_video": cpu_ms, "runs": {
            f"{name} / {method}": values for (name, method), values in runs.items()}}, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
