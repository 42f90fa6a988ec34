"""How many threads decoding uses: torch's (one, while FFmpeg decodes) and FFmpeg's (a DataLoader worker's share)."""

import os
from contextlib import contextmanager

import torch
from torch.utils.data import get_worker_info


@contextmanager
def single_torch_thread():
    """Run the enclosed processing with one torch thread, restoring the count after.

    FFmpeg decodes with its own threads; torch's OpenMP workers spin-wait after every small op and take the cores
    from them, which made processing 3-4x slower on a 2-core machine (the per-frame tensors here are small, so one
    torch thread loses nothing).
    """
    previous = torch.get_num_threads()
    if previous != 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if previous != 1:
            torch.set_num_threads(previous)


def decoder_threads_for_this_process(decoder_threads: int) -> int:
    """FFmpeg threads for a decoder: `decoder_threads`, except that 0 (FFmpeg's choice: about one per core) inside a
    `torch.utils.data.DataLoader` worker becomes that worker's share of the cores, so that workers decoding at once do
    not run more decoding threads than there are cores (with 2 workers on 2 cores: +15 % videos/s,
    `benchmarks/data_loading.py`)."""
    if decoder_threads != 0:
        return decoder_threads
    worker = get_worker_info()
    if worker is None:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // worker.num_workers)
