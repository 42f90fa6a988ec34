"""transformers' own common test suites (`ModelTesterMixin`, `ConfigTester`), taken from the source distribution of the
installed (pinned) transformers version: the wheel does not ship them.

The sdist is fetched once with `pip download` into `$AVCANET_TEST_CACHE` (default `~/.cache/avcanet-tests`) and the two
files are unpacked there as the package `transformers_common_tests`. Three modules they import are not in the sdist;
their uses are `@slow` tests or an `issubclass` check, so empty stand-ins are written for them. A download that fails
raises (a test failure with the cause), never a skip.
"""

import importlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import transformers

VERSION = transformers.__version__
CACHE = Path(os.environ.get("AVCANET_TEST_CACHE", Path.home() / ".cache" / "avcanet-tests"))
PACKAGE = "transformers_common_tests"
FILES = ("test_modeling_common.py", "test_configuration_common.py")

# modules of transformers' repository that the two files import and the sdist lacks
STAND_INS = {
    # `ModelTesterMixin` derives from it; every test it adds is `@slow` (torch.export, run in tests/test_modeling.py)
    "exporters/test_export.py": "class ExportTesterMixin:\n    pass\n",
    # only used in an `issubclass` check of models that can generate; AV-CANet cannot
    "generation/test_utils.py": "class GenerationTesterMixin:\n    pass\n",
    # only read by `ConfigTester.check_config_arguments_init`, which returns early for configs with sub-configs
    "utils/test_configuration_utils.py": "config_common_kwargs = {}\n",
}


def _fetch_sdist(folder: Path) -> Path:
    archive = folder / f"transformers-{VERSION}.tar.gz"
    if archive.exists():
        return archive
    command = [sys.executable, "-m", "pip", "download", f"transformers=={VERSION}", "--no-deps", "--no-binary", ":all:"]
    command += ["--disable-pip-version-check", "-d", str(folder)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not archive.exists():
        raise RuntimeError(
            f"Could not download the transformers {VERSION} source distribution (needed for transformers' common "
            f"tests) into {folder} with `{' '.join(command)}`: {(result.stderr or result.stdout).strip()[-2000:]}\n"
            f"Run that command with network access, or put transformers-{VERSION}.tar.gz into {folder}."
        )
    return archive


def load_common_tests():
    """`(test_modeling_common, test_configuration_common)` modules of the installed transformers version."""
    root = CACHE / f"transformers-{VERSION}"
    package = root / PACKAGE
    if not all((package / name).exists() for name in FILES):
        root.mkdir(parents=True, exist_ok=True)
        archive = _fetch_sdist(CACHE)
        package.mkdir(exist_ok=True)
        with tarfile.open(archive) as sdist:
            for name in FILES:
                member = sdist.extractfile(f"transformers-{VERSION}/tests/{name}")
                (package / name).write_bytes(member.read())
        (package / "__init__.py").write_text("")
        for relative, text in STAND_INS.items():
            path = package / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            (path.parent / "__init__.py").write_text("")
            path.write_text(text)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return (
        importlib.import_module(f"{PACKAGE}.test_modeling_common"),
        importlib.import_module(f"{PACKAGE}.test_configuration_common"),
    )
