"""
eMotions (Wu et al.): 27,996 short videos from Douyin, Kuaishou and TikTok in 6 emotion classes.

Two releases are read:

- the authors' layout, `load_emotions(data_dir)`: `<data_dir>/<class>/<id>.mp4` with `trainlist01.txt` and
  `testlist01.txt` (the only split; the authors select checkpoints on the test list, there is no validation list);
- the Hugging Face Hub copy, `load_emotions_parquet(data_dir)`: `data/eMotions_chunk_NNN.parquet` files holding the
  video bytes in a `video_data` column. Its other columns are undocumented, so the label and file-name columns are
  found among common names or given explicitly. The videos are written once to `video_dir/<class>/<file name>`
  (the authors' layout), so that training seeks in files instead of copying every video into Arrow.

The Hub data spells "Sad" for "Sadness"; both layouts accept either spelling, in any case.

Command line: `python -m dataset_scripts.emotions DATA_DIR [--output DIR]` (the layout is detected).
"""

import argparse
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pyarrow
import pyarrow.parquet as pq
from datasets import DatasetDict
from tqdm.auto import tqdm

from modeling_avcanet.configuration_avcanet import EMOTION_LABEL_SETS

from .common import (
    VIDEO_EXTENSIONS,
    LabelVocabulary,
    add_build_arguments,
    build_dataset_dict,
    drop_unusable_videos,
    finish_cli,
)
from .split_lists import load_split_list_dataset, read_split_list, split_list_files

logger = logging.getLogger(__name__)

DATASET_NAME = "eMotions"
LABEL_POLARITIES = dict(EMOTION_LABEL_SETS["emotions"])
LABEL_NAMES = list(LABEL_POLARITIES)
LABEL_ALIASES = {"Sad": "Sadness"}

VIDEO_BYTES_COLUMN = "video_data"
LABEL_COLUMN_CANDIDATES = ("label", "emotion", "category")
FILE_NAME_COLUMN_CANDIDATES = ("file_name", "filename", "video_name", "video_id", "name", "id")


def load_emotions(
    data_dir: str | os.PathLike,
    list_dir: str | os.PathLike | None = None,
    check_videos: bool = True,
    num_workers: int | None = None,
) -> DatasetDict:
    """
    eMotions from the authors' layout: splits `"train"` (`trainlist01.txt`) and `"test"` (`testlist01.txt`).

    Args:
        data_dir: the folder with one sub-folder of videos per class.
        list_dir: where the split lists (and optionally `classInd.txt`) are; defaults to `data_dir`.
        check_videos: leave out, and report once, videos that cannot be decoded.
        num_workers: threads for that check; defaults to the number of CPUs.
    """
    return load_split_list_dataset(
        data_dir,
        LABEL_NAMES,
        DATASET_NAME,
        label_aliases=LABEL_ALIASES,
        list_dir=list_dir,
        check_videos=check_videos,
        num_workers=num_workers,
    )


def load_emotions_parquet(
    data_dir: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    label_column: str | None = None,
    file_name_column: str | None = None,
    split_lists_dir: str | os.PathLike | None = None,
    test_size: float = 0.2,
    seed: int = 0,
    check_videos: bool = True,
    num_workers: int | None = None,
) -> DatasetDict:
    """
    eMotions from a local copy of the Hub release, with splits `"train"` and `"test"`.

    Args:
        data_dir: the downloaded repository (holding `data/*.parquet`) or the folder of the parquet files itself.
        video_dir: where the videos are written, as `<class>/<file name>`; defaults to `<data_dir>/videos`. Files
            already there with the right size are not written again, so a second call only re-reads the parquet.
        label_column: the column with the class names; by default the first of `label`, `emotion`, `category`.
            Integer labels are read through the class names the parquet metadata records.
        file_name_column: the column with the video file names (e.g. `00011820.mp4`); by default the first of
            `file_name`, `filename`, `video_name`, `video_id`, `name`, `id`, else `<chunk>_<row>.mp4`.
        split_lists_dir: a folder with the authors' `trainlist01.txt` / `testlist01.txt`: videos are assigned to
            splits by their file name (without extension); videos in neither list are left out. Without it, a
            stratified random split with `test_size` and `seed` is drawn (the Hub copy records no split).
        check_videos: leave out, and report once, videos that cannot be decoded.
        num_workers: threads for that check; defaults to the number of CPUs.
    """
    chunks = find_parquet_chunks(data_dir)
    if not chunks:
        raise FileNotFoundError(
            f"No parquet files in {data_dir}/data or {data_dir} (expected eMotions_chunk_NNN.parquet)."
        )
    video_dir = (Path(video_dir) if video_dir is not None else Path(data_dir) / "videos").resolve()
    samples, problems = extract_parquet_videos(chunks, video_dir, label_column, file_name_column)
    if split_lists_dir is not None:
        splits = assign_listed_splits(samples, Path(split_lists_dir))
    else:
        splits = {"train": samples}
    splits = drop_unusable_videos(splits, DATASET_NAME, check_videos, num_workers, known_problems=problems)
    dataset = build_dataset_dict(splits, LABEL_NAMES)
    if split_lists_dir is not None:
        return dataset
    return dataset["train"].train_test_split(test_size=test_size, stratify_by_column="label", seed=seed)


