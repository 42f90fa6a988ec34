"""Step time and resident memory of AV-CANet training steps, step by step, with glibc's malloc as it comes or keeping
freed memory (`examples/host_memory.py`, what `examples/train.py` sets): does the memory settle, and where?

    python benchmarks/host_memory_steps.py --allocator keep-freed --steps 28
    python benchmarks/host_memory_steps.py --allocator default --steps 12

Paper-size config, random inputs of the processor's shapes, AdamW; every 4th step has batch 1 (like an epoch's last
batch) and every 4th an eval forward at batch 3 follows, so that blocks of several sizes come and go.
"""

import argparse
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "examples")]


def resident_mib() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--allocator", choices=["default", "keep-freed"], default="keep-freed")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if args.allocator == "keep-freed":
        from host_memory import keep_freed_memory

        assert keep_freed_memory(), "keep-freed needs glibc"
    import torch
    from model import build, make_inputs

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build("avcanet", "default").train()
    optimizer = torch.optim.AdamW(model.parameters())
    cpu = torch.device("cpu")
    for step in range(args.steps):
        batch_size = 1 if step % 4 == 3 else 2
        inputs = make_inputs("avcanet", model, batch_size, cpu)
        start = time.perf_counter()
        model(**inputs).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        seconds = time.perf_counter() - start
        if step % 4 == 2:
            with torch.inference_mode():
                model.eval()
                model(**make_inputs("avcanet", model, 3, cpu))
                model.train()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{args.allocator} step {step} batch {batch_size}: {seconds:.2f} s, resident {resident_mib():.0f} MiB, "
              f"peak {peak:.0f} MiB", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
