"""GPU training throughput from the original files and from prepared copies, with the loader `train.py` uses on a GPU.

One script for a GPU machine, one run (the device time lent to a session is short):

    python benchmarks/gpu_training.py --device cuda --bf16                  # paper config, batch 16, ~5 min
    python benchmarks/gpu_training.py --quick                               # CPU, CPU-demo config (< 2 min)
    python benchmarks/gpu_training.py --device cuda --bf16 --gradient-checkpointing --memory-only  # batch table only

Largest batch per GPU size: before the throughput runs, each model (AV-CANet and VideoMAE-base, with the same
switches) runs one training step at two batch sizes (`--memory-batches`, each in a fresh process, `benchmarks/model.py`)
and the peak GPU memory (`torch.cuda.max_memory_allocated`) gives the memory per video and the fixed part (weights,
gradients, AdamW state); from them, the largest batch that fits in 24, 40, 80 and 141 GB (90 % of each, the rest for
the CUDA context and fragmentation). On a GPU the largest batch that really fits this one is then found by trying
steps (doubling, then bisecting: `model.py --find-max-batch`) next to the prediction. On a CPU the same is computed
from the peak RSS, as an indication only.

For each clip (10 s 640x360 and 30 s 720x1280 H.264 + AAC, each read through the page cache as many times as the
steps need), in one process:
1. the model alone: training steps (forward, backward, AdamW) on random inputs, the ceiling;
2. the DataLoader with `train.gpu_loader_defaults` (one worker per core, 4 batches prefetched per worker, persistent,
   pinned memory; each worker decodes with one FFmpeg thread) feeding the same training steps, from the original file
   and from its prepared copy (`dataset_scripts.prepare.prepare_video`, made here first).
Videos/s are counted after one round of batches (one per worker: they all start together, so the first round comes as
a burst), over `--rounds` further rounds, so the workers' start-up is left out and the prefetch queue is in its steady
state.
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import subprocess
import sys

import torch
from common import DEFAULT_MEDIA_DIR, MEDIA, machine, markdown_table, media_file
from data_loading import dataset_of, model_rate, on_device, train_example
from model import Timer, autocast, build
from torch.utils.data import DataLoader

from dataset_scripts.prepare import prepare_video, prepared_settings_for
from processing import AVCANetProcessor


def loader_settings(device: str) -> dict:
    """What `examples/train.py` passes to its DataLoader on a GPU (`gpu_loader_defaults`), as DataLoader arguments."""
    flags = train_example.gpu_loader_defaults(len(os.sched_getaffinity(0)), 1)
    options = dict(zip(flags[::2], flags[1::2]))
    workers = int(options["--dataloader_num_workers"])
    return {
        "num_workers": workers,
        "prefetch_factor": int(options["--dataloader_prefetch_factor"]) if workers else None,
        "persistent_workers": workers > 0,
        "pin_memory": device != "cpu",
    }


def fed_rate(dataset, processor, model, batch_size: int, warmup: int, args) -> float:
    """Training videos/s with the DataLoader feeding the steps (one epoch of `dataset`), counted after `warmup`
    batches."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True,
                        collate_fn=train_example.ProcessingCollator(processor, training=True),
                        **loader_settings(args.device))  # fmt: skip
    timer, start, count = Timer(args.device), None, 0
    for index, batch in enumerate(loader):
        if index == warmup:  # the first `warmup` batches (a burst, see the module docstring) are left out
            start, count = timer.now(), 0
        batch = on_device(batch, processor, args.device)
        with autocast(args.device, args.bf16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        count += batch["labels"].shape[0]
    return count / (timer.now() - start)


GPU_SIZES_GB = (24, 40, 80, 141)
MODEL_SCRIPT = Path(__file__).resolve().parent / "model.py"


def training_peak_mib(name: str, batch_size: int, args, find_max_batch: bool = False) -> dict:
    """One training step of `name` at `batch_size` in a fresh process (`model.py`'s child): peak memory, step time."""
    command = [sys.executable, str(MODEL_SCRIPT), "--child", name, "--device", args.device, "--batch-size",
               str(batch_size), "--repeats", "1", "--warmup", "1", "--no-inference", "--no-parts",
               "--config", "cpu-demo" if args.quick else "default"]  # fmt: skip
    command += ["--bf16"] * args.bf16 + ["--gradient-checkpointing"] * args.gradient_checkpointing
    command += ["--find-max-batch"] * find_max_batch
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{name} at batch {batch_size} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def largest_batches(args) -> dict:
    """Per model: memory per video and fixed memory from two measured batches, and the largest batch per GPU size."""
    small, large = args.memory_batches
    out = {}
    for name in ("avcanet",) if args.quick else ("avcanet", "videomae"):
        peaks = {batch: training_peak_mib(name, batch, args)["peak_training_mib"] for batch in (small, large)}
        per_video = (peaks[large] - peaks[small]) / (large - small)
        fixed = peaks[small] - small * per_video
        # RSS noise can exceed a tiny model's activations: no slope, no prediction
        fits = {size: max(0, int((0.9 * size * 1e9 / 2**20 - fixed) // per_video)) if per_video > 0 else None
                for size in GPU_SIZES_GB}  # fmt: skip
        out[name] = {"peaks_mib": peaks, "per_video_mib": per_video, "fixed_mib": fixed, "largest_batch": fits}
        print(f"{name}: peak {peaks[small]:.0f} MiB at batch {small}, {peaks[large]:.0f} MiB at batch {large}: "
              f"{per_video:.0f} MiB per video + {fixed:.0f} MiB", flush=True)  # fmt: skip
        if args.device.startswith("cuda"):
            total_gb = torch.cuda.get_device_properties(0).total_memory / 1e9
            measured = training_peak_mib(name, large, args, find_max_batch=True).get("max_batch")
            predicted = int((0.9 * total_gb * 1e9 / 2**20 - fixed) // per_video) if per_video > 0 else None
            out[name]["this_gpu"] = {"total_gb": total_gb, "predicted": predicted, "measured": measured}
            print(f"{name}: this GPU ({total_gb:.0f} GB): predicted {predicted}, measured {measured}", flush=True)
    memory = "GPU memory" if args.device.startswith("cuda") else "RSS (CPU: an indication only)"
    header = ["model", f"{memory} per video MiB", "fixed MiB"] + [f"{size} GB" for size in GPU_SIZES_GB]
    rows = [[name, f"{result['per_video_mib']:.0f}", f"{result['fixed_mib']:.0f}"]
            + [str(result["largest_batch"][size] or "n/a") for size in GPU_SIZES_GB] for name, result in out.items()]  # fmt: skip
    print(f"\nlargest training batch per GPU size (bf16 {args.bf16}, gradient checkpointing "
          f"{args.gradient_checkpointing}):")  # fmt: skip
    print(markdown_table(header, rows), flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CPU-demo config, batch 4, 10 s clip only")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="gradient_checkpointing_enable()")
    parser.add_argument("--memory-batches", type=int, nargs=2, metavar=("SMALL", "LARGE"),
                        help="batches measured for the memory per video (default 8 32 on a GPU, 1 2 on a CPU)")  # fmt: skip
    parser.add_argument("--memory-only", action="store_true", help="the largest-batch table only")
    parser.add_argument("--batch-size", type=int, help="default 16 (--quick 4)")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds of one batch per DataLoader worker")
    parser.add_argument("--media-dir", type=Path, default=DEFAULT_MEDIA_DIR)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.manual_seed(0)
    config_name = "cpu-demo" if args.quick else "default"
    batch_size = args.batch_size or (4 if args.quick else 16)
    keys = ["10s_640x360"] if args.quick else ["10s_640x360", "30s_720x1280"]
    settings = loader_settings(args.device)
    warmup = max(1, settings["num_workers"])  # batches: the first round
    steps = warmup * args.rounds
    print(f"machine: {machine()}; {config_name} config on {args.device}, bf16 {args.bf16}, gradient checkpointing "
          f"{args.gradient_checkpointing}, batch {batch_size}, "
          f"{steps} timed steps; loader {settings}", flush=True)  # fmt: skip

    args.memory_batches = args.memory_batches or ([8, 32] if args.device.startswith("cuda") else [1, 2])
    results = {"largest_batches": largest_batches(args)}
    if args.memory_only:
        if args.json:
            args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))
        return

    model = build("avcanet", config_name).to(args.device)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    processor = AVCANetProcessor.from_model_config(model.config)
    results["model_alone"] = model_rate(model, "avcanet", batch_size, steps, args)
    print(f"model alone (random inputs): {results['model_alone']:.1f} videos/s", flush=True)
    videos = batch_size * (warmup + steps)
    with tempfile.TemporaryDirectory(prefix="avcanet-gpu-bench-") as tmp:
        for key in keys:
            original = media_file(key, args.media_dir)
            copy = Path(tmp) / f"{key}.mp4"
            start = time.perf_counter()
            prepare_video(original, copy, prepared_settings_for(processor))
            print(f"{MEDIA[key][4]}: prepared copy made in {time.perf_counter() - start:.1f} s", flush=True)
            for source, path in (("original", original), ("prepared", copy)):
                rate = fed_rate(dataset_of([path] * videos), processor, model, batch_size, warmup, args)
                results[f"{key}/{source}"] = rate
                print(f"{MEDIA[key][4]}, {source}: {rate:.1f} videos/s", flush=True)

    rows = [[MEDIA[key][4], f"{results[key + '/original']:.1f}", f"{results[key + '/prepared']:.1f}",
             f"{results[key + '/prepared'] / results[key + '/original']:.1f}x",
             f"{results[key + '/prepared'] / results['model_alone']:.0%}"] for key in keys]  # fmt: skip
    header = ["clip", "original files videos/s", "prepared copy videos/s", "prepared / original",
              "prepared / model alone"]  # fmt: skip
    print(f"\nmodel alone: {results['model_alone']:.1f} videos/s")
    print(markdown_table(header, rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
