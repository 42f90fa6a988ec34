"""
Keep the memory a CPU training step frees for the next step instead of handing it back to the kernel (glibc's malloc).

glibc serves every block above its mmap threshold (at most 32 MiB) with fresh pages from the kernel and unmaps them
when the block is freed. A training step allocates and frees its large activations and gradients again at every
step, so every step pays one page fault per 4 KiB of them: in AV-CANet's CPU step, large elementwise kernels and
copies run at a fraction of memory speed. With mmap off and trimming off, glibc takes every block from its heap and
keeps what is freed, and the next step reuses those pages: the effect of jemalloc or tcmalloc (which PyTorch's CPU
tuning guide recommends and which need `LD_PRELOAD` before the process starts), from inside the process.
docs/performance.md has the numbers. The cost: the process holds on to its peak memory until it exits (at the
paper's sizes, batch 2: ~7.3 GiB instead of ~6.4 GiB, settled after ~13 steps). `AVCANET_KEEP_FREED_MEMORY=0` leaves
glibc as it comes.
"""

import ctypes
import os

# mallopt parameters, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
# mallopt takes an int: give memory back only once 2 GiB at the top of the heap are free
TRIM_THRESHOLD = 2**31 - 1


def keep_freed_memory() -> bool:
    """
    Tell glibc's malloc to serve large blocks from its heap (no mmap) and to keep freed memory (no trimming).

    Returns True when glibc took both settings; False, changing nothing, with another C library (macOS, Windows,
    musl) or with `AVCANET_KEEP_FREED_MEMORY=0` in the environment. An allocator loaded with `LD_PRELOAD` (jemalloc,
    tcmalloc) serves the allocations then and is not affected.
    """
    if os.environ.get("AVCANET_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(None)  # the symbols of the running process: the C library it uses
    except (OSError, TypeError):  # TypeError: Windows has no such handle
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # glibc only: musl and others treat these parameters otherwise
        return False
    return libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
