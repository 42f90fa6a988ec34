"""Long videos in sliding windows (issue 23): one decoding pass, flat memory, and the cost of multi-view testing.

    python benchmarks/long_video.py           # 10-min and 1-min 1280x720 files (generated into $TMPDIR), ~5 min
    python benchmarks/long_video.py --quick   # 1-min and 10-s files, < 1 min

Every measurement runs in a fresh process (so its peak RSS is its own):

- `decode`: the floor, decoding every frame of the file once (PyAV, the windows' decoder, FFmpeg threads as it sets
  them; frames left in YUV, never converted);
- `windows`: `processing.window_inference.classify_in_windows` with 10 s windows, end to end: the CPU-demo model
  (`examples/train.py`'s `CPU_DEMO_SIZES`, random weights: its speed is the point) and its processor (4 x 4 frames at
  32 px, log-mel 32 x 16 per segment), 4 windows per model call; the model's own time is measured with forward hooks;
- `stream`: the paper-size processor (16 x 8 frames at 112 px, 128 x 64 log-mel per segment) streaming the same
  windows (`processor.iter_windows`) with no model: the decoding and sampling a paper-size model would wait for.

Targets: windows total <= 1.5 x (decode + model time), peak memory on the long file within 20 % of the short file's,
and 3 x 3 views <= 9 x the single view's model time and <= 2 x its decoding time (total minus model).
"""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from common import REPO, machine, markdown_table, media_file, peak_rss_mib

sys.path.insert(0, str(REPO / "examples"))
WINDOW_SECONDS = 10.0


def measure(kind: str, path: str, num_clips: int, num_crops: int) -> dict:
    """One measurement in this process: seconds, the model's seconds, peak RSS."""
    import torch

    if kind == "decode":
        import av

        start = time.perf_counter()
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.thread_type, stream.codec_context.thread_count = "AUTO", 0  # as `PyAVVideoReader` decodes
            frames = sum(1 for _ in container.decode(stream))
        return {"seconds": time.perf_counter() - start, "frames": frames, "peak_rss_mib": peak_rss_mib()}

    from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification
    from processing import AVCANetProcessor
    from processing.video_decoding import PyAVVideoReader

    decode_seconds = [0.0]  # the reader's decoding and RGB conversion of the frames the windows need
    get_frames = PyAVVideoReader.get_frames

    def timed_get_frames(self, indices):
        start = time.perf_counter()
        try:
            return get_frames(self, indices)
        finally:
            decode_seconds[0] += time.perf_counter() - start

    PyAVVideoReader.get_frames = timed_get_frames

    if kind == "stream":
        processor = AVCANetProcessor()  # the paper's sizes
        start, windows = time.perf_counter(), 0
        for batch in processor.iter_windows(path, WINDOW_SECONDS, None, num_clips, num_crops, batch_size=4):
            windows += len(batch["window_index"])
        return {"seconds": time.perf_counter() - start, "decode_seconds": decode_seconds[0], "windows": windows,
                "peak_rss_mib": peak_rss_mib()}  # fmt: skip

    from train import CPU_DEMO_SIZES

    from processing.window_inference import classify_in_windows

    torch.manual_seed(0)
    model = AVCANetForVideoClassification(AVCANetConfig(**CPU_DEMO_SIZES)).eval()
    processor = AVCANetProcessor.from_model_config(model.config)
    config = model.config
    rows = 4 * num_clips * num_crops  # a full batch: the first call's one-off costs for its shape are not the windows'
    with torch.inference_mode():
        model(
            pixel_values_videos=torch.zeros(rows, config.num_segments * config.frames_per_segment, 3,
                                            config.image_size, config.image_size),
            input_features=torch.zeros(rows, config.num_mel_bins,
                                       config.num_segments * config.audio_frames_per_segment),
            audio_mask=torch.ones(rows, dtype=torch.long),
        )  # fmt: skip
    model_seconds, started = [0.0], [0.0]
    model.register_forward_pre_hook(lambda *args: started.__setitem__(0, time.perf_counter()))
    model.register_forward_hook(
        lambda *args: model_seconds.__setitem__(0, model_seconds[0] + time.perf_counter() - started[0])
    )
    start = time.perf_counter()
    result = classify_in_windows(model, processor, path, WINDOW_SECONDS, None, num_clips, num_crops, batch_size=4)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "model_seconds": model_seconds[0], "decode_seconds": decode_seconds[0],
            "windows": len(result["windows"]), "peak_rss_mib": peak_rss_mib()}  # fmt: skip


