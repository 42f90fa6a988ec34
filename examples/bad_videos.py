"""
Rows whose video cannot be decoded, in a training run (`examples/train.py`): found, named, left out, counted.

Two layers, for every data source (saved folders, video folders, Hub ids, parquet/Arrow/video globs, streams,
prepared copies) and every split:

- `drop_bad_rows`, before epoch 1, for splits on disk: the decodability pre-pass (`dataset_scripts.video_check`,
  cached by the split's fingerprint) leaves the rows it rejects out of the split and reports them;
  `--skip_video_check` turns it off. Past `--max_bad_video_fraction` of a split the run stops
  (`BadVideoFractionError`) naming the first bad rows, before it spends any accelerator time.
- `collate_skipping_bad_rows`, in the collator: a row that still fails to decode (a stream, a damage the cheap probe
  does not see, or the pre-pass turned off) is left out of its batch, which gets smaller; no row is ever substituted
  or repeated. The batch carries what was left out (`SKIPPED_KEY`), so the records reach the main process from
  DataLoader workers too; the trainer (`long_runs.LongRunTrainerMixin`) logs each row once into a `SkippedVideoLog`,
  writes `skipped_videos.json` and keeps the fraction in check for splits that were not pre-checked.
"""

import hashlib
import json
import logging
import os
from collections import Counter
from pathlib import Path

import torch
from datasets import Dataset

from dataset_scripts.video_check import find_bad_rows, probe_source
from processing.errors import VideoDecodingError

logger = logging.getLogger("avcanet.bad_videos")

ROW_KEY = "__row__"  # the row's index in its split, added by `RowNumbered`
SKIPPED_KEY = "skipped_videos"  # the batch's records of the rows left out
SKIPPED_VIDEOS_FILE = "skipped_videos.json"
# columns that name a row well enough to find it (the Hub's eMotions parquet has `file_name`)
IDENTIFYING_COLUMNS = ("file_name", "filename", "path", "video_path", "video_id", "id", "name", "url")
# a streamed or unchecked split is judged against --max_bad_video_fraction once this many of its rows were read
MIN_ROWS_TO_JUDGE = 200
# what makes a row skippable; a prepared copy made for other settings (`PreparedVideoMismatchError`) is not: every
# row would be skipped
SKIPPABLE_ERRORS = (VideoDecodingError, FileNotFoundError)


class BadVideoFractionError(RuntimeError):
    """More of a split's videos cannot be decoded than `--max_bad_video_fraction` allows."""


def row_record(row: dict, video_column: str, cause) -> dict:
    """What identifies a bad row: its index in its split (`ROW_KEY`, when known), the file name or path its cells
    give, the size and a short SHA-1 of its bytes, and the decoder's cause."""
    cell = row.get(video_column)
    record = {"row": row.get(ROW_KEY)}
    names = [str(row[column]) for column in IDENTIFYING_COLUMNS if isinstance(row.get(column), str)]
    if isinstance(cell, dict) and cell.get("path"):
        names.insert(0, str(cell["path"]))
    elif isinstance(cell, str):
        names.insert(0, cell)
    record["file"] = names[0] if names else None
    data = cell.get("bytes") if isinstance(cell, dict) else cell
    if isinstance(data, (bytes, bytearray, memoryview)):
        record["bytes"] = len(data)
        record["sha1"] = hashlib.sha1(data).hexdigest()[:12]
    elif isinstance(cell, (str, dict)) and record["file"] and os.path.isfile(record["file"]):
        record["bytes"] = os.path.getsize(record["file"])
    record["cause"] = getattr(cause, "cause", None) or str(cause)
    return record


def describe(record: dict) -> str:
    """One line: `split 'train', row 12, 00000012.mp4, 5000 bytes, sha1 3f2a...: cause`."""
    parts = [f"split {record.get('split')!r}"]
    parts.append(f"row {record['row']}" if record.get("row") is not None else "a streamed row")
    if record.get("file"):
        parts.append(str(record["file"]))
    if record.get("bytes") is not None:
        parts.append(f"{record['bytes']} bytes")
    if record.get("sha1"):
        parts.append(f"sha1 {record['sha1']}")
    return ", ".join(parts) + f": {record['cause']}"


def collate_skipping_bad_rows(rows: list[dict], decode, probe, video_column: str) -> dict:
    """
    `decode(rows)` (the collator's batch), with the rows that cannot be decoded left out. The whole batch is tried
    first; only when it fails is each row probed alone (`probe(row)`: the processor in evaluation mode, which draws
    nothing from the random generators), and the batch decoded again from the good rows. A batch of bad rows only
    becomes `{"labels": <empty>}`. The records of the rows left out are under `SKIPPED_KEY` (a list, maybe empty).
    """
    try:
        inputs = dict(decode(rows))
    except SKIPPABLE_ERRORS:
        good, skipped = [], []
        for row in rows:
            try:
                probe(row)
                good.append(row)
            except SKIPPABLE_ERRORS as error:
                skipped.append(row_record(row, video_column, error))
        if not skipped:  # a failure of the batch that no single row has: not a bad row
            raise
        inputs = dict(decode(good)) if good else {"labels": torch.empty(0, dtype=torch.long)}
    else:
        skipped = []
    inputs[SKIPPED_KEY] = skipped  # last: `find_batch_size` reads the first tensor of the batch
    return inputs


def is_empty_batch(inputs: dict) -> bool:
    labels = inputs.get("labels")
    return labels is not None and "pixel_values_videos" not in inputs and len(labels) == 0


