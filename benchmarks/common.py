"""Shared pieces of the benchmark scripts: the generated media files, the machine description, timing helpers.

Media are generated once (ffmpeg CLI, else PyAV; see `processor_cpu.generate`) into a cache folder under the system
temp dir, never into the repository, and reused by every script and run.
"""

import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
BENCHMARKS = Path(__file__).resolve().parent
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

from processor_cpu import generate

DEFAULT_MEDIA_DIR = Path(tempfile.gettempdir()) / "avcanet-benchmark-media"

# key: (file name, seconds, width, height, description); 30 fps H.264 (libx264 veryfast, GOP 250) + 48 kHz stereo AAC
MEDIA = {
    "10s_640x360": ("landscape_640x360_10s.mp4", 10, 640, 360, "10 s 640x360"),
    "5s_720x1280": ("portrait_5s.mp4", 5, 720, 1280, "5 s 720x1280 (vertical)"),
    "30s_720x1280": ("portrait_30s.mp4", 30, 720, 1280, "30 s 720x1280 (vertical)"),
    "60s_1280x720": ("landscape_60s.mp4", 60, 1280, 720, "60 s 1280x720"),
    "10min_1280x720": ("landscape_600s.mp4", 600, 1280, 720, "10 min 1280x720"),
}


def media_file(key: str, media_dir: Path = DEFAULT_MEDIA_DIR, verbose: bool = True) -> Path:
    """The generated file `key` of `MEDIA`, generating it on first use."""
    name, seconds, width, height, description = MEDIA[key]
    media_dir.mkdir(parents=True, exist_ok=True)
    path = media_dir / name
    if not path.exists():
        start = time.perf_counter()
        generate(path, seconds, width, height)
        if verbose:
            print(f"generated {description}: {path} ({path.stat().st_size / 2**20:.0f} MiB, "
                  f"{time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    return path


def cpu_model() -> str:
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    """One line: CPU model, cores, memory, and the versions that matter."""
    import torch

    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    line = f"{cpu_model()}, {os.cpu_count()} cores, {memory_gib:.0f} GiB RAM, torch {torch.__version__}"
    if torch.cuda.is_available():
        line += f", GPU {torch.cuda.get_device_name()}"
    else:
        line += ", no GPU"
    return line


def peak_rss_mib() -> float:
    """High-water mark of this process's resident memory (Linux `ru_maxrss` is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def median(values) -> float:
    return statistics.median(values) if values else float("nan")


def fmt_runs(values) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def audio_only_bytes(folder: Path) -> bytes:
    """An mp4 with a short silent AAC track and no video stream: a bad row of the kind a crawl meets."""
    import av
    import numpy as np

    path = folder / "audio_only.mp4"
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    return path.read_bytes()