def run(kind: str, path: Path, num_clips: int = 1, num_crops: int = 1) -> dict:
    command = [sys.executable, __file__, "--measure", kind, "--file", str(path), "--views", f"{num_clips}x{num_crops}"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"{kind:8s} {path.name:28s} {num_clips}x{num_crops}: {measured}", flush=True)
    return measured


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1-min and 10-s files instead of 10-min and 1-min")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--views", default="1x1", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        clips, crops = map(int, args.views.split("x"))
        print(json.dumps(measure(args.measure, args.file, clips, crops)))
        return

    long_key, short_key = ("60s_1280x720", "10s_640x360") if args.quick else ("10min_1280x720", "60s_1280x720")
    long_file, short_file = media_file(long_key), media_file(short_key)
    print(machine(), flush=True)
    numbers = {
        "decode_long": run("decode", long_file),
        "windows_long": run("windows", long_file),
        "windows_short": run("windows", short_file),
        "stream_long": run("stream", long_file),
        "stream_short": run("stream", short_file),
        "windows_short_3x3": run("windows", short_file, 3, 3),
        "decode_short": run("decode", short_file),
        "stream_short_3x3": run("stream", short_file, 3, 3),
    }
    decode, windows = numbers["decode_long"], numbers["windows_long"]
    floor = decode["seconds"] + windows["model_seconds"]
    single, multi = numbers["windows_short"], numbers["windows_short_3x3"]
    single_decode, multi_decode = (run["seconds"] - run["model_seconds"] for run in (single, multi))
    rows = [
        ["windows, CPU-demo model: total / (decode + model)", f"{windows['seconds']:.1f} / ({decode['seconds']:.1f} + "
         f"{windows['model_seconds']:.1f}) s = **{windows['seconds'] / floor:.2f}x**", "<= 1.5x"],
        ["stream, paper-size processor: total / decode", f"{numbers['stream_long']['seconds']:.1f} / "
         f"{decode['seconds']:.1f} s = **{numbers['stream_long']['seconds'] / decode['seconds']:.2f}x**", ""],
        ["peak RSS, windows: long / short file", f"{windows['peak_rss_mib']:.0f} / {single['peak_rss_mib']:.0f} MiB = "
         f"**{windows['peak_rss_mib'] / single['peak_rss_mib']:.2f}x**", "<= 1.2x"],
        ["peak RSS, paper-size stream: long / short file", f"{numbers['stream_long']['peak_rss_mib']:.0f} / "
         f"{numbers['stream_short']['peak_rss_mib']:.0f} MiB = **"
         f"{numbers['stream_long']['peak_rss_mib'] / numbers['stream_short']['peak_rss_mib']:.2f}x**", "<= 1.2x"],
        ["3x3 views, model time (short file)", f"{multi['model_seconds']:.2f} / {single['model_seconds']:.2f} s = "
         f"**{multi['model_seconds'] / single['model_seconds']:.2f}x**", "<= 9x"],
        ["3x3 views, decoding (total - model, short file)", f"{multi_decode:.2f} / {single_decode:.2f} s = "
         f"**{multi_decode / single_decode:.2f}x**", "<= 2x"],
        ["3x3 views, reader decoding (CPU-demo sampling, short file)", f"{multi['decode_seconds']:.2f} / "
         f"{single['decode_seconds']:.2f} s = **{multi['decode_seconds'] / single['decode_seconds']:.2f}x**", "<= 2x"],
        ["3x3 views, paper-size stream: total (short file)", f"{numbers['stream_short_3x3']['seconds']:.2f} / "
         f"{numbers['stream_short']['seconds']:.2f} s = **"
         f"{numbers['stream_short_3x3']['seconds'] / numbers['stream_short']['seconds']:.2f}x**", ""],
        ["3x3 views, paper-size stream: reader decoding (short file)",
         f"{numbers['stream_short_3x3']['decode_seconds']:.2f} / {numbers['stream_short']['decode_seconds']:.2f} s = "
         f"**{numbers['stream_short_3x3']['decode_seconds'] / numbers['stream_short']['decode_seconds']:.2f}x**",
         "<= 2x"],
    ]  # fmt: skip
    print(f"\nlong file {long_file.name} ({decode['frames']} frames), short file {short_file.name}, "
          f"{WINDOW_SECONDS:g} s windows: {windows['windows']} and {single['windows']}\n")  # fmt: skip
    print(markdown_table(["measure", "result", "target"], rows))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), **numbers}, indent=2))


if __name__ == "__main__":
    main()
