"""Run documentation snippets, each in a process of its own, without paying torch's and transformers' import for each.

    python tests/doc_block_runner.py        # then one JSON request per line on stdin:
    {"script": "/tmp/x/block.py", "cwd": "/tmp/x/workspace", "stdout": "/tmp/x/out", "stderr": "/tmp/x/err", "timeout": 600}

The runner imports the heavy libraries once, then forks a child per request: the child changes to `cwd`, sends its
output to the two files and runs the script as `__main__` with fresh globals; nothing a snippet imports or defines
reaches the next one, since each child starts from the runner's state, which never ran a snippet. The answer is one
JSON line per request: `{"returncode": ...}` (1 for an exception, -9 for a child killed at its timeout).

Importing torch, transformers and datasets costs 5-20 s of a 2-core machine; a snippet on the tiny model costs 1-2 s.
"""

import json
import os
import runpy
import signal
import sys
import time
import traceback

import datasets  # noqa: F401  (imported once, before any fork)
import torch  # noqa: F401
import transformers  # noqa: F401
from transformers import AutoModelForVideoClassification, AutoProcessor, pipeline  # noqa: F401


def run_child(request: dict) -> None:
    """In the forked child: never returns."""
    code = 1
    try:
        os.chdir(request["cwd"])
        for stream, path in ((1, request["stdout"]), (2, request["stderr"])):
            file = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(file, stream)
            os.close(file)
        sys.stdin = open(os.devnull)
        sys.argv = [request["script"]]
        runpy.run_path(request["script"], run_name="__main__")
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def wait(pid: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -signal.SIGKILL
        time.sleep(0.05)


def main() -> None:
    if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]  # the tests' helpers are not the snippets' to import
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_child(request)
        print(json.dumps({"returncode": wait(pid, request.get("timeout", 600))}), flush=True)


if __name__ == "__main__":
    main()
