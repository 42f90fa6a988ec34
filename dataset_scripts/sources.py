"""
Where a training run's data comes from, and how its splits are chosen: what `examples/train.py` calls.

Three ways to point at data, all ending in the same columns (a video cell the processor reads, and a `ClassLabel`
`label` in the class order of the label set's polarities):

- `dataset_dir`: a folder written by a builder's `--output` (`save_dataset`) or by `dataset_scripts.prepare`, read
  with `load_from_disk`, its polarities from its `label_polarities.json`;
- `dataset_name`: a Hub dataset id (`"Conna/eMotions"`), a local folder of parquet, Arrow or video files, or a glob
  of such files, read with `datasets.load_dataset` (`streaming=True` gives an `IterableDataset` that is never written
  to disk);
- neither: the caller's default (the synthetic demo set).

Labels are matched the way the builders match them (case-insensitively, "Sad" read as "Sadness"), and their
polarities come from `label_polarities` (given), a preset named by `label_set`, a `label_polarities.json` in a local
folder, or the one preset that names every label of the data set.

A data set with only `train` (and maybe `test`) gets its validation split carved from `train`, stratified by label
with a seed, as transformers' examples do (`validation_split_percentage`).
"""

import glob
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from datasets import (
    ClassLabel,
    Dataset,
    DatasetDict,
    Features,
    IterableDataset,
    IterableDatasetDict,
    Value,
    Video,
    load_dataset,
    load_from_disk,
)
from datasets.distributed import split_dataset_by_node

from .common import LABEL_POLARITIES_FILE, VIDEO_EXTENSIONS, LabelVocabulary, check_label_polarities, save_dataset

logger = logging.getLogger(__name__)

VIDEO_COLUMN_CANDIDATES = ("video", "video_data", "video_path")
LABEL_COLUMN_CANDIDATES = ("label", "labels", "emotion", "category")
# how release files spell a label differently from a preset, by label set
LABEL_ALIASES = {"emotions": {"Sad": "Sadness"}}
# `load_dataset`'s packaged builder for a glob of files, by extension
BUILDER_OF_EXTENSION = {".parquet": "parquet", ".arrow": "arrow", **{ext: "videofolder" for ext in VIDEO_EXTENSIONS}}


@dataclass
class TrainingData:
    """The splits of a run (`eval`/`test` may be `None`) and the polarity of every class, in class order."""

    train: Dataset | IterableDataset
    eval: Dataset | IterableDataset | None
    test: Dataset | IterableDataset | None
    label_polarities: dict[str, str]
    video_column: str


