"""The README's commands work as written after `make demo`, typed into a fresh shell: no activated environment, no
PYTHONPATH, nothing but what the README says (issue 25: a bare `python examples/...` failed with "No module named
'torch'" because everything lives in `.venv`).

The test builds a checkout as `make demo` leaves it, cheaply: the repository's files (linked), `.venv` (this test's
own environment, which `make test` created), and `outputs/avcanet-demo` holding a tiny saved model and a generated
test clip where the demo writes its test clips. Then every command line of the README's ```bash blocks runs in
`env -i bash` from that checkout, in order: `make` targets as a dry run (`make -n`: the demo itself takes minutes),
the web demo (which serves until stopped) with `--help`, everything else exactly as written. The README's Python
blocks then run with `.venv/bin/python`, as the README says.
"""

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from doc_pages import README, REPOSITORY, code_blocks
from media import make_video
from saved_model import save_tiny_model

DEMO_CLIP = "outputs/avcanet-demo/data/videos/test/Joy/test_00000.mp4"  # one of the clips `make demo` writes
SERVERS = {"examples/demo/app.py"}  # run until stopped: checked with --help
NEEDS_ACTIVATION = {"python", "python3", "pip", "accelerate", "pytest", "torchrun"}
NOT_LINKED = {".venv", "outputs", ".git", "clip.mp4", "plots"}


def readme_commands() -> list[str]:
    """Every command line of the README's bash blocks, continuation lines joined, comments dropped."""
    commands = []
    for block in code_blocks(README):
        if block["language"] not in ("bash", "sh", "shell", "console"):
            continue
        for line in block["code"].replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


@pytest.fixture(scope="module")
def checkout_after_make_demo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fresh-clone") / "avcanet"
    root.mkdir()
    for entry in REPOSITORY.iterdir():
        if entry.name not in NOT_LINKED:
            (root / entry.name).symlink_to(entry)
    venv = root / ".venv"
    if sys.prefix != sys.base_prefix:  # the environment `make test` made
        venv.symlink_to(Path(sys.prefix))
    else:  # a plain interpreter: a `.venv` that leads to it
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "python").symlink_to(sys.executable)
        (venv / "bin" / "activate").write_text(f'export PATH="{venv / "bin"}:$PATH"\n')
    save_tiny_model(root / "outputs" / "avcanet-demo")
    (root / DEMO_CLIP).parent.mkdir(parents=True)
    make_video(root / DEMO_CLIP, num_frames=48, fps=24, tone_start_s=0.0)
    return root


def fresh_shell(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """`command` in `bash -c` with an empty environment: a new terminal, before anything was activated."""
    home = cwd.parent / "home"
    home.mkdir(exist_ok=True)
    environment = [f"HOME={home}", "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HF_HUB_OFFLINE=1"]
    return subprocess.run(
        ["env", "-i", *environment, "bash", "--noprofile", "--norc", "-c", command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def as_run_here(command: str) -> str:
    words = shlex.split(command)
    if words[0] == "make":
        return shlex.join(["make", "-n", *words[1:]])
    if any(word in SERVERS for word in words):
        return shlex.join([*words[: next(i for i, word in enumerate(words) if word in SERVERS) + 1], "--help"])
    return command


def test_the_readme_says_how_to_run_its_commands():
    text = README.read_text()
    assert "source .venv/bin/activate" in text and ".venv/bin/python" in text
    commands = readme_commands()
    assert any(command.startswith("make demo") for command in commands)
    bare = [command for command in commands if shlex.split(command)[0] in NEEDS_ACTIVATION]
    assert not bare, f"these fail in a new terminal (everything is in .venv); write .venv/bin/python: {bare}"


def test_readme_commands_work_as_written_from_a_fresh_shell(checkout_after_make_demo, tmp_path):
    root = checkout_after_make_demo
    commands = readme_commands()
    assert len(commands) >= 5
    for command in commands:
        completed = fresh_shell(as_run_here(command), root)
        assert completed.returncode == 0, (
            f"`{command}` failed in a fresh shell (exit {completed.returncode}):\n"
            f"{completed.stdout[-2000:]}\n{completed.stderr[-4000:]}"
        )
        if "examples/predict.py" in command and "--help" not in command:
            predictions = [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]
            assert predictions and all(prediction["labels"] for prediction in predictions), completed.stdout
            if "--timeline" in command:
                assert all(prediction["timeline"] for prediction in predictions)
        if any(word in SERVERS for word in shlex.split(command)) or "--help" in command:
            assert "usage" in completed.stdout.lower()
    assert (root / "clip.mp4").exists()  # the README's own clip.mp4, which its Python uses
    assert list((root / "plots").glob("*.png")), "--plot wrote no picture"

    # the README's Python, run with the interpreter it names
    for block in code_blocks(README):
        if block["language"] == "python":
            script = tmp_path / f"readme_{block['line']}.py"
            script.write_text(block["code"])
            completed = fresh_shell(f".venv/bin/python {shlex.quote(str(script))}", root)
            assert completed.returncode == 0, f"README.md:{block['line']}:\n{block['code']}\n{completed.stderr[-4000:]}"

    # and the other way the README offers: activate once, then plain `python`
    completed = fresh_shell("source .venv/bin/activate && python -c 'import av, sys; print(sys.prefix)'", root)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert Path(completed.stdout.strip()).resolve() == Path(sys.prefix).resolve(), completed.stdout  # .venv's


def test_the_shell_is_fresh(checkout_after_make_demo):
    """What the commands above ran in: no environment activated, no PYTHONPATH, no `python` from `.venv` on PATH."""
    completed = fresh_shell('echo "[$VIRTUAL_ENV][$PYTHONPATH]"; command -v python python3 || true', checkout_after_make_demo)
    lines = completed.stdout.splitlines()
    assert lines[0] == "[][]"
    assert not any(".venv" in line or line.startswith(str(REPOSITORY)) for line in lines[1:]), lines