class RowNumbered(torch.utils.data.Dataset):
    """
    A split whose rows carry their index (`ROW_KEY`), so a row the collator leaves out can be named. `numbers` are
    the indices to report (the rows' indices before the pre-pass dropped some); default `range(len(rows))`. Nothing
    is copied: rows are read from `rows` as they are asked for.
    """

    def __init__(self, rows: Dataset, numbers: list[int] | None = None):
        self.rows, self.numbers = rows, numbers

    def __len__(self) -> int:
        return len(self.rows)

    def _number(self, index: int) -> int:
        return self.numbers[index] if self.numbers is not None else index

    def __getitem__(self, index: int) -> dict:
        return {**self.rows[index], ROW_KEY: self._number(index)}

    def __getitems__(self, indices: list[int]) -> list[dict]:  # what a DataLoader asks for a whole batch
        return [{**row, ROW_KEY: self._number(index)} for index, row in zip(indices, self.rows.__getitems__(indices))]

    def __getattr__(self, name):  # `features`, `column_names`, ... of the split
        if name in ("rows", "numbers"):
            raise AttributeError(name)
        return getattr(self.rows, name)


class SkippedVideoLog:
    """Every row left out in this process (pre-pass and collators), each logged once, and how many rows of each
    split were read, for the `--max_bad_video_fraction` check of splits met as they come."""

    def __init__(self, max_bad_video_fraction: float = 0.01):
        self.max_bad_video_fraction = max_bad_video_fraction
        self.records: dict[tuple, dict] = {}
        self.rows_read, self.rows_skipped = Counter(), Counter()
        self.prechecked: set[str] = set()

    def add(self, records: list[dict], split: str) -> int:
        """Records the rows left out of a batch of `split`; returns how many. New rows are logged once."""
        for record in records:
            record = {"split": split, **record}
            key = (split, record.get("row"), record.get("sha1"), record.get("file"), record["cause"])
            if key not in self.records:
                self.records[key] = record
                logger.warning("Skipping a video that cannot be decoded: %s", describe(record))
        self.rows_skipped[split] += len(records)
        return len(records)

    def count_read(self, split: str, num_rows: int) -> None:
        """`num_rows` rows of `split` were read (kept or skipped); a split that was not pre-checked is judged."""
        self.rows_read[split] += num_rows
        if split in self.prechecked or self.rows_read[split] < MIN_ROWS_TO_JUDGE:
            return
        if self.rows_skipped[split] > self.max_bad_video_fraction * self.rows_read[split]:
            raise fraction_error(
                split, self.rows_skipped[split], self.rows_read[split], self.max_bad_video_fraction,
                [record for record in self.records.values() if record["split"] == split],
            )  # fmt: skip

    def all_records(self) -> list[dict]:
        return list(self.records.values())

    def write(self, output_dir: str | os.PathLike, records: list[dict] | None = None) -> Path:
        """`skipped_videos.json` in `output_dir` (all the records, or `records`: those of every process)."""
        records = self.all_records() if records is None else records
        by_split = Counter(record["split"] for record in records)
        path = Path(output_dir) / SKIPPED_VIDEOS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"count": len(records), "by_split": by_split, "videos": records}, indent=1))
        return path

    @staticmethod
    def summary(records: list[dict], path) -> str:
        by_split = Counter(record["split"] for record in records)
        splits = ", ".join(f"{split} {count}" for split, count in sorted(by_split.items()))
        return f"Skipped videos that cannot be decoded: {len(records)}" + (f" ({splits})" if splits else "") + (
            f"; listed in {path}"
        )


def fraction_error(split: str, num_bad: int, num_rows: int, max_fraction: float, records: list[dict]):
    first = "\n".join(f"  {describe(record)}" for record in records[:5])
    return BadVideoFractionError(
        f"{num_bad} of {num_rows} rows ({num_bad / max(num_rows, 1):.1%}) of split {split!r} cannot be decoded, "
        f"more than --max_bad_video_fraction {max_fraction:g}. The first:\n{first}\nRepair or remove them, or allow "
        "more with --max_bad_video_fraction."
    )


def drop_bad_rows(
    rows,
    split: str,
    video_column: str,
    log: SkippedVideoLog,
    check: bool = True,
    num_workers: int | None = None,
    cache_dir: str | None = None,
):
    """
    The split as the training run reads it: a split on disk is pre-checked (unless `check` is false), its bad rows
    recorded in `log` and left out, and it is stopped past the log's `max_bad_video_fraction`; then its rows are
    numbered (`RowNumbered`) with their indices before the drop. A stream (or `None`) is returned as it is.
    """
    if not isinstance(rows, Dataset):
        return rows
    if not check:
        return RowNumbered(rows)
    problems = find_bad_rows(rows, video_column, num_workers, cache_dir, description=f"Checking the {split} videos")
    log.prechecked.add(split)
    if not problems:
        return RowNumbered(rows)
    records = [
        {"split": split, **row_record({**rows[index], ROW_KEY: index}, video_column, problem)}
        for index, problem in sorted(problems.items())
    ]
    if len(problems) > log.max_bad_video_fraction * len(rows):
        raise fraction_error(split, len(problems), len(rows), log.max_bad_video_fraction, records)
    log.add([{key: value for key, value in record.items() if key != "split"} for record in records], split)
    kept = [index for index in range(len(rows)) if index not in problems]
    logger.warning("Split %r: %d of %d videos cannot be decoded and are left out.", split, len(problems), len(rows))
    return RowNumbered(rows.select(kept), numbers=kept)


__all__ = [
    "BadVideoFractionError",
    "RowNumbered",
    "SkippedVideoLog",
    "collate_skipping_bad_rows",
    "drop_bad_rows",
    "probe_source",
    "row_record",
]
