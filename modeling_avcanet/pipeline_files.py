"""The files of the `pipeline()` class that a saved model's `config.json` names (`custom_pipelines`), so that a folder
written by `model.save_pretrained` alone has them too: `pipeline()` then loads the AV-CANet pipeline, whose error says
that the processor must be saved there as well, instead of failing on a missing `pipeline_avcanet.py`."""

import shutil
from pathlib import Path

PIPELINE_FILES = ("pipeline_avcanet.py", "errors.py")


def pipeline_code_folder() -> Path | None:
    """Where the pipeline's code is: beside this file in a saved checkpoint's code, `processing/` in the package;
    None when neither has it (a checkpoint saved without its processor)."""
    here = Path(__file__).resolve().parent
    for folder in (here, here.parent / "processing"):
        if all((folder / name).is_file() for name in PIPELINE_FILES):
            return folder
    return None


def copy_pipeline_code(save_directory) -> None:
    """Copy the pipeline's files into `save_directory`, leaving any already there (the processor saves the same)."""
    source = pipeline_code_folder()
    if source is None:
        return
    for name in PIPELINE_FILES:
        target = Path(save_directory) / name
        if not target.exists():
            shutil.copyfile(source / name, target)
