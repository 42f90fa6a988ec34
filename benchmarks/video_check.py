"""The decodability pre-pass of a training run (`dataset_scripts.video_check.find_bad_rows`, what `examples/train.py`
runs before epoch 1 unless `--skip_video_check`): cost per 100 rows per core, and the cost of the second run.

A parquet set in the Hub release's layout (video bytes in `video_data`, `file_name`, `emotion`) is written once:
`--rows` rows cycling over distinct generated clips (the synthetic demo's 2 s 64x64 H.264 + AAC clips, or with
`--clip real` the 5 s 720x1280 portrait clip of `common.MEDIA`, the size of a phone video), 1 % of them planted bad
(garbage bytes, a cut-off download, an empty cell, an mp4 without a video stream, in turn). It is read with
`datasets.load_dataset` (the Arrow conversion is done before any timing), then:

1. first run: every row probed (one container open + one decoded frame) in a pool of one thread per core, then
   with one thread (the per-core cost);
2. second run: the same files loaded again (a new `Dataset`, as a new process would), whose fingerprint is the
   same: the answer is read from the cache.

Target (issue 20): <= 1 s per 100 rows per core on the first run, ~0 on the second.

    python benchmarks/video_check.py                     # 2,000 rows of small clips
    python benchmarks/video_check.py --rows 10000        # the issue's size
    python benchmarks/video_check.py --clip real --rows 500
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from common import DEFAULT_MEDIA_DIR, audio_only_bytes, machine, markdown_table, media_file
from datasets import Video, load_dataset

from dataset_scripts.synthetic import generate_synthetic
from dataset_scripts.video_check import find_bad_rows

LABELS = ["Excitation", "Fear", "Neutral", "Relaxation", "Sad", "Tension"]


def distinct_clips(kind: str, count: int, folder: Path) -> list[bytes]:
    if kind == "real":
        return [media_file("5s_720x1280", DEFAULT_MEDIA_DIR).read_bytes()]
    dataset = generate_synthetic(folder / "synthetic", videos_per_class={"train": -(-count // 4)})  # 4 classes
    paths = [cell["path"] for cell in dataset["train"].cast_column("video", Video(decode=False))["video"]]
    return [Path(path).read_bytes() for path in paths][:count]


def bad_cells(good: bytes, folder: Path) -> list[bytes]:
    return [b"\x00garbage" * 400, good[: len(good) * 2 // 5], b"", audio_only_bytes(folder)]


def write_parquet(folder: Path, rows: int, clips: list[bytes], bad: list[bytes], per_file: int = 500) -> int:
    (folder / "data").mkdir(parents=True)
    planted = 0
    for start in range(0, rows, per_file):
        indices = range(start, min(start + per_file, rows))
        cells = []
        for index in indices:
            if index % 100 == 50:  # 1 %
                cells.append(bad[planted % len(bad)])
                planted += 1
            else:
                cells.append(clips[index % len(clips)])
        table = pa.table({"video_data": cells, "emotion": [LABELS[index % 6] for index in indices],
                          "file_name": [f"{index:08d}.mp4" for index in indices]})  # fmt: skip
        pq.write_table(table, folder / "data" / f"eMotions_chunk_{start // per_file:03d}.parquet")
    return planted


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--clip", choices=["small", "real"], default="small")
    parser.add_argument("--distinct", type=int, default=200, help="distinct small clips the rows cycle over")
    parser.add_argument("--json", help="write the numbers here too")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    work = Path(tempfile.mkdtemp(prefix="avcanet-video-check-"))
    try:
        clips = distinct_clips(args.clip, args.distinct, work)
        planted = write_parquet(work / "hub", args.rows, clips, bad_cells(clips[0], work))
        cache = work / "cache"
        load = lambda: load_dataset(str(work / "hub"), cache_dir=str(cache))["train"]  # noqa: E731
        rows = load()
        results = {"machine": machine(), "rows": args.rows, "clip": args.clip, "planted_bad": planted,
                   "bytes_per_clip": sum(map(len, clips)) // len(clips), "cores": cores}  # fmt: skip

        for label, workers in ((f"{cores} threads", cores), ("1 thread", 1)):
            for file in (cache / "avcanet_video_checks").glob("*.json"):
                file.unlink()  # a first run each time
            start, cpu_start = time.perf_counter(), time.process_time()
            problems = find_bad_rows(rows, "video_data", num_workers=workers, cache_dir=cache)
            seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
            assert len(problems) == planted, (len(problems), planted)
            results[f"first run, {label}"] = {
                "seconds": seconds,
                "s_per_100_rows_per_core": seconds * min(workers, cores) / (args.rows / 100),
                "cpu_s_per_100_rows": cpu_seconds / (args.rows / 100),
            }

        again = load()
        assert again._fingerprint == rows._fingerprint
        start, cpu_start = time.perf_counter(), time.process_time()
        assert len(find_bad_rows(again, "video_data", cache_dir=cache)) == planted
        results["second run (cached)"] = {"seconds": time.perf_counter() - start,
                                          "cpu_s_per_100_rows": (time.process_time() - cpu_start) / (args.rows / 100)}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(results["machine"])
    print(f"{args.rows} rows of {args.clip} clips (~{results['bytes_per_clip'] / 1024:.0f} KiB each), "
          f"{planted} planted bad, all found")  # fmt: skip
    table = []
    for key, value in results.items():
        if isinstance(value, dict):
            per_core = value.get("s_per_100_rows_per_core")
            table.append([key, f"{value['seconds']:.3f}", f"{per_core:.3f}" if per_core is not None else "-",
                          f"{value['cpu_s_per_100_rows']:.3f}"])  # fmt: skip
    print(markdown_table(["pass", "wall s", "s per 100 rows per core (wall x cores)", "CPU s per 100 rows"], table))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
