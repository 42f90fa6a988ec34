"""Per-epoch training data cost on ONE core: original file vs prepared copy vs the authors' JPEG loader, in one run.

Everything runs pinned to one core (`os.sched_setaffinity`, inherited by the ffmpeg subprocesses), one torch thread,
one FFmpeg decoder thread. For each generated H.264 + AAC file (30 fps, GOP 250, 48 kHz stereo AAC):

- one-off preparation: `dataset_scripts.prepare.prepare_video` (the copy for the default config: 112 px short side,
  H.264 4:4:4 keyframe every 8 frames, 16 kHz FLAC; and the same in 4:2:0, `pixel_format="yuv420p"`) vs the authors'
  dump (`ffmpeg ... -vf scale=-1:240 %06d.jpg` + `ffmpeg -vn a.mp3`, `preprocessing.authors_extract`): seconds
  (median of 3 alternating runs after an untimed one; one run for the 10 min file) and disk size;
- per-epoch data cost per video, training mode, in rotating order, each method called repeatedly for 0.6 s per round
  (the mean per call is the round's value; the median over rounds is reported): `AVCANetProcessor()(videos=original,
  training=True)`, the same call on the prepared copies, and the authors' loader on its dump
  (`preprocessing.authors_load`: PIL opening the 128 sampled JPEGs, resize + crop, librosa MFCC; the release's
  training loader reads the same 128 JPEGs and the same MFCC, only at random positions);
- the cores it takes to feed a GPU training at 500 videos/s, from the measured per-core rates and the model's
  FLOPs (186 GFLOPs forward per video, about 560 per training step), with the whole training mode on the CPU
  (`train.py` leaves the augmentation, the normalisation and the log-mel to the GPU: what its loader's cores deliver
  is measured by `prepared_loading.py`).

    python benchmarks/prepared_data.py            # 10 s 640x360, 30 s 720x1280, 10 min 1280x720 (~10 min)
    python benchmarks/prepared_data.py --quick    # 10 s 640x360 and 5 s 720x1280, 3 rounds (< 1 min)

Needs the ffmpeg CLI and librosa (`pip install librosa`) for the authors' side; without them it is skipped.
(`predict.py` videos/s with 0 / 1 / 2 DataLoader workers is measured by the script that comes with the parallel
`predict.py`; its rate on prepared copies is this script's per-core rate times the workers.)
"""

import argparse
import importlib.util
import json
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
from common import DEFAULT_MEDIA_DIR, MEDIA, machine, markdown_table, media_file, median
from preprocessing import authors_extract, authors_load

from dataset_scripts.prepare import prepare_video, prepared_settings_for
from processing import AVCANetProcessor, AVCANetVideoProcessor

FORWARD_GFLOPS, TRAINING_GFLOPS = 186, 560  # per video, default config (FlopCounterMode; backward ~2x forward)
GPU_VIDEOS_PER_S = 500  # an H200 training AV-CANet in bf16 at ~30 % of its 989 dense TFLOP/s
ROUND_SECONDS = 0.6  # each method runs this long per round (repeated calls), its mean per call is the round's time


def directory_mib(path: Path) -> float:
    return sum(file.stat().st_size for file in path.rglob("*") if file.is_file()) / 2**20


def mean_call_seconds(method, at_least_s: float = ROUND_SECONDS) -> float:
    """Seconds per call of `method`, called until `at_least_s` have passed (once for a slow one): a 40 ms read timed
    once swings by half with the machine's noise and with the augmentation drawn (a rotation costs 20 ms)."""
    calls, start = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - start < at_least_s:
        method()
        calls += 1
    return (time.perf_counter() - start) / calls


