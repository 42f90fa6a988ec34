"""
Any folder of `<split>/<class>/<video>.mp4` (or `<class>/<video>.mp4`, a single `"train"` split), read with
`datasets`' `videofolder` builder: split names come from the first level, class names from the second, in sorted
order. The label set is the user's, so its polarities must be given too: EP-CE needs the polarity of every class.

Command line:
`python -m dataset_scripts.video_folder DATA_DIR --label_polarities '{"happy": "positive", ...}' [--output DIR]`
(`--label_polarities` also takes the path of a JSON file).
"""

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path

from datasets import DatasetDict, Video, load_dataset

from .common import add_build_arguments, check_label_polarities, find_unusable_videos, finish_cli


def load_video_folder(
    data_dir: str | os.PathLike,
    label_polarities: Mapping[str, str],
    cache_dir: str | os.PathLike | None = None,
    check_videos: bool = True,
    num_workers: int | None = None,
) -> DatasetDict:
    """
    A `DatasetDict` from a folder of `<split>/<class>/<video>` files.

    Args:
        data_dir: the root of the folder tree.
        label_polarities: the polarity (`"positive"`, `"neutral"` or `"negative"`) of every class folder name;
            a class without one is an error. Extra names are ignored, so a preset of a larger label set works.
        cache_dir: where `datasets` caches the file index; defaults to its usual cache.
        check_videos: leave out, and report once, videos that cannot be decoded.
        num_workers: threads for that check; defaults to the number of CPUs.
    """
    dataset = load_dataset("videofolder", data_dir=os.path.abspath(data_dir), cache_dir=cache_dir)
    dataset = dataset.cast_column("video", Video(decode=False))
    check_label_polarities(next(iter(dataset.values())).features["label"].names, label_polarities)
    paths = {split: [video["path"] for video in rows["video"]] for split, rows in dataset.items()}
    problems = find_unusable_videos(
        [path for split_paths in paths.values() for path in split_paths],
        dataset_name=f"video folder {data_dir}",
        check_videos=check_videos,
        num_workers=num_workers,
    )
    if not problems:
        return dataset
    return DatasetDict(
        {
            split: rows.select([index for index, path in enumerate(paths[split]) if path not in problems])
            for split, rows in dataset.items()
        }
    )


def read_label_polarities_argument(value: str) -> dict[str, str]:
    """`--label_polarities`: inline JSON or the path of a JSON file."""
    return json.loads(Path(value).read_text() if Path(value).is_file() else value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build a data set from a <split>/<class>/<video> folder.")
    parser.add_argument("data_dir", help="root of the <split>/<class>/<video> tree")
    parser.add_argument(
        "--label_polarities",
        required=True,
        type=read_label_polarities_argument,
        help='JSON (inline or a file): {"<class>": "positive" | "neutral" | "negative", ...}',
    )
    parser.add_argument("--cache_dir", help="datasets cache for the file index")
    add_build_arguments(parser)
    args = parser.parse_args(argv)
    dataset = load_video_folder(
        args.data_dir,
        args.label_polarities,
        cache_dir=args.cache_dir,
        check_videos=not args.no_check,
        num_workers=args.num_workers,
    )
    finish_cli(dataset, args.label_polarities, args.output)


if __name__ == "__main__":
    main()
