"""
Data set builders for video emotion recognition. Every builder returns a `datasets.DatasetDict` with a `video` column
(`Video(decode=False)`: the AV-CANet processor decodes it) and a `ClassLabel` column `label`; videos that cannot be
decoded are reported once and left out. `LABEL_POLARITIES[name]` is the polarity preset of each label set, in class
order, ready for `AVCANetConfig(label_polarities=...)`.

    from dataset_scripts import LABEL_POLARITIES, generate_synthetic
    dataset = generate_synthetic("data/synthetic")
    polarities = LABEL_POLARITIES["synthetic"]

Each module is also a command line that builds, summarises and optionally saves its data set, e.g.
`python -m dataset_scripts.synthetic --output data/synthetic`; `save_dataset` stores the polarities next to the
saved data (`read_label_polarities`).

`load_training_data` (`sources.py`) is how `examples/train.py` reads any of these, a Hub dataset id, local parquet,
Arrow or video files, or a stream, and chooses its splits.

`python -m dataset_scripts.prepare SRC --output DST` (`prepare_dataset`) turns a saved data set into a training-ready
copy that decodes many times faster every epoch.

Names are imported on first use, so that `python -m dataset_scripts.<module>` does not import its module twice and
importing one builder does not pay for the others.
"""

import importlib

_MODULE_OF = {
    "check_label_polarities": "common",
    "read_label_polarities": "common",
    "save_dataset": "common",
    "save_dataset_by_reference": "sources",
    "check_prepared_dataset": "prepare",
    "prepare_dataset": "prepare",
    "load_ekman6": "ekman6",
    "load_emotions": "emotions",
    "load_emotions_parquet": "emotions",
    "load_split_list_dataset": "split_lists",
    "load_training_data": "sources",
    "node_share": "sources",
    "generate_synthetic": "synthetic",
    "modality_ceilings": "synthetic",
    "find_undecodable_videos": "validity",
    "find_video_problem": "validity",
    "load_video_emotion8": "video_emotion8",
    "load_video_folder": "video_folder",
}
# the label sets with a polarity preset, by the names `AVCANetConfig.for_label_set` knows (plus "synthetic")
_PRESET_MODULES = {"emotions": "emotions", "ve8": "video_emotion8", "ekman6": "ekman6", "synthetic": "synthetic"}


def __getattr__(name: str):
    if name == "LABEL_POLARITIES":
        value = {
            label_set: importlib.import_module(f".{module}", __name__).LABEL_POLARITIES
            for label_set, module in _PRESET_MODULES.items()
        }
    elif name in _MODULE_OF:
        value = getattr(importlib.import_module(f".{_MODULE_OF[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


__all__ = [
    "LABEL_POLARITIES",
    "check_label_polarities",
    "check_prepared_dataset",
    "find_undecodable_videos",
    "find_video_problem",
    "generate_synthetic",
    "load_ekman6",
    "load_emotions",
    "load_emotions_parquet",
    "load_split_list_dataset",
    "load_training_data",
    "load_video_emotion8",
    "load_video_folder",
    "modality_ceilings",
    "node_share",
    "prepare_dataset",
    "read_label_polarities",
    "save_dataset",
    "save_dataset_by_reference",
]
