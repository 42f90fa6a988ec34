"""The files of the `pipeline()` class that a saved model's `config.json` names (`custom_pipelines`), so that a folder
written by `model.save_pretrained` alone has them too: `pipeline()` then loads the AV-CANet pipeline, whose error says
that the processor must be saved there as well, instead of failing on a missing `pipeline_avcanet.py`."""

import shutil
from pathlib import Path

PIPELINE_MODULE = "pipeline_avcanet.py"


def pipeline_code_files() -> list[Path]:
    """The pipeline's module and every module it imports relatively (as transformers resolves remote code), from
    beside this file in a saved checkpoint's code or from `processing/` in the package; empty when neither has them
    all (a checkpoint saved without its processor)."""
    from transformers.dynamic_module_utils import get_relative_import_files

    here = Path(__file__).resolve().parent
    for folder in (here, here.parent / "processing"):
        module = folder / PIPELINE_MODULE
        try:
            return [module, *map(Path, get_relative_import_files(str(module)))]
        except OSError:  # not here, or one of its imports is missing
            continue
    return []


def copy_pipeline_code(save_directory) -> None:
    """Copy the pipeline's files into `save_directory`, leaving any already there (the processor saves the same)."""
    for source in pipeline_code_files():
        target = Path(save_directory) / source.name
        if not target.exists():
            shutil.copyfile(source, target)
