"""
Ekman-6 (Xu et al., 2016): 1,637 user-generated videos in Ekman's 6 basic emotions.
Layout: `<data_dir>/<class>/<video>.mp4` plus `trainlistNN.txt` / `testlistNN.txt` (and optionally
`classInd.txt`); see `split_lists.py` for the list format.

The tripolar polarities AV-CANet used on Ekman-6 were not released; the preset is bipolar like VAANet's
(`modeling_avcanet.EMOTION_LABEL_SETS["ekman6"]`): Ekman-6 has no neutral class.

Command line: `python -m dataset_scripts.ekman6 DATA_DIR [--split_number 1] [--output DIR]`.
"""

import argparse
import os

from datasets import DatasetDict

from modeling_avcanet.configuration_avcanet import EMOTION_LABEL_SETS

from .common import add_build_arguments, finish_cli
from .split_lists import load_split_list_dataset

DATASET_NAME = "Ekman-6"
LABEL_POLARITIES = dict(EMOTION_LABEL_SETS["ekman6"])
LABEL_NAMES = list(LABEL_POLARITIES)


def load_ekman6(
    data_dir: str | os.PathLike,
    split_number: int = 1,
    list_dir: str | os.PathLike | None = None,
    check_videos: bool = True,
    num_workers: int | None = None,
) -> DatasetDict:
    """
    Ekman-6 with splits `"train"` and `"test"`.

    Args:
        data_dir: the folder with one sub-folder of videos per class.
        split_number: which train/test split to read (`trainlistNN.txt` / `testlistNN.txt`).
        list_dir: where the split lists are; defaults to `data_dir`.
        check_videos: leave out, and report once, videos that cannot be decoded.
        num_workers: threads for that check; defaults to the number of CPUs.
    """
    return load_split_list_dataset(
        data_dir,
        LABEL_NAMES,
        DATASET_NAME,
        split_number=split_number,
        list_dir=list_dir,
        check_videos=check_videos,
        num_workers=num_workers,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build Ekman-6 from class folders and split lists.")
    parser.add_argument("data_dir", help="folder of <class>/<video> files with trainlistNN.txt/testlistNN.txt")
    parser.add_argument("--split_number", type=int, default=1, help="which train/test split (default: 1)")
    parser.add_argument("--list_dir", help="folder of the split lists (default: data_dir)")
    add_build_arguments(parser)
    args = parser.parse_args(argv)
    dataset = load_ekman6(
        args.data_dir, args.split_number, args.list_dir, check_videos=not args.no_check, num_workers=args.num_workers
    )
    finish_cli(dataset, LABEL_POLARITIES, args.output)


if __name__ == "__main__":
    main()
