"""Training data pipeline vs model training throughput: which one bounds training on this machine.

The data pipeline is exactly that of `examples/train.py`: a `datasets` split of `Video(decode=False)` cells, a
`torch.utils.data.DataLoader` whose `collate_fn` is `train.ProcessingCollator(processor, training=True)` (random
windows, crops and augmentation, decoded on the fly into uint8 frames and audio windows) and the batches finished
where the model runs (`processor.finish`: frames normalised, log-mel computed), at the batch size of each config. Two
processors: `AVCANetProcessor.from_model_config` of the default (paper) config (16 x 8 frames at 112 px, 128 x 1024
log-mel) and of `CPU_DEMO_SIZES` (4 x 4 frames at 32 px, 32 x 64 log-mel). Two kinds of clips: generated 10 s 640x360 H.264 + AAC files (a realistic short video) and the synthetic set of the
demo (2 s, 64x64, `dataset_scripts.synthetic`).

Measured in this one run:
1. data alone: videos/s delivered by the DataLoader with 0, 1 and 2 workers over one epoch (worker start-up
   included: Trainer starts its workers again every epoch unless `dataloader_persistent_workers`);
2. model alone: training steps (forward + backward + AdamW) on random inputs of the same shapes, videos/s;
3. both together (the CPU-demo config, where they are of the same order): the DataLoader feeding real training
   steps, 0, 1 and 2 workers, videos/s; data and model share the 2 cores here.
With 2 workers the real clips are also loaded with each decoder on FFmpeg's own thread count (cores + 1), the
behaviour before decoders in DataLoader workers were given their share of the cores.

    python benchmarks/data_loading.py           # 24 videos per measurement, 48 for the CPU demo (~2 min)
    python benchmarks/data_loading.py --quick   # 8 / 24 videos, batch 1 for the default model (< 1 min)
    python benchmarks/data_loading.py --device cuda --bf16 --workers 0 4 8   # the model on a GPU
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from common import DEFAULT_MEDIA_DIR, REPO, machine, markdown_table, media_file, median
from datasets import ClassLabel, Dataset, Features, Video
from model import Timer, autocast, build, make_inputs
from torch.utils.data import DataLoader

from processing import AVCANetProcessor

sys.path.insert(0, str(REPO / "examples"))
import train as train_example

LABELS = ["Joy", "Calm", "Tension", "Sadness"]


def dataset_of(paths: list[Path]) -> Dataset:
    features = Features({"video": Video(decode=False), "label": ClassLabel(names=LABELS)})
    return Dataset.from_dict(
        {"video": [str(path) for path in paths], "label": [index % len(LABELS) for index in range(len(paths))]},
        features=features,
    )


def clips(kind: str, count: int, media_dir: Path) -> list[Path]:
    if kind == "10s_640x360":
        return [media_file("10s_640x360", media_dir)] * count  # one file, read through the page cache each time
    from dataset_scripts import generate_synthetic

    folder = media_dir / "synthetic"
    if not (folder / "done").exists():
        generate_synthetic(folder, videos_per_class={"train": 4})  # 16 clips of 2 s at 64x64, the demo's kind
        (folder / "done").write_text("")
    files = sorted((folder / "train").rglob("*.mp4"))
    return [files[index % len(files)] for index in range(count)]


def data_rate(dataset: Dataset, processor: AVCANetProcessor, batch_size: int, workers: int) -> dict:
    """Videos/s the training DataLoader delivers over one epoch (worker start-up included, as in a Trainer epoch
    without persistent workers), and the seconds to its first batch."""
    collator = train_example.ProcessingCollator(processor, training=True)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collator, shuffle=True)
    start = time.perf_counter()
    first, count = None, 0
    for batch in loader:
        first = first or time.perf_counter()
        count += batch["labels"].shape[0]
    return {"videos_per_s": count / (time.perf_counter() - start), "first_batch_s": first - start}


def model_rate(model, name: str, batch_size: int, steps: int, args, warmup: int = 1) -> float:
    """Training videos/s of `model` on random inputs (forward + backward + AdamW)."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    inputs = make_inputs(name, model, batch_size, args.device)
    timer, times = Timer(args.device), []
    for step in range(warmup + steps):
        start = timer.now()
        with autocast(args.device, args.bf16):
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step >= warmup:
            times.append(timer.now() - start)
    return batch_size / median(times)


def on_device(batch: dict, processor: AVCANetProcessor, device: str) -> dict:
    """A collated batch on `device`, finished there (what `train.AVCANetTrainer` does)."""
    return processor.finish({key: value.to(device, non_blocking=True) for key, value in batch.items()})


