"""
The decodability pre-pass of a training run: every row of a (non-streaming) split is probed once with
`validity.find_video_problem` before epoch 1, so broken videos are known, reported and left out up front instead of
being met in a DataLoader worker hours later.

The probe is one container open and one decoded frame per row, run in a thread pool (FFmpeg releases the GIL while it
reads and decodes; threads need no pickling of the video bytes). The answer is cached under the split's `datasets`
fingerprint, which is the same for the same files, labels, carving and seed: the second run of the same command
reads a small JSON file instead of probing again.
"""

import hashlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import datasets
import fsspec
from datasets import Dataset
from tqdm.auto import tqdm

from .validity import find_video_problem

logger = logging.getLogger(__name__)

# bump when `find_video_problem` changes what it rejects: old cached answers are then not reused
CHECK_VERSION = 1
CACHE_FOLDER = "avcanet_video_checks"
ROWS_PER_READ = 64  # video cells read from the Arrow table at a time (bytes of ~64 videos in memory per read)


def probe_source(cell):
    """What `find_video_problem` reads from a video cell: `{"bytes", "path"}` (`Video(decode=False)`), raw bytes
    (a parquet `binary` column) or a path; a remote path (`hf://...`) is read into memory first."""
    if isinstance(cell, dict):
        cell = cell["bytes"] if cell.get("bytes") else cell.get("path")
    if cell is None:
        return b""
    if isinstance(cell, str) and "://" in cell:
        with fsspec.open(cell, "rb") as file:
            return file.read()
    return bytes(cell) if isinstance(cell, (bytearray, memoryview)) else cell


def _problem_of_cell(cell) -> str | None:
    try:
        return find_video_problem(probe_source(cell))
    except OSError as error:  # a remote file that cannot be read
        return f"cannot be read ({error})"


def cache_file(rows: Dataset, video_column: str, cache_dir: str | os.PathLike | None) -> Path:
    """Where the answer for `rows` is kept: keyed by its fingerprint, the column and the check's version."""
    key = hashlib.sha1(f"{rows._fingerprint}/{video_column}/{CHECK_VERSION}".encode()).hexdigest()[:20]
    root = Path(cache_dir) if cache_dir is not None else Path(datasets.config.HF_DATASETS_CACHE)
    return root / CACHE_FOLDER / f"{key}.json"


def find_bad_rows(
    rows: Dataset,
    video_column: str,
    num_workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    description: str = "Checking videos",
) -> dict[int, str]:
    """
    `{row index: problem}` for every row of `rows` whose video `find_video_problem` rejects, from the cache when
    this split was checked before (same fingerprint). `num_workers` threads (default: one per core).
    """
    path = cache_file(rows, video_column, cache_dir)
    if path.is_file():
        try:
            cached = json.loads(path.read_text())
            if cached.get("num_rows") == len(rows):
                return {int(index): problem for index, problem in cached["problems"].items()}
        except (ValueError, KeyError):
            pass  # a damaged cache file is simply checked again
    if num_workers is None:
        num_workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    problems: dict[int, str] = {}
    cells = rows.select_columns([video_column])
    with ThreadPoolExecutor(max_workers=num_workers) as executor, tqdm(
        total=len(rows), desc=description, unit="video", disable=len(rows) < 500
    ) as progress:
        for start in range(0, len(rows), ROWS_PER_READ):
            batch = cells[start : start + ROWS_PER_READ][video_column]
            for offset, problem in enumerate(executor.map(_problem_of_cell, batch)):
                if problem is not None:
                    problems[start + offset] = problem
            progress.update(len(batch))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp{os.getpid()}")
    temporary.write_text(json.dumps({"num_rows": len(rows), "problems": problems}))
    os.replace(temporary, path)  # never a half-written answer, even with several processes
    return problems


__all__ = ["cache_file", "find_bad_rows", "probe_source"]
