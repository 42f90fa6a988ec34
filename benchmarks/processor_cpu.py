"""CPU time and peak memory of `AVCANetProcessor` in eval mode on real-sized H.264 + AAC files.

Generates (once, into --media-dir) a 30 s 720x1280 portrait phone-style clip and a 10-min 1280x720 video, both
30 fps H.264 (libx264 veryfast, default GOP of 250 frames) with 48 kHz stereo AAC, then processes each file in a
fresh process and reports the median seconds per file and, for the 10-min file, the peak resident memory of that
process (`ru_maxrss`) and its growth over the same process after imports and a warm-up on a tiny clip.

    python benchmarks/processor_cpu.py            # the full-size files (generating the 10-min one takes minutes)
    python benchmarks/processor_cpu.py --quick    # 5 s and 60 s files, a smoke run
    python benchmarks/processor_cpu.py --backend pyav   # the PyAV fallback instead of torchcodec
"""

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def generate(path: Path, seconds: int, width: int, height: int):
    """An H.264 + AAC mp4 of moving test pattern and a tone, with the ffmpeg CLI when present, else PyAV."""
    if path.exists():
        return
    partial = path.with_suffix(".partial.mp4")
    if shutil.which("ffmpeg"):
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
             "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-ac", "2", "-b:a", "128k", "-shortest", str(partial)],
            check=True,
        )  # fmt: skip
    else:
        _generate_with_pyav(partial, seconds, width, height)
    partial.rename(path)


def _generate_with_pyav(path: Path, seconds: int, width: int, height: int):
    import av
    import numpy as np

    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=30)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.options = {"preset": "veryfast"}
        audio = container.add_stream("aac", rate=48000, layout="stereo")
        ramp = np.linspace(0, 255, width, dtype=np.float32)[None, :]
        for index in range(seconds * 30):
            image = ((ramp + 4 * index + np.arange(height, dtype=np.float32)[:, None]) % 256).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(np.repeat(image[:, :, None], 3, axis=2), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())
        t = np.arange(seconds * 48000) / 48000
        signal = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for start in range(0, len(signal), 1024):
            chunk = np.repeat(signal[None, start : start + 1024], 2, axis=0)
            frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 48000, start
            container.mux(audio.encode(frame))
        container.mux(audio.encode())


def measure(path: str, repeats: int, backend: str) -> dict:
    """Run in a fresh process: process `path` `repeats` times (after one warm-up) and report times and memory."""
    sys.path.insert(0, str(REPO))
    import numpy as np

    from processing import AVCANetProcessor, video_decoding

    if backend == "pyav":
        video_decoding.TORCHCODEC_AVAILABLE = False
    processor = AVCANetProcessor()
    # warm up on a tiny in-memory clip, so the baseline includes torch's lazy one-time set-up, not the file
    processor(videos=np.zeros((8, 48, 64, 3), np.uint8), audio=np.zeros(16000, np.float32), sampling_rate=16000)
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        inputs = processor(videos=path)
        times.append(time.perf_counter() - start)
    assert inputs["pixel_values_videos"].shape == (1, 128, 3, 112, 112) and inputs["audio_mask"].item() == 1
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "first_s": times[0],
        "median_s": statistics.median(times[1:]),
        "runs_s": times[1:],
        "baseline_rss_mib": baseline_kib / 1024,
        "peak_rss_mib": peak_kib / 1024,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="5 s and 60 s files instead of 30 s and 10 min")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", choices=["torchcodec", "pyav"], default="torchcodec")
    parser.add_argument("--media-dir", type=Path, default=Path(tempfile.gettempdir()) / "avcanet-benchmark-media")
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # internal: the child process
    args = parser.parse_args()

    if args.measure:
        print(json.dumps(measure(args.measure, args.repeats, args.backend)))
        return

    args.media_dir.mkdir(parents=True, exist_ok=True)
    short_s, long_s = (5, 60) if args.quick else (30, 600)
    files = {
        f"{short_s} s 720x1280 (portrait)": (args.media_dir / f"portrait_{short_s}s.mp4", short_s, 720, 1280),
        f"{long_s // 60} min 1280x720": (args.media_dir / f"landscape_{long_s}s.mp4", long_s, 1280, 720),
    }
    for name, (path, seconds, width, height) in files.items():
        start = time.perf_counter()
        generate(path, seconds, width, height)
        size_mib, seconds = path.stat().st_size / 2**20, time.perf_counter() - start
        print(f"media: {name}: {path} ({size_mib:.0f} MiB, ready in {seconds:.0f} s)")

    print(f"eval mode, {args.backend}, 16 x 8 frames at 112 px + 16 x 64 log-mel frames, median of {args.repeats} runs")
    for name, (path, *_) in files.items():
        command = [sys.executable, __file__, "--measure", str(path), "--repeats", str(args.repeats)]
        result = subprocess.run(command + ["--backend", args.backend], check=True, capture_output=True, text=True)
        report = json.loads(result.stdout.strip().splitlines()[-1])
        print(
            f"{name:28s} {report['median_s']:6.2f} s/file (first call {report['first_s']:.2f} s; runs "
            f"{', '.join(f'{t:.2f}' for t in report['runs_s'])})  peak RSS {report['peak_rss_mib']:.0f} MiB "
            f"(+{report['peak_rss_mib'] - report['baseline_rss_mib']:.0f} MiB for the file)"
        )


if __name__ == "__main__":
    main()