def find_parquet_chunks(data_dir: str | os.PathLike) -> list[Path]:
    """The parquet files of the Hub release, in chunk order (none: `data_dir` is not a copy of the Hub release)."""
    data_dir = Path(data_dir)
    return sorted(data_dir.glob("data/*.parquet")) or sorted(data_dir.glob("*.parquet"))


def extract_parquet_videos(
    chunks: list[Path], video_dir: Path, label_column: str | None, file_name_column: str | None
) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """
    Write the video of every parquet row to `video_dir/<class>/<file name>`. Returns `(path, label)` of every row
    and `{path: problem}` for rows without video bytes. An unknown label stops with the chunk, row and label.
    """
    vocabulary = LabelVocabulary(LABEL_NAMES, LABEL_ALIASES)
    total_rows = sum(pq.ParquetFile(chunk).metadata.num_rows for chunk in chunks)
    samples, problems = [], {}
    with tqdm(total=total_rows, desc=f"Extracting {DATASET_NAME} videos", unit="video") as progress:
        for chunk in chunks:
            for row_index, (video_bytes, raw_label, file_name) in enumerate(
                iter_chunk_rows(chunk, label_column, file_name_column)
            ):
                label = vocabulary.resolve(raw_label, where=f"{chunk} row {row_index}")
                path = video_dir / label / (file_name or f"{chunk.stem}_{row_index:05d}.mp4")
                if video_bytes:
                    write_if_changed(path, video_bytes)
                else:
                    problems[str(path)] = f"no video bytes in {chunk.name} row {row_index}"
                samples.append((str(path), label))
                progress.update()
    return samples, problems


def iter_chunk_rows(
    chunk: Path, label_column: str | None, file_name_column: str | None
) -> Iterator[tuple[bytes | None, object, str | None]]:
    """`(video bytes, raw label, file name)` of every row of a chunk, read a few rows at a time to bound memory."""
    parquet = pq.ParquetFile(chunk)
    schema = parquet.schema_arrow
    if VIDEO_BYTES_COLUMN not in schema.names:
        raise ValueError(f"{chunk}: no {VIDEO_BYTES_COLUMN!r} column with the video bytes; columns: {schema.names}.")
    label_column = pick_column(schema.names, label_column, LABEL_COLUMN_CANDIDATES, chunk, "label_column")
    if label_column is None:
        raise ValueError(
            f"{chunk}: none of the columns {schema.names} is a label column {LABEL_COLUMN_CANDIDATES}; "
            "pass label_column (--label_column) naming the one with the class names."
        )
    file_name_column = pick_column(
        schema.names, file_name_column, FILE_NAME_COLUMN_CANDIDATES, chunk, "file_name_column"
    )
    class_names = integer_label_names(chunk, schema, label_column)
    columns = [VIDEO_BYTES_COLUMN, label_column] + ([file_name_column] if file_name_column else [])
    for batch in parquet.iter_batches(batch_size=8, columns=columns):
        for row in batch.to_pylist():
            video = row[VIDEO_BYTES_COLUMN]
            if isinstance(video, dict):  # a `datasets` Video-style struct: {"bytes": ..., "path": file name}
                video_bytes, embedded_name = video.get("bytes"), video.get("path")
            else:
                video_bytes, embedded_name = video, None
            file_name = row[file_name_column] if file_name_column else embedded_name
            raw_label = row[label_column]
            if class_names is not None and raw_label is not None:
                raw_label = class_names[raw_label]
            yield video_bytes, raw_label, video_file_name(file_name)