def load_training_data(
    dataset_name: str | None = None,
    dataset_config_name: str | None = None,
    dataset_dir: str | os.PathLike | None = None,
    streaming: bool = False,
    label_set: str | None = None,
    label_polarities: Mapping[str, str] | None = None,
    video_column: str | None = None,
    label_column: str | None = None,
    train_split: str = "train",
    eval_split: str | None = None,
    test_split: str | None = "test",
    validation_split_percentage: float = 10,
    max_train_samples: int | None = None,
    max_eval_samples: int | None = None,
    seed: int = 42,
    cache_dir: str | None = None,
) -> TrainingData:
    """
    The train, evaluation and test splits of a data set, with labels matched to the label set's polarities.

    Args:
        dataset_name: a Hub dataset id, a local folder (parquet, Arrow, video files, or a `save_to_disk` folder) or
            a glob of parquet, Arrow or video files.
        dataset_config_name: the Hub configuration (`load_dataset(..., name=...)`).
        dataset_dir: a folder written by `save_dataset` (or `save_to_disk`, with `label_polarities` given).
        streaming: read `dataset_name` as an `IterableDataset`, never written to disk.
        label_set: a polarity preset (`dataset_scripts.LABEL_POLARITIES`: "emotions", "ve8", "ekman6", "synthetic").
        label_polarities: `{label: polarity}`, the class order of the run; overrides `label_set`.
        video_column, label_column: the columns to read; by default the first `Video` / `ClassLabel` feature, else
            the first of `VIDEO_COLUMN_CANDIDATES` / `LABEL_COLUMN_CANDIDATES` present.
        train_split, eval_split, test_split: split names. `eval_split=None` takes `"validation"` when present and
            otherwise carves `validation_split_percentage` % of the train split, stratified by label, with `seed`;
            an `eval_split` that is named and absent is an error. `test_split` is used when present.
        max_train_samples, max_eval_samples: keep only the first N examples (after carving), for quick runs.
    """
    if dataset_name is not None and dataset_dir is not None:
        raise ValueError("Give --dataset_name or --dataset_dir, not both.")
    if dataset_dir is not None and streaming:
        raise ValueError(
            f"--streaming reads --dataset_name; {dataset_dir} is a saved folder: use --dataset_name {dataset_dir}."
        )
    source = str(dataset_name if dataset_name is not None else dataset_dir)
    dataset, saved_polarities = load_source(source, dataset_config_name, streaming, cache_dir)

    if train_split not in dataset:
        raise ValueError(
            f"Data set {source} has no split {train_split!r} (--train_split); its splits: {list(dataset)}."
        )
    features = resolved_features(dataset[train_split])
    video_column = find_column(features, video_column, Video, VIDEO_COLUMN_CANDIDATES, source, "video")
    label_column = find_column(features, label_column, ClassLabel, LABEL_COLUMN_CANDIDATES, source, "label")
    raw_names = label_names_of(dataset, features[label_column], label_column, streaming)
    if label_polarities is None and label_set is None:
        label_polarities = saved_polarities
    polarities = choose_label_polarities(raw_names, label_set, label_polarities, source, label_column)
    vocabulary = LabelVocabulary(list(polarities), LABEL_ALIASES.get(label_set or preset_of(polarities), {}))
    dataset = type(dataset)(
        {
            split: relabel(rows, video_column, label_column, vocabulary, f"data set {source}, split {split!r}")
            for split, rows in dataset.items()
        }
    )

    splits = choose_splits(dataset, source, train_split, eval_split, test_split, validation_split_percentage, seed)
    train, evaluation, test = (
        first(split, limit) for split, limit in zip(splits, (max_train_samples, max_eval_samples, None))
    )
    return TrainingData(train, evaluation, test, polarities, video_column)


def load_source(
    source: str, config_name: str | None, streaming: bool, cache_dir: str | None
) -> tuple[DatasetDict | IterableDatasetDict, dict[str, str] | None]:
    """The data set behind `source`, and the polarities saved beside it (`label_polarities.json`), if any."""
    path = Path(source)
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        if streaming:
            raise ValueError(
                f"{source} is a save_to_disk folder; it is read from disk, not streamed: drop --streaming."
            )
        dataset = load_from_disk(source)
        dataset = dataset if isinstance(dataset, DatasetDict) else DatasetDict(train=dataset)
    elif path.is_dir():  # `load_dataset` picks the parquet, arrow or videofolder builder from the files' extensions
        dataset = load_dataset(source, name=config_name, streaming=streaming, cache_dir=cache_dir)
    elif glob.has_magic(source):
        files = sorted(glob.glob(source, recursive=True))
        builders = {BUILDER_OF_EXTENSION.get(Path(file).suffix.lower()) for file in files}
        if not files or len(builders) != 1 or None in builders:
            raise ValueError(f"{source} must match parquet, arrow or video files of one kind; it matches {files[:5]}.")
        dataset = load_dataset(builders.pop(), data_files=files, streaming=streaming, cache_dir=cache_dir)
    else:  # a Hub dataset id
        dataset = load_dataset(source, name=config_name, streaming=streaming, cache_dir=cache_dir)
    polarities_file = path / LABEL_POLARITIES_FILE
    saved = json.loads(polarities_file.read_text()) if path.is_dir() and polarities_file.is_file() else None
    return dataset, saved


def resolved_features(rows: Dataset | IterableDataset):
    """The features of a split; a stream whose builder records none is read up to its first example."""
    if rows.features is None:
        rows = rows._resolve_features()
    return rows.features


