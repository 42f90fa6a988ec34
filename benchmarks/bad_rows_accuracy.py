"""Issue 20's end-to-end target: a parquet set of ~150 rows with a few bad rows of different kinds trains through
`examples/train.py` with `--dataset_name` and with `--streaming`, names every bad row, and reaches the test accuracy
of the same set without them.

Two sets in the Hub layout (`data/{train,validation,test}-00000-of-00001.parquet`, video bytes in `video`, `label`,
`file_name`), from the synthetic demo set (30 / 6 / 8 clips per class): "clean", and "bad", the same rows plus five
bad ones (garbage bytes, a cut-off download, an empty cell, an mp4 without video stream, in train; one garbage row in
validation and one in test). Four runs of the CPU-demo model, 75 steps of 8 (about 5 epochs), seed 1: clean and bad,
each from disk (`--dataset_name`, pre-pass on) and streamed (`--streaming`, skipped as met).

    python benchmarks/bad_rows_accuracy.py            # ~4 training runs of a few minutes on 2 cores
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from common import REPO, audio_only_bytes, machine, markdown_table
from datasets import Video

from dataset_scripts.synthetic import generate_synthetic


def write_sets(work: Path) -> dict[str, Path]:
    dataset = generate_synthetic(work / "videos", videos_per_class={"train": 30, "validation": 6, "test": 8})
    splits = {}
    for split, rows in dataset.items():
        cells = rows.cast_column("video", Video(decode=False))["video"]
        names = rows.features["label"].names
        splits[split] = [(Path(cell["path"]).read_bytes(), names[label], Path(cell["path"]).name)
                         for cell, label in zip(cells, rows["label"])]  # fmt: skip
    good = splits["train"][0][0]
    bad = {
        "train": [(b"\x00garbage" * 400, "Joy", "bad_garbage.mp4"), (good[: len(good) * 2 // 5], "Calm", "bad_truncated.mp4"),
                  (b"", "Tension", "bad_empty.mp4"), (audio_only_bytes(work), "Sadness", "bad_audio_only.mp4")],
        "validation": [(b"\x01garbage" * 300, "Joy", "bad_validation.mp4")],
        "test": [(b"\x02garbage" * 300, "Calm", "bad_test.mp4")],
    }  # fmt: skip
    roots = {}
    for name in ("clean", "bad"):
        root = work / name / "data"
        root.mkdir(parents=True)
        for split, rows in splits.items():
            rows = list(rows)
            if name == "bad":
                for offset, row in enumerate(bad[split]):  # spread through the split
                    rows.insert((offset + 1) * len(rows) // (len(bad[split]) + 1), row)
            videos, labels, files = zip(*rows)
            table = pa.table({"video": list(videos), "label": list(labels), "file_name": list(files)})
            pq.write_table(table, root / f"{split}-00000-of-00001.parquet")
        roots[name] = root.parent
    return roots


def run(root: Path, output_dir: Path, streaming: bool) -> dict:
    command = [sys.executable, str(REPO / "examples" / "train.py"), "--output_dir", str(output_dir),
               "--dataset_name", str(root), "--label_set", "synthetic", "--max_steps", "75",
               "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end", "false",
               "--max_bad_video_fraction", "0.05", "--use_cpu", "true", "--dataloader_num_workers", "2"]  # fmt: skip
    if streaming:
        command += ["--streaming", "true", "--shuffle_buffer_size", "200"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "HF_HOME": str(output_dir / "hf_home")}
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(result.stderr[-4000:])
    metrics = json.loads((output_dir / "test_results.json").read_text())
    skipped_file = output_dir / "skipped_videos.json"
    skipped = json.loads(skipped_file.read_text()) if skipped_file.exists() else {"videos": []}
    return {"test_accuracy": metrics["test_accuracy"], "test_macro_f1": metrics["test_macro_f1"],
            "test_skipped_videos": metrics.get("test_skipped_videos"),
            "named": sorted({Path(video["file"]).name for video in skipped["videos"]})}  # fmt: skip


def main():
    work = Path(tempfile.mkdtemp(prefix="avcanet-bad-rows-"))
    roots = write_sets(work)
    table, results = [], {}
    for name in ("clean", "bad"):
        for streaming in (False, True):
            key = f"{name}, {'--streaming' if streaming else '--dataset_name'}"
            results[key] = run(roots[name], work / "runs" / key.replace(", ", "-").replace("--", ""), streaming)
            row = results[key]
            table.append([key, f"{row['test_accuracy']:.4f}", f"{row['test_macro_f1']:.4f}",
                          row["test_skipped_videos"], ", ".join(row["named"]) or "-"])  # fmt: skip
            print(table[-1], flush=True)
    print(machine())
    print(markdown_table(["set, source", "test accuracy", "test macro F1", "test rows skipped", "bad rows named"], table))
    print(f"(work folder {work})")


if __name__ == "__main__":
    main()
