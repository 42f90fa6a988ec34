"""Which encoding a prepared copy should use: the processor's training-mode read on ONE core, side by side.

Prepares one generated file (default: the 30 s 720x1280 clip) with each candidate encoding at the default short side
(112), then times `AVCANetProcessor()(videos=..., training=True)` on each copy in rotating order (one torch thread,
one decoder thread; run it under `taskset -c 0`), and prints the median seconds per video, videos/s, the file size
and the one-off preparation time. The winner is `dataset_scripts.prepare.VIDEO_ENCODING` (keyframe interval: the
processor's `frames_per_segment`, 8 by default).

    taskset -c 0 python benchmarks/prepared_encoding.py            # 30 s 720x1280 (about a minute)
    taskset -c 0 python benchmarks/prepared_encoding.py --quick    # 5 s 720x1280
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from common import DEFAULT_MEDIA_DIR, machine, markdown_table, media_file, median

from dataset_scripts.prepare import prepare_video, prepared_settings_for
from processing import AVCANetProcessor, AVCANetVideoProcessor
from processing.frame_sampling import audio_window_starts, sample_segment_positions, segment_window_centers
from processing.video_decoding import open_video

X264 = {"codec": "libx264", "pix_fmt": "yuv444p"}
OPTIONS = {"preset": "veryfast", "bf": "0", "crf": "16"}
CANDIDATES = {
    "H.264 all-intra 4:4:4 CRF 16": {**X264, "options": {**OPTIONS, "g": "1"}},
    "H.264 GOP 4 4:4:4 CRF 16": {**X264, "options": {**OPTIONS, "g": "4"}},
    "H.264 GOP 8 4:4:4 CRF 16": {**X264, "options": {**OPTIONS, "g": "8"}},
    "H.264 GOP 16 4:4:4 CRF 16": {**X264, "options": {**OPTIONS, "g": "16"}},
    "H.264 GOP 32 4:4:4 CRF 16": {**X264, "options": {**OPTIONS, "g": "32"}},
    "H.264 GOP 8 4:4:4 CRF 16 fastdecode": {**X264, "options": {**OPTIONS, "g": "8", "tune": "fastdecode"}},
    "H.264 all-intra 4:4:4 CRF 16 fastdecode": {**X264, "options": {**OPTIONS, "g": "1", "tune": "fastdecode"}},
    "H.264 GOP 8 4:2:0 CRF 16 fastdecode": {
        **X264, "pix_fmt": "yuv420p", "options": {**OPTIONS, "g": "8", "tune": "fastdecode"}
    },
    "MJPEG 4:4:4 q 3": {"codec": "mjpeg", "pix_fmt": "yuvj444p", "options": {"qmin": "3", "qmax": "3"}},
}


def decode_only(path: Path, processor: AVCANetProcessor, generator: torch.Generator) -> float:
    """Seconds to open the copy and decode what one training-mode call reads: 16 random 8-frame windows and their
    16 audio windows (the processor's own crops, normalisation and log-mel excluded)."""
    video, audio = processor.video_processor, processor.feature_extractor
    start = time.perf_counter()
    with open_video(str(path), decoder_threads=1) as reader:
        num_frames = reader.num_frames
        positions = sample_segment_positions(num_frames, video.num_segments, video.frames_per_segment, True, generator)
        decoded = [reader.get_frames((window % reader.num_frames).tolist()) for window in positions]
        if reader.has_audio:
            timestamps = torch.stack([frames.timestamps for frames in decoded])
            durations = torch.stack([frames.durations for frames in decoded])
            centers = segment_window_centers(positions, timestamps, durations, reader.num_frames, reader.clip_duration)
            starts = audio_window_starts(centers, audio.window_duration, reader.clip_duration)
            reader.read_audio_windows(starts, audio.window_samples, audio.sampling_rate)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the 5 s 720x1280 file")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--media-dir", type=Path, default=DEFAULT_MEDIA_DIR)
    parser.add_argument("--only", nargs="+", help="substrings of the candidate names to run")
    args = parser.parse_args()
    torch.set_num_threads(1)
    key = "5s_720x1280" if args.quick else "30s_720x1280"
    source = media_file(key, args.media_dir)
    processor = AVCANetProcessor(video_processor=AVCANetVideoProcessor(decoder_threads=1))
    settings = prepared_settings_for(processor)
    print(f"machine: {machine()}; one torch thread, one decoder thread; file {key}")

    with tempfile.TemporaryDirectory() as workdir:
        copies, prepare_s = {}, {}
        candidates = {name: encoding for name, encoding in CANDIDATES.items()
                      if not args.only or any(part in name for part in args.only)}  # fmt: skip
        for index, (name, encoding) in enumerate(candidates.items()):
            start = time.perf_counter()
            settings_of_copy = {**settings, "pixel_format": encoding["pix_fmt"]}
            copies[name] = prepare_video(source, Path(workdir) / f"{index}.mp4", settings_of_copy, encoding)
            prepare_s[name] = time.perf_counter() - start
            copies[name] = Path(workdir) / f"{index}.mp4"
        names = list(copies)
        for path in copies.values():
            processor(videos=str(path), training=True)  # warm-up
        runs = {name: [] for name in names}
        decode_runs = {name: [] for name in names}
        generator = torch.Generator().manual_seed(0)
        for round_index in range(args.repeats):
            for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
                start = time.perf_counter()
                processor(videos=str(copies[name]), training=True)
                runs[name].append(time.perf_counter() - start)
                decode_runs[name].append(decode_only(copies[name], processor, generator))
        rows = []
        for name in names:
            seconds, decode_s = median(runs[name]), median(decode_runs[name])
            size_mib = copies[name].stat().st_size / 2**20
            rows.append([name, f"{decode_s * 1000:.1f}", f"{seconds * 1000:.1f}", f"{1 / seconds:.1f}",
                         f"{size_mib:.2f}", f"{prepare_s[name]:.1f}"])  # fmt: skip
        header = ["encoding", "decode ms/video", "processor ms/video", "processor videos/s", "file MiB", "prepare s"]
        print(markdown_table(header, rows))


if __name__ == "__main__":
    main()