def find_column(
    features, requested: str | None, feature_type, candidates: tuple[str, ...], source: str, kind: str
) -> str:
    """The `requested` column, else the first of type `feature_type`, else the first candidate name present."""
    names = list(features)
    if requested is not None:
        if requested not in names:
            raise ValueError(f"Data set {source} has no column {requested!r} (--{kind}_column); its columns: {names}.")
        return requested
    typed = [name for name, feature in features.items() if isinstance(feature, feature_type)]
    by_lower_name = {name.lower(): name for name in names}
    found = typed[:1] or [by_lower_name[name] for name in candidates if name in by_lower_name][:1]
    if not found:
        raise ValueError(
            f"Data set {source} has no {kind} column: none of its columns {names} is a {feature_type.__name__} "
            f"or one of {list(candidates)}; name it with --{kind}_column."
        )
    return found[0]


def label_names_of(dataset, feature, label_column: str, streaming: bool) -> list[str] | None:
    """The label names the data set uses (raw spelling), or `None` for a stream of plain strings (not read ahead)."""
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    if streaming:
        return None
    return sorted({str(value) for rows in dataset.values() for value in rows.data.column(label_column).to_pylist()})


def preset_of(polarities: Mapping[str, str]) -> str | None:
    """The name of the preset whose classes are exactly `polarities`' keys, if any."""
    from . import LABEL_POLARITIES

    return next((name for name, preset in LABEL_POLARITIES.items() if list(preset) == list(polarities)), None)


def choose_label_polarities(
    raw_names: list[str] | None,
    label_set: str | None,
    label_polarities: Mapping[str, str] | None,
    source: str,
    label_column: str,
) -> dict[str, str]:
    """The polarities given, the preset named, or the one preset every label of the data set resolves in."""
    from . import LABEL_POLARITIES

    if label_polarities is not None:
        return check_label_polarities(list(label_polarities), label_polarities)
    if label_set is not None:
        if label_set not in LABEL_POLARITIES:
            raise ValueError(f"Unknown --label_set {label_set!r}; presets: {list(LABEL_POLARITIES)}.")
        return dict(LABEL_POLARITIES[label_set])
    if raw_names is not None:
        for name, preset in LABEL_POLARITIES.items():
            vocabulary = LabelVocabulary(list(preset), LABEL_ALIASES.get(name, {}))
            if all(knows(vocabulary, raw) for raw in raw_names):
                logger.info("Data set %s: labels %s are the %r preset's.", source, raw_names, name)
                return dict(preset)
    raise ValueError(
        f"Data set {source}: the labels of column {label_column!r} ({raw_names or 'a stream of names'}) are not "
        f"those of a preset {list(LABEL_POLARITIES)}; pass --label_set or --label_polarities "
        '\'{"<label>": "positive" | "neutral" | "negative", ...}\'.'
    )


def relabel(rows, video_column: str, label_column: str, vocabulary: LabelVocabulary, where: str):
    """
    `rows` with a `ClassLabel` column `label` in the vocabulary's class order, and its video column as undecoded
    `{"bytes", "path"}` cells. Only the label column is rewritten: the videos (often most of the data) are not copied.
    """
    if isinstance(resolved_features(rows)[video_column], Video):
        rows = rows.cast_column(video_column, Video(decode=False))
    features = resolved_features(rows)
    class_label = ClassLabel(names=vocabulary.names)
    raw_feature = features[label_column]
    raw_names = raw_feature.names if isinstance(raw_feature, ClassLabel) else None
    if raw_names == vocabulary.names and label_column == "label":
        return rows

    def class_id(raw, row: str) -> int:
        name = raw_names[raw] if raw_names is not None and raw is not None else raw
        return class_label.str2int(vocabulary.resolve(name, where=f"{where}, column {label_column!r}, {row}"))

    if isinstance(rows, IterableDataset):
        new_features = Features({name: feature for name, feature in features.items() if name != label_column})
        new_features["label"] = class_label
        return rows.map(
            lambda example: {"label": class_id(example[label_column], "an example")},
            remove_columns=[label_column] if label_column != "label" else None,
            features=new_features,
        )
    raw_labels = rows.data.column(label_column).to_pylist()
    ids = [class_id(raw, f"row {index}") for index, raw in enumerate(raw_labels)]
    return rows.remove_columns(label_column).add_column("label", ids, feature=class_label)


