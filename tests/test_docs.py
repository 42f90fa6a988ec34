"""The documentation cannot rot: every ```python block of README.md and docs/*.md runs, each in a process of its own
(forked from `doc_block_runner.py`, which imports torch and transformers once), in a fresh folder laid out as after
`make demo` (a tiny saved model in `outputs/avcanet-demo`, its ONNX export in `outputs/avcanet-onnx`, a generated
video with sound in `clip.mp4`), offline; every
relative link points to a file (and heading) that exists; every docs page is reachable from the README; the README
stays one screen.

A block that cannot run here (it needs the Hub or a GPU) is fenced ```python no-run; there may be only a few.
Pages added to docs/ later are picked up without touching this file.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from doc_pages import README, REPOSITORY, code_blocks, heading_anchors, links, pages
from media import make_video
from saved_model import save_tiny_model

README_MAX_LINES = 150
# Raising this is a review decision: every block that does not run is a block that can rot.
MAX_NO_RUN_BLOCKS = 6


def python_blocks() -> list[tuple[str, dict]]:
    return [
        (f"{page.relative_to(REPOSITORY)}:{block['line']}", block)
        for page in pages()
        for block in code_blocks(page)
        if block["language"] == "python"
    ]


def runnable_blocks():
    return [pytest.param(block, id=name) for name, block in python_blocks() if block["info"] != "no-run"]


@pytest.fixture(scope="module")
def workspace_template(tmp_path_factory):
    """What a snippet may rely on: `outputs/avcanet-demo` (model + processor, as `save_pretrained` writes them), its
    ONNX export `outputs/avcanet-onnx` (as `examples/export_onnx.py` writes it) and `clip.mp4` (H.264 + AAC with a
    tone)."""
    folder = tmp_path_factory.mktemp("docs-workspace")
    save_tiny_model(folder / "outputs" / "avcanet-demo")
    sys.path.insert(0, str(REPOSITORY / "examples"))
    import export_onnx

    assert export_onnx.main([str(folder / "outputs" / "avcanet-demo"), str(folder / "outputs" / "avcanet-onnx")]) == 0
    make_video(folder / "clip.mp4", num_frames=48, fps=24, tone_start_s=0.0)
    return folder


def offline_environment(home: Path) -> dict:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "TRANSFORMERS_"))}
    pythonpath = [str(REPOSITORY), environment.get("PYTHONPATH", "")]
    return environment | {
        "PYTHONPATH": os.pathsep.join(part for part in pythonpath if part),
        "HF_HOME": str(home / "hf"),  # its own remote-code module cache
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MPLBACKEND": "Agg",
    }


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    """tests/doc_block_runner.py: imports torch and transformers once, then forks a fresh process per block."""
    home = tmp_path_factory.mktemp("docs-runner")
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("doc_block_runner.py"))],
        cwd=home,
        env=offline_environment(home),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert json.loads(process.stdout.readline()) == {"ready": True}, "the snippet runner did not start"
    yield process
    process.stdin.close()
    process.wait(timeout=60)


@pytest.mark.parametrize("block", runnable_blocks())
def test_python_block_runs(block, workspace_template, runner, tmp_path):
    workspace = tmp_path / "workspace"
    shutil.copytree(workspace_template, workspace)
    script, stdout, stderr = tmp_path / "block.py", tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    script.write_text(block["code"])
    request = {"script": str(script), "cwd": str(workspace), "stdout": str(stdout), "stderr": str(stderr),
               "timeout": 300}  # fmt: skip
    runner.stdin.write(json.dumps(request) + "\n")
    runner.stdin.flush()
    answer = runner.stdout.readline()
    assert answer, "the snippet runner died"
    returncode = json.loads(answer)["returncode"]
    assert returncode == 0, (
        f"the block at line {block['line']} failed (exit code {returncode}):\n{block['code']}"
        f"\n--- stdout\n{stdout.read_text()[-3000:]}\n--- stderr\n{stderr.read_text()[-6000:]}"
    )


def test_few_blocks_are_left_unrun():
    blocks = python_blocks()
    unrun = [name for name, block in blocks if block["info"] == "no-run"]
    assert len(blocks) >= 10, "the docs lost their Python examples"
    assert len(unrun) <= MAX_NO_RUN_BLOCKS, f"too many ```python no-run blocks ({len(unrun)}): {unrun}"
    odd = [name for name, block in blocks if block["info"] not in ("", "no-run")]
    assert not odd, f"```python blocks take nothing after the language but `no-run`: {odd}"


def test_no_python_block_hides_behind_another_language_tag():
    # ```py, ```python3 or ```pycon would escape the runner above
    hidden = [
        f"{page.relative_to(REPOSITORY)}:{block['line']} ```{block['language']}"
        for page in pages()
        for block in code_blocks(page)
        if block["language"] in ("py", "python3", "pycon", "ipython", "py3")
    ]
    assert not hidden, f"use ```python so the tests run it: {hidden}"


def test_every_relative_link_points_to_an_existing_file_and_heading():
    broken = []
    for page in pages():
        for target in links(page):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                continue
            path_part, _, anchor = target.partition("#")
            destination = (page.parent / path_part).resolve() if path_part else page
            name = f"{page.relative_to(REPOSITORY)} -> {target}"
            if not destination.exists():
                broken.append(f"{name}: no such file")
            elif anchor and destination.suffix == ".md" and anchor not in heading_anchors(destination):
                broken.append(f"{name}: no heading with this anchor")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_every_docs_page_is_reachable_from_the_readme():
    reached, queue = set(), [README]
    while queue:
        page = queue.pop()
        for target in links(page):
            path_part = target.partition("#")[0]
            if not path_part.endswith(".md") or re.match(r"^[a-z][a-z0-9+.-]*:", path_part):
                continue
            destination = (page.parent / path_part).resolve()
            if destination.exists() and destination not in reached:
                reached.add(destination)
                queue.append(destination)
    unreached = [page.name for page in pages()[1:] if page.resolve() not in reached]
    assert not unreached, f"docs pages no link leads to from README.md: {unreached}"


def test_readme_is_one_screen():
    lines = README.read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; keep it <= {README_MAX_LINES}"