def end_to_end_rate(dataset: Dataset, processor, model, batch_size: int, workers: int, args) -> float:
    """Training videos/s over one epoch with the DataLoader feeding real steps (the model already warmed up)."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    collator = train_example.ProcessingCollator(processor, training=True)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collator, shuffle=True,
                        pin_memory=args.device != "cpu")  # fmt: skip
    timer = Timer(args.device)
    start, count = timer.now(), 0
    for batch in loader:
        batch = on_device(batch, processor, args.device)
        with autocast(args.device, args.bf16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        count += batch["labels"].shape[0]
    return count / (timer.now() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--videos",
        type=int,
        help="videos per data measurement (default 24, --quick 8; at least 48 / 24 for the CPU demo)",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the main process")
    parser.add_argument("--device", default="cpu", help="where the model trains: cpu or cuda (data is always CPU)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the model")
    parser.add_argument("--decoder-threads", type=int, default=0, help="FFmpeg threads per decoder (0: FFmpeg picks)")
    parser.add_argument(
        "--clips", nargs="+", default=["10s_640x360", "synthetic"], choices=["10s_640x360", "synthetic"]
    )
    parser.add_argument("--media-dir", type=Path, default=DEFAULT_MEDIA_DIR)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    videos = args.videos or (8 if args.quick else 24)
    print(f"machine: {machine()}; torch threads {args.threads}, decoder threads {args.decoder_threads}, model on "
          f"{args.device}, bf16 {args.bf16}", flush=True)  # fmt: skip

    configs = {
        "default": {"batch_size": 1 if args.quick else 2, "steps": 1 if args.quick else 2, "videos": videos},
        # the demo's batch of 8, and enough batches for a steady rate
        "cpu-demo": {"batch_size": 8, "steps": 5, "videos": max(videos, 24 if args.quick else 48)},
    }
    results = {"data": {}, "data_before": {}, "model": {}, "end_to_end": {}}

    for config_name, setting in configs.items():
        model = build("avcanet", config_name).to(args.device)
        processor = AVCANetProcessor.from_model_config(model.config, decoder_threads=args.decoder_threads)
        batch_size = setting["batch_size"]
        datasets = {kind: dataset_of(clips(kind, setting["videos"], args.media_dir)) for kind in args.clips}
        results["model"][config_name] = model_rate(model, "avcanet", batch_size, setting["steps"], args)
        print(f"model {config_name}: {results['model'][config_name]:.2f} videos/s (batch {batch_size})", flush=True)
        for kind, dataset in datasets.items():
            for workers in args.workers:
                rate = data_rate(dataset, processor, batch_size, workers)
                results["data"][f"{config_name}/{kind}/{workers}"] = rate
                print(f"data {config_name} processor, {kind}, {workers} workers: {rate['videos_per_s']:.2f} videos/s "
                      f"(first batch after {rate['first_batch_s']:.2f} s)", flush=True)  # fmt: skip
                if workers > 1 and args.decoder_threads == 0 and kind != "synthetic" and not args.quick:
                    # before: each worker's decoders used FFmpeg's own choice, cores + 1 threads
                    before = AVCANetProcessor.from_model_config(
                        model.config, decoder_threads=(os.cpu_count() or 1) + 1
                    )
                    rate = data_rate(dataset, before, batch_size, workers)
                    results["data_before"][f"{config_name}/{kind}/{workers}"] = rate
                    print(f"data {config_name} processor, {kind}, {workers} workers, FFmpeg-auto decoder threads "
                          f"(before): {rate['videos_per_s']:.2f} videos/s", flush=True)  # fmt: skip
                if config_name == "cpu-demo":
                    rate = end_to_end_rate(dataset, processor, model, batch_size, workers, args)
                    results["end_to_end"][f"{config_name}/{kind}/{workers}"] = rate
                    print(f"data + model {config_name}, {kind}, {workers} workers: {rate:.2f} videos/s", flush=True)

    report(results, configs, args)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


def report(results: dict, configs: dict, args):
    header = ["config (batch)", "clips", "model alone videos/s"]
    header += [f"data, {workers} workers" for workers in args.workers]
    most = max(args.workers)
    header += [f"data, {most} workers, FFmpeg-auto decoder threads (before)"] if most > 1 else []
    header += [f"data + model, {workers} workers" for workers in args.workers] + ["bound"]
    rows = []
    for config_name, setting in configs.items():
        model = results["model"][config_name]
        for kind in args.clips:
            data = [results["data"][f"{config_name}/{kind}/{workers}"]["videos_per_s"] for workers in args.workers]
            both = [results["end_to_end"].get(f"{config_name}/{kind}/{workers}") for workers in args.workers]
            bound = "model" if model < max(data) else "data"
            before = results["data_before"].get(f"{config_name}/{kind}/{most}")
            rows.append([f"{config_name} ({setting['batch_size']})", kind, f"{model:.2f}"]
                        + [f"{rate:.2f}" for rate in data]
                        + ([f"{before['videos_per_s']:.2f}" if before else "-"] if most > 1 else [])
                        + [f"{rate:.2f}" if rate is not None else "-" for rate in both]
                        + [f"{bound} (data/model x{max(data) / model:.1f})"])  # fmt: skip
    print()
    print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