def pick_column(
    names: list[str], requested: str | None, candidates: tuple[str, ...], chunk: Path, option: str
) -> str | None:
    """The requested column (an error naming the chunk's columns if it is absent), else the first candidate present
    in any case, else `None`."""
    if requested is not None:
        if requested not in names:
            raise ValueError(f"{chunk}: {option}={requested!r} is not a column; columns: {names}.")
        return requested
    by_lower_name = {name.lower(): name for name in names}
    return next((by_lower_name[candidate] for candidate in candidates if candidate in by_lower_name), None)


def integer_label_names(chunk: Path, schema: pyarrow.Schema, label_column: str) -> list[str] | None:
    """For an integer label column, the class names `datasets` records in the parquet metadata (a `ClassLabel`);
    `None` for a column of names."""
    if not pyarrow.types.is_integer(schema.field(label_column).type):
        return None
    metadata = json.loads((schema.metadata or {}).get(b"huggingface", b"{}"))
    feature = metadata.get("info", {}).get("features", {}).get(label_column, {})
    if "names" not in feature:
        raise ValueError(
            f"{chunk}: label column {label_column!r} holds integers and the parquet metadata names no classes; "
            "pass label_column naming a column with the class names."
        )
    return feature["names"]


def video_file_name(raw_name) -> str | None:
    """The base name of a file-name value (ids get `.mp4`), so that every video lands directly in its class folder."""
    if raw_name is None or str(raw_name).strip() == "":
        return None
    name = Path(str(raw_name).replace("\\", "/")).name
    return name if Path(name).suffix else f"{name}.mp4"


def write_if_changed(path: Path, data: bytes) -> None:
    """Write `data` unless the file already holds that many bytes (a previous extraction), atomically."""
    if path.is_file() and path.stat().st_size == len(data):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)


def video_id(path: str) -> str:
    """`Excitation/00011820.mp4` and `Excitation/00011820` both name the video `00011820`."""
    name = Path(path).name
    return Path(name).stem if Path(name).suffix.lower() in VIDEO_EXTENSIONS else name


def assign_listed_splits(samples: list[tuple[str, str]], split_lists_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """Group samples by the split list that names their video id; report how many no list names."""
    split_of_id = {}
    for split, file_name in split_list_files().items():
        for _, entry in read_split_list(split_lists_dir / file_name):
            split_of_id[video_id(entry)] = split
    splits = {split: [] for split in split_list_files()}
    unlisted = 0
    for path, label in samples:
        split = split_of_id.get(video_id(path))
        if split is None:
            unlisted += 1
        else:
            splits[split].append((path, label))
    if unlisted:
        logger.warning(
            "%s: %d video(s) are in neither split list of %s and are left out.",
            DATASET_NAME,
            unlisted,
            split_lists_dir,
        )
    return splits


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build eMotions from the authors' layout or the Hub's parquet files.")
    parser.add_argument(
        "data_dir", help="class folders + trainlist01.txt/testlist01.txt, or the Hub copy (data/*.parquet)"
    )
    parser.add_argument("--list_dir", help="authors' layout: folder of the split lists (default: data_dir)")
    parser.add_argument("--video_dir", help="Hub copy: where the videos are written (default: data_dir/videos)")
    parser.add_argument("--label_column", help="Hub copy: the column with the class names")
    parser.add_argument("--file_name_column", help="Hub copy: the column with the video file names")
    parser.add_argument("--split_lists_dir", help="Hub copy: folder with the authors' trainlist01.txt/testlist01.txt")
    parser.add_argument("--test_size", type=float, default=0.2, help="Hub copy without split lists: test fraction")
    parser.add_argument("--seed", type=int, default=0, help="Hub copy without split lists: seed of the split")
    add_build_arguments(parser)
    args = parser.parse_args(argv)
    check = {"check_videos": not args.no_check, "num_workers": args.num_workers}
    if find_parquet_chunks(args.data_dir):
        dataset = load_emotions_parquet(
            args.data_dir,
            video_dir=args.video_dir,
            label_column=args.label_column,
            file_name_column=args.file_name_column,
            split_lists_dir=args.split_lists_dir,
            test_size=args.test_size,
            seed=args.seed,
            **check,
        )
    else:
        dataset = load_emotions(args.data_dir, list_dir=args.list_dir, **check)
    finish_cli(dataset, LABEL_POLARITIES, args.output)


if __name__ == "__main__":
    main()