def knows(vocabulary: LabelVocabulary, raw_label) -> bool:
    try:
        vocabulary.resolve(raw_label, where="")
    except ValueError:
        return False
    return True


def choose_splits(
    dataset: DatasetDict | IterableDatasetDict,
    source: str,
    train_split: str,
    eval_split: str | None,
    test_split: str | None,
    validation_split_percentage: float,
    seed: int,
) -> tuple:
    """(train, eval, test): eval named, or `"validation"`, or carved from train; what is used for what is logged."""
    train = dataset[train_split]
    test = dataset[test_split] if test_split is not None and test_split in dataset else None
    if eval_split is not None and eval_split not in dataset:
        raise ValueError(f"Data set {source} has no split {eval_split!r} (--eval_split); its splits: {list(dataset)}.")
    eval_split = eval_split or ("validation" if "validation" in dataset else None)
    if eval_split is not None:
        evaluation, eval_origin = dataset[eval_split], f"split {eval_split!r}"
    elif isinstance(train, IterableDataset):
        evaluation, eval_origin = None, "none (a stream has no validation split carved: pass --eval_split)"
    else:
        try:
            carved = train.train_test_split(
                test_size=validation_split_percentage / 100, stratify_by_column="label", seed=seed
            )
        except ValueError as error:
            raise ValueError(
                f"Data set {source}: cannot carve {validation_split_percentage:g}% of split {train_split!r} as a "
                f"validation split stratified by label ({error}); change --validation_split_percentage or pass "
                "--eval_split."
            ) from error
        train, evaluation = carved["train"], carved["test"]
        eval_origin = f"{validation_split_percentage:g}% of {train_split!r}, stratified by label, seed {seed}"
    logger.info(
        "Data set %s: training on split %r, evaluating on %s, testing on %s.",
        source,
        train_split,
        eval_origin,
        f"split {test_split!r}" if test is not None else "nothing (no test split)",
    )
    return train, evaluation, test


def first(rows, limit: int | None):
    """The first `limit` examples (all when `None`)."""
    if rows is None or limit is None:
        return rows
    if isinstance(rows, IterableDataset):
        return rows.take(limit)
    return rows.select(range(min(limit, len(rows))))


def node_share(
    rows: IterableDataset, seed: int, shuffle_buffer_size: int, process_index: int, num_processes: int
) -> IterableDataset:
    """
    This process's share of a training stream, shuffled through a buffer. Each process reads only its share: whole
    files when their number divides among the processes, every `num_processes`-th example otherwise.
    `IterableDataset.set_epoch` (called by Trainer at every epoch) reshuffles it.
    """
    if num_processes > 1:
        if rows.num_shards % num_processes:
            logger.warning(
                "The stream has %d file(s), not a multiple of %d processes: each process reads every file and keeps "
                "every %d-th example.",
                rows.num_shards,
                num_processes,
                num_processes,
            )
        rows = split_dataset_by_node(rows, rank=process_index, world_size=num_processes)
    return rows.shuffle(seed=seed, buffer_size=shuffle_buffer_size)


def save_dataset_by_reference(
    dataset: DatasetDict, output_dir: str | os.PathLike, label_polarities: Mapping[str, str]
) -> Path:
    """
    `save_dataset` with each video stored as the path of its file instead of its bytes (`save_to_disk` embeds the
    bytes of every `Video` cell): the folder takes kilobytes instead of the size of the videos, and stays valid as
    long as the files stay where they are. `--dataset_dir` reads both kinds.
    """
    referenced = {}
    for split, rows in dataset.items():
        videos = rows.cast_column("video", Video(decode=False))["video"]
        embedded = [index for index, video in enumerate(videos) if video["bytes"]]
        if embedded:
            raise ValueError(
                f"Split {split!r} holds video bytes, not files (rows {embedded[:3]}...): use save_dataset."
            )
        paths = [video["path"] for video in videos]
        referenced[split] = rows.remove_columns("video").add_column("video", paths, feature=Value("string"))
    return save_dataset(DatasetDict(referenced), output_dir, label_polarities)
