"""
What every builder shares: the features of a video emotion data set, label-name matching, polarity checks, leaving
out unusable videos, and saving a built data set together with the polarities of its labels.

Every builder returns a `DatasetDict` with two columns: `video`, a `Video(decode=False)` feature (`{"path", "bytes"}`,
decoded later by the AV-CANet processor, which seeks to the frames it needs instead of decoding whole files here) and
`label`, a `ClassLabel` in the class order of the label set's polarity preset, so that `ClassLabel.names` and
`AVCANetConfig(label_polarities=...)` agree on every class id.
"""

import argparse
import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from datasets import ClassLabel, Dataset, DatasetDict, Features, Video

from modeling_avcanet.configuration_avcanet import POLARITIES

from .validity import find_undecodable_videos, report_skipped_videos

LABEL_POLARITIES_FILE = "label_polarities.json"
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".flv", ".mpeg", ".mpg", ".m4v")


class LabelVocabulary:
    """
    The class names of a label set, matched the way release files spell them: case-insensitively and through
    aliases (the eMotions Hub data writes "Sad" for "Sadness").
    """

    def __init__(self, names: Sequence[str], aliases: Mapping[str, str] | None = None):
        self.names = list(names)
        self._canonical = {name.lower(): name for name in self.names}
        for alias, name in (aliases or {}).items():
            self._canonical[alias.lower()] = name

    def resolve(self, raw_label, where: str) -> str:
        """The canonical class name of `raw_label`; `where` (a file, line or row) goes into the error otherwise."""
        name = self._canonical.get(str(raw_label).strip().lower()) if raw_label is not None else None
        if name is None:
            raise ValueError(f"{where}: unknown label {raw_label!r}; expected one of {self.names}.")
        return name


def check_label_polarities(label_names: Sequence[str], label_polarities: Mapping[str, str]) -> dict[str, str]:
    """The polarity of every label, in class order; a clear error when one is missing or not a known polarity."""
    missing = [name for name in label_names if name not in label_polarities]
    if missing:
        raise ValueError(f"No polarity given for label(s) {missing}; every class needs one of {POLARITIES}.")
    invalid = {name: label_polarities[name] for name in label_names if label_polarities[name] not in POLARITIES}
    if invalid:
        raise ValueError(f"Unknown polarity for {invalid}; polarities are {POLARITIES}.")
    return {name: label_polarities[name] for name in label_names}


def find_unusable_videos(
    paths: Sequence[str],
    dataset_name: str,
    check_videos: bool,
    num_workers: int | None,
    known_problems: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """
    `{path: problem}` for the videos to leave out, all of them reported in one warning: those in `known_problems`
    (found while building, e.g. missing files) and, when `check_videos`, those that fail `find_video_problem`.
    """
    problems = dict(known_problems or {})
    if check_videos:
        unchecked = [path for path in paths if path not in problems]
        problems.update(find_undecodable_videos(unchecked, num_workers, description=f"Checking {dataset_name} videos"))
    report_skipped_videos(problems, dataset_name)
    return problems


def drop_unusable_videos(
    splits: Mapping[str, Sequence[tuple[str, str]]],
    dataset_name: str,
    check_videos: bool,
    num_workers: int | None,
    known_problems: Mapping[str, str] | None = None,
) -> dict[str, list[tuple[str, str]]]:
    """`splits` (`{split: [(path, label), ...]}`) without the videos `find_unusable_videos` rejects."""
    paths = [path for samples in splits.values() for path, _ in samples]
    problems = find_unusable_videos(paths, dataset_name, check_videos, num_workers, known_problems)
    return {split: [sample for sample in samples if sample[0] not in problems] for split, samples in splits.items()}


def build_dataset_dict(splits: Mapping[str, Sequence[tuple[str, str]]], label_names: Sequence[str]) -> DatasetDict:
    """`{split: [(path, label name), ...]}` as a `DatasetDict`."""
    features = Features({"video": Video(decode=False), "label": ClassLabel(names=list(label_names))})
    return DatasetDict(
        {
            split: Dataset.from_dict(
                {"video": [path for path, _ in samples], "label": [label for _, label in samples]}, features=features
            )
            for split, samples in splits.items()
        }
    )


def save_dataset(dataset: DatasetDict, output_dir: str | os.PathLike, label_polarities: Mapping[str, str]) -> Path:
    """
    `dataset.save_to_disk(output_dir)` plus `label_polarities.json`, so that a training script given only the folder
    knows the polarity of every class. Read it back with `datasets.load_from_disk` and `read_label_polarities`.

    `save_to_disk` copies every video file into the saved Arrow data (`{"bytes": ..., "path": <file name>}`): the
    folder is self-contained and as large as the videos. For a large release, rather call the builder again.
    """
    label_names = next(iter(dataset.values())).features["label"].names
    polarities = check_label_polarities(label_names, label_polarities)
    output_dir = Path(output_dir)
    dataset.save_to_disk(str(output_dir))
    (output_dir / LABEL_POLARITIES_FILE).write_text(json.dumps(polarities, indent=2) + "\n")
    return output_dir


def read_label_polarities(saved_dir: str | os.PathLike) -> dict[str, str]:
    """The polarity of every label of a data set written by `save_dataset`, in class order."""
    return json.loads((Path(saved_dir) / LABEL_POLARITIES_FILE).read_text())


def summarize(dataset: DatasetDict, label_polarities: Mapping[str, str]) -> str:
    """Videos per split and per class, with each class's polarity: what the command-line entry points print."""
    label_names = next(iter(dataset.values())).features["label"].names
    width = max(len(name) for name in label_names)
    lines = []
    for split, rows in dataset.items():
        counts = Counter(rows["label"])
        lines.append(f"{split}: {len(rows)} videos")
        lines += [
            f"  {name:<{width}}  {label_polarities[name]:<8}  {counts[index]}"
            for index, name in enumerate(label_names)
        ]
    return "\n".join(lines)


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every builder's command line shares."""
    parser.add_argument(
        "--output", help="save the DatasetDict here, videos included (save_to_disk + label_polarities.json)"
    )
    parser.add_argument("--no_check", action="store_true", help="skip the decodability check of every video")
    parser.add_argument("--num_workers", type=int, help="threads for the decodability check (default: CPUs)")


def finish_cli(dataset: DatasetDict, label_polarities: Mapping[str, str], output: str | None) -> None:
    """Print the summary and save the data set when an output folder was given."""
    print(summarize(dataset, label_polarities))
    if output:
        print(f"Saved to {save_dataset(dataset, output, label_polarities)}")