def prepare_both(video: Path, workdir: Path, processor: AVCANetProcessor, with_authors: bool, rounds: int) -> dict:
    """The one-off steps, our copies (4:4:4 and 4:2:0) and the authors' dump, timed and sized: the median of `rounds`
    alternating runs after one untimed run of each (a data set prepares thousands of videos in one process: the
    per-video cost is the warm one; the authors' ffmpeg processes start cold every time either way)."""
    copy, copy_420, dump = workdir / "prepared.mp4", workdir / "prepared_420.mp4", workdir / "authors"
    settings = {
        "prepare": prepared_settings_for(processor),
        "prepare_420": prepared_settings_for(processor, pixel_format="yuv420p"),
    }
    times = {"prepare_s": [], "prepare_420_s": [], "dump_s": []}
    for round_index in range(rounds + 1):
        for name, path in (("prepare", copy), ("prepare_420", copy_420)):
            start = time.perf_counter()
            prepare_video(video, path, settings[name])
            times[f"{name}_s"].append(time.perf_counter() - start)
        if with_authors:
            shutil.rmtree(dump, ignore_errors=True)
            dump.mkdir()
            start = time.perf_counter()
            authors_extract(video, dump)
            times["dump_s"].append(time.perf_counter() - start)
    out = {"copy": copy, "copy_420": copy_420, "prepare_runs_s": times["prepare_s"]}
    for name, path in (("prepare", copy), ("prepare_420", copy_420)):
        out[f"{name}_mib"] = path.stat().st_size / 2**20
        out[f"{name}_s"] = median(times[f"{name}_s"][1:] or times[f"{name}_s"])
    if with_authors:
        out.update(dump=dump, dump_s=median(times["dump_s"][1:]), dump_mib=directory_mib(dump),
                   dump_runs_s=times["dump_s"])  # fmt: skip
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 s 640x360 and 5 s 720x1280, 3 rounds")
    parser.add_argument("--repeats", type=int, help="timed rounds per file (default 7, --quick 3)")
    parser.add_argument("--core", type=int, help="the core to run on (default: the first this process may use)")
    parser.add_argument("--skip-authors", action="store_true")
    parser.add_argument("--media-dir", type=Path, default=DEFAULT_MEDIA_DIR)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    core = args.core if args.core is not None else min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})  # ONE core, for this process and the ffmpeg it starts
    torch.set_num_threads(1)
    repeats = args.repeats or (3 if args.quick else 7)
    keys = ["10s_640x360", "5s_720x1280"] if args.quick else ["10s_640x360", "30s_720x1280", "10min_1280x720"]
    with_authors = not args.skip_authors and shutil.which("ffmpeg") is not None
    if with_authors and importlib.util.find_spec("librosa") is None:
        print("librosa is not installed: skipping the authors' pipeline (pip install librosa)")
        with_authors = False

    print(f"machine: {machine()}; pinned to core {core}, 1 torch thread, 1 decoder thread")
    paths = {key: media_file(key, args.media_dir) for key in keys}
    processor = AVCANetProcessor(video_processor=AVCANetVideoProcessor(decoder_threads=1))
    results = {}
    with tempfile.TemporaryDirectory(prefix="avcanet-prepared-bench-") as tmp:
        for key, video in paths.items():
            workdir = Path(tmp) / key
            workdir.mkdir()
            rounds = 1 if MEDIA[key][1] > 60 else 3  # the 10 min file: one timed run (4 x 2 min otherwise)
            one_off = prepare_both(video, workdir, processor, with_authors, rounds)
            methods = {
                "original": lambda video=video: processor(videos=str(video), training=True),
                "prepared": lambda copy=one_off["copy"]: processor(videos=str(copy), training=True),
                "prepared 4:2:0": lambda copy=one_off["copy_420"]: processor(videos=str(copy), training=True),
            }
            if with_authors:
                methods["authors"] = lambda dump=one_off["dump"]: authors_load(dump)
            for method in methods.values():  # warm-up: page cache, lazy initialisation, librosa's set-up
                method()
            runs = {name: [] for name in methods}
            names = list(methods)
            for round_index in range(repeats):
                for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
                    runs[name].append(mean_call_seconds(methods[name]))
            results[key] = {
                "file": MEDIA[key][4],
                "per_video_s": {name: median(values) for name, values in runs.items()},
                "runs_s": runs,
                **{name: value for name, value in one_off.items() if name not in ("copy", "copy_420", "dump")},
            }
            print_file(results[key])
    print_summary(results, repeats)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "core": core, "results": results}, indent=2))


