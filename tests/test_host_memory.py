"""examples/host_memory.py: glibc's malloc keeps the memory a training step frees (examples/train.py sets it)."""

import ctypes
import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# In a child process: the test process keeps glibc's settings as they come. mallinfo2 (glibc >= 2.33) reports the
# bytes in mmapped blocks (hblkhd) and the free bytes kept in the heap (fordblks).
PROBE = """
import ctypes, json, sys
sys.path.insert(0, sys.argv[1])
import torch
from host_memory import keep_freed_memory

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Mallinfo2
SIZE = 96 * 2**20  # above glibc's largest mmap threshold (32 MiB), like a stage-1 activation of a training step

def allocate_and_free():
    mapped_before = libc.mallinfo2().hblkhd
    tensor = torch.ones(SIZE, dtype=torch.uint8)
    mapped = libc.mallinfo2().hblkhd - mapped_before
    del tensor
    return {"mmapped": mapped, "kept_free": libc.mallinfo2().fordblks}

as_it_comes = allocate_and_free()
print(json.dumps({"as_it_comes": as_it_comes, "set": keep_freed_memory(), "kept": allocate_and_free()}))
"""


def is_glibc() -> bool:
    try:
        return bool(ctypes.CDLL(None).gnu_get_libc_version)
    except (OSError, AttributeError, TypeError):
        return False


@pytest.mark.skipif(not is_glibc(), reason="mallopt settings of glibc's malloc (Linux); elsewhere it returns False")
def test_large_blocks_come_from_the_heap_and_stay_there_when_freed():
    result = subprocess.run([sys.executable, "-c", PROBE, str(EXAMPLES)], capture_output=True, text=True,
                            timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.splitlines()[-1])
    size = 96 * 2**20
    assert measured["as_it_comes"]["mmapped"] >= size  # glibc maps a block this large and unmaps it when freed
    assert measured["set"] is True
    assert measured["kept"]["mmapped"] == 0  # now from the heap...
    assert measured["kept"]["kept_free"] >= size  # ...and kept there after the free, for the next step


def test_the_environment_can_turn_it_off(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLES))
    monkeypatch.setenv("AVCANET_KEEP_FREED_MEMORY", "0")
    from host_memory import keep_freed_memory  # returns before it calls mallopt: this process stays as it comes

    assert keep_freed_memory() is False
