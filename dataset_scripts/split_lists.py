"""
The layout the eMotions authors, VideoEmotion-8 and Ekman-6 releases share (UCF-101 style): one folder of videos per
class, `<root>/<class>/<video>.mp4`, and split lists `trainlist01.txt` / `testlist01.txt` with one video per line,
written as `<class>/<video>.mp4`, `<class>/<video>` (no extension) or either followed by a class number
(`<class>/<video>.avi 3`). An optional `classInd.txt` (`1 Excitation` per line) names the classes of the release.
"""

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from datasets import DatasetDict

from .common import VIDEO_EXTENSIONS, LabelVocabulary, build_dataset_dict, drop_unusable_videos

CLASS_INDEX_FILE = "classInd.txt"


def split_list_files(split_number: int = 1) -> dict[str, str]:
    """File names of the split lists of one train/test split, e.g. `trainlist01.txt` and `testlist01.txt`."""
    return {"train": f"trainlist{split_number:02d}.txt", "test": f"testlist{split_number:02d}.txt"}


def read_split_list(list_file: str | os.PathLike) -> list[tuple[int, str]]:
    """`(line number, "<class>/<video>[.ext]")` for every entry of a split list; blank lines are skipped."""
    entries = []
    for line_number, line in enumerate(Path(list_file).read_text().splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) > 1 and tokens[-1].isdigit():  # a trailing class number, as in UCF-101's lists
            tokens = tokens[:-1]
        entry = " ".join(tokens).replace("\\", "/")
        if "/" not in entry:
            raise ValueError(f"{list_file}:{line_number}: expected '<class>/<video>', got {line.strip()!r}.")
        entries.append((line_number, entry))
    return entries


def check_class_index(class_index_file: str | os.PathLike, vocabulary: LabelVocabulary) -> None:
    """Fail early, naming the file and line, when `classInd.txt` names a class outside the label set: the folder
    then holds another data set than the builder expects."""
    for line_number, line in enumerate(Path(class_index_file).read_text().splitlines(), start=1):
        tokens = line.split(maxsplit=1)
        if tokens:
            vocabulary.resolve(tokens[-1], where=f"{class_index_file}:{line_number}")


def resolve_video_path(video_root: Path, entry: str) -> Path:
    """The file a list entry points at; an entry without extension matches any video extension, `.mp4` first.
    A file that does not exist keeps its written path, so that the validity check reports it as missing."""
    path = video_root / entry
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        return path
    for extension in VIDEO_EXTENSIONS:
        candidate = path.with_name(path.name + extension)
        if candidate.is_file():
            return candidate
    return path.with_name(path.name + VIDEO_EXTENSIONS[0])


def read_split_samples(list_file: Path, video_root: Path, vocabulary: LabelVocabulary) -> list[tuple[str, str]]:
    """`(video path, label)` for every entry of a split list; the label comes from the entry's class folder."""
    samples = []
    for line_number, entry in read_split_list(list_file):
        label = vocabulary.resolve(entry.split("/", 1)[0], where=f"{list_file}:{line_number}")
        samples.append((str(resolve_video_path(video_root, entry)), label))
    return samples


def load_split_list_dataset(
    data_dir: str | os.PathLike,
    label_names: Sequence[str],
    dataset_name: str,
    label_aliases: Mapping[str, str] | None = None,
    split_number: int = 1,
    list_dir: str | os.PathLike | None = None,
    check_videos: bool = True,
    num_workers: int | None = None,
) -> DatasetDict:
    """
    A `DatasetDict` with splits `"train"` and `"test"` from class folders and split lists.

    Args:
        data_dir: the folder that holds one sub-folder of videos per class.
        label_names: the classes of the label set, in class-id order.
        dataset_name: names the data set in progress bars and in the report of skipped videos.
        label_aliases: other spellings of class names, e.g. `{"Sad": "Sadness"}`; names also match in any case.
        split_number: which of the release's train/test splits (`trainlistNN.txt` / `testlistNN.txt`) to read.
        list_dir: where the split lists and `classInd.txt` are; defaults to `data_dir`.
        check_videos: probe every video and leave out (and report once) those that cannot be decoded. Missing files
            are left out and reported either way.
        num_workers: threads for the check; defaults to the number of CPUs.
    """
    video_root = Path(data_dir).resolve()  # absolute paths: the data set works from any working directory
    list_dir = Path(list_dir) if list_dir is not None else video_root
    vocabulary = LabelVocabulary(label_names, label_aliases)
    class_index_file = list_dir / CLASS_INDEX_FILE
    if class_index_file.is_file():
        check_class_index(class_index_file, vocabulary)
    splits = {}
    for split, file_name in split_list_files(split_number).items():
        list_file = list_dir / file_name
        if not list_file.is_file():
            raise FileNotFoundError(
                f"Split list {list_file} not found ({dataset_name} needs {file_name} in {list_dir})."
            )
        splits[split] = read_split_samples(list_file, video_root, vocabulary)
    missing = {
        path: "file not found" for samples in splits.values() for path, _ in samples if not os.path.isfile(path)
    }
    splits = drop_unusable_videos(splits, dataset_name, check_videos, num_workers, known_problems=missing)
    return build_dataset_dict(splits, label_names)


__all__ = ["check_class_index", "load_split_list_dataset", "read_split_list", "split_list_files"]