def print_file(result: dict):
    per_video = result["per_video_s"]
    line = ", ".join(
        f"{name} {seconds * 1000:.0f} ms ({1 / seconds:.1f} videos/s)" for name, seconds in per_video.items()
    )
    print(f"\n{result['file']}: {line}")
    print(f"  one-off: prepared copy {result['prepare_s']:.2f} s, {result['prepare_mib']:.2f} MiB; 4:2:0 "
          f"{result['prepare_420_s']:.2f} s, {result['prepare_420_mib']:.2f} MiB", end="")
    if "dump_s" in result:
        print(f"; authors' JPEG + mp3 dump {result['dump_s']:.2f} s, {result['dump_mib']:.2f} MiB", end="")
    print(flush=True)


def print_summary(results: dict, repeats: int):
    with_authors = all("authors" in result["per_video_s"] for result in results.values())
    header = ["file", "original videos/s", "prepared videos/s", "4:2:0 videos/s", "prepared / original"]
    header += ["authors' loader videos/s", "prepared / authors", "4:2:0 / authors"] if with_authors else []
    header += ["prepare s", "copy MiB", "4:2:0 MiB"]
    header += ["authors' dump s", "dump MiB", "dump s / prepare s", "copy / dump size", "4:2:0 / dump size"] \
        if with_authors else []  # fmt: skip
    rows = []
    for result in results.values():
        rate = {name: 1 / seconds for name, seconds in result["per_video_s"].items()}
        row = [result["file"], f"{rate['original']:.1f}", f"{rate['prepared']:.1f}", f"{rate['prepared 4:2:0']:.1f}",
               f"{rate['prepared'] / rate['original']:.1f}x"]  # fmt: skip
        if with_authors:
            row += [f"{rate['authors']:.1f}", f"{rate['prepared'] / rate['authors']:.1f}x",
                    f"{rate['prepared 4:2:0'] / rate['authors']:.1f}x"]  # fmt: skip
        row += [f"{result['prepare_s']:.2f}", f"{result['prepare_mib']:.2f}", f"{result['prepare_420_mib']:.2f}"]
        if with_authors:
            speedup, size_ratio = result["dump_s"] / result["prepare_s"], result["prepare_mib"] / result["dump_mib"]
            row += [f"{result['dump_s']:.2f}", f"{result['dump_mib']:.2f}", f"{speedup:.2f}x", f"{size_ratio:.2f}",
                    f"{result['prepare_420_mib'] / result['dump_mib']:.2f}"]  # fmt: skip
        rows.append(row)
    print(f"\none core, training mode, medians of {repeats} rounds of {ROUND_SECONDS} s per method")
    print(markdown_table(header, rows))
    gpu_tflops = GPU_VIDEOS_PER_S * TRAINING_GFLOPS / 1000
    print(f"\nfeeding a GPU that trains {GPU_VIDEOS_PER_S} videos/s ({TRAINING_GFLOPS} GFLOPs per training video, "
          f"{FORWARD_GFLOPS} forward: {gpu_tflops:.0f} TFLOP/s of GPU work) with the whole training mode on the CPU "
          "(train.py's loader leaves a fifth of it to the GPU: prepared_loading.py):")  # fmt: skip
    for result in results.values():
        rates = {name: 1 / seconds for name, seconds in result["per_video_s"].items()}
        cores = ", ".join(f"{name} {math.ceil(GPU_VIDEOS_PER_S / rate)} cores ({rate * TRAINING_GFLOPS / 1000:.1f} "
                          f"GPU TFLOP/s fed per core)" for name, rate in rates.items())  # fmt: skip
        print(f"  {result['file']}: {cores}")


if __name__ == "__main__":
    main()
