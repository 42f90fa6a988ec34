"""Per-video eval-mode preprocessing: our processor vs the authors' pipeline vs the decode floor, in one run.

For each generated H.264 + AAC file (30 fps, GOP 250, 48 kHz stereo AAC), every repeat times the three methods back
to back, in a rotating order, in this one process (the machines are noisy: compare the medians and ratios of one run):

- ours: `AVCANetProcessor()` (default config) `processor(videos=path, training=False)`: 16 x 8 frames decoded by
  seeking (torchcodec, exact mode), resized to 112 and centre-cropped, plus 16 x 64 log-mel frames from 16 audio
  windows aligned with the frame windows;
- (a) the authors' pipeline rebuilt with public tools (spec section 3): `ffmpeg -i v -vf scale=-1:240 %06d.jpg` (every
  frame to JPEG at height 240) and `ffmpeg -i v -vn a.mp3`, then the loader: the release's TSN sampling (loop-pad,
  16 segments, centre 8-frame window), PIL opening the 128 sampled JPEGs, resize short side to 112 + centre crop,
  `x / 255 - 100 / 255`, and `librosa.load(mp3, sr=44100)` + `librosa.feature.mfcc(n_mfcc=32)` tiled to 4096 frames.
  Reported whole (per video the first time) and as its loader alone (per epoch once the dump exists);
- (b) the floor: torchcodec decoding only the same 128 frames (`VideoDecoder(seek_mode="exact")` +
  `get_frames_at`, one call per segment window) and the audio track (`AudioDecoder(sample_rate=16000,
  num_channels=1)`), nothing else. Also timed: the same with all 128 indices in ONE `get_frames_at` call
  ("floor, one call"), which torchcodec 0.17 runs slower.

    python benchmarks/preprocessing.py            # 10 s 640x360, 30 s 720x1280, 10 min 1280x720 (~2-5 min)
    python benchmarks/preprocessing.py --quick    # 10 s 640x360, 5 s 720x1280, 60 s 1280x720 (< 1 min)

Needs the ffmpeg CLI and librosa (`pip install librosa`) for (a); without them (a) is skipped.
"""

import argparse
import functools
import importlib.util
import json
import math
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from common import DEFAULT_MEDIA_DIR, MEDIA, machine, markdown_table, media_file, median

from processing import AVCANetProcessor, AVCANetVideoProcessor
from processing.frame_sampling import sample_segment_frame_indices
from processing.decoding_threads import single_torch_thread
from processing.video_decoding import TorchcodecVideoReader

NUM_SEGMENTS, FRAMES_PER_SEGMENT, SIZE = 16, 8, 112
AUTHORS_SAMPLE_RATE, AUTHORS_N_MFCC, AUTHORS_AUDIO_FRAMES = 44100, 32, 4096


# --------------------------------------------------------------------------------------------------------------
# (a) the authors' pipeline
# --------------------------------------------------------------------------------------------------------------


def authors_extract(video: Path, workdir: Path) -> dict:
    """The offline step of the release (`tools/video2jpg.py`, `tools/video2mp3.py`, `tools/n_frames.py`)."""
    frames_dir = workdir / "frames"
    frames_dir.mkdir(parents=True)
    start = time.perf_counter()
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-vf", "scale=-1:240", str(frames_dir / "%06d.jpg")],
                   check=True)  # fmt: skip
    jpg_s = time.perf_counter() - start
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(video), "-vn", str(workdir / "audio.mp3")], check=True)
    n_frames = len(list(frames_dir.iterdir()))  # tools/n_frames.py: the highest index
    (workdir / "n_frames").write_text(str(n_frames))
    dump_mib = sum(path.stat().st_size for path in frames_dir.iterdir()) / 2**20
    return {"jpg_s": jpg_s, "mp3_s": time.perf_counter() - start - jpg_s, "n_frames": n_frames, "dump_mib": dump_mib}


def authors_frame_indices(n_frames: int) -> list[list[int]]:
    """The release's `TSN` with `LoopPadding` and `TemporalCenterCrop` (1-based JPEG numbers)."""
    size = NUM_SEGMENTS * FRAMES_PER_SEGMENT
    padded = list(range(1, n_frames + 1))
    for index in padded:  # LoopPadding (appends to the list it walks)
        if len(padded) >= size:
            break
        padded.append(index)
    segment_length = len(padded) // NUM_SEGMENTS
    snippets = []
    for segment in range(NUM_SEGMENTS):
        indices = padded[segment * segment_length : (segment + 1) * segment_length]
        begin = max(0, len(indices) // 2 - FRAMES_PER_SEGMENT // 2)  # TemporalCenterCrop
        window = indices[begin : begin + FRAMES_PER_SEGMENT]
        while len(window) < FRAMES_PER_SEGMENT:
            window.append(window[len(window) % len(window)])
        snippets.append(window)
    return snippets


def _pil_frame(path: Path) -> torch.Tensor:
    from PIL import Image

    with open(path, "rb") as file, Image.open(file) as image:  # the release's pil_loader
        image = image.convert("RGB")
    width, height = image.size  # Resize(112): short side to 112, bilinear
    if width < height:
        new_size = (SIZE, int(SIZE * height / width))
    else:
        new_size = (int(SIZE * width / height), SIZE)
    image = image.resize(new_size, Image.BILINEAR)
    left, top = round((new_size[0] - SIZE) / 2), round((new_size[1] - SIZE) / 2)  # CenterCrop(112)
    image = image.crop((left, top, left + SIZE, top + SIZE))
    return torch.from_numpy(np.asarray(image, dtype=np.float32)).permute(2, 0, 1)  # ToTensor(norm_value=1)


def authors_load(workdir: Path) -> dict:
    """The release's loader on an extracted video: (S, C, T, 112, 112) frames and (4096, 32) MFCC."""
    import librosa

    n_frames = int((workdir / "n_frames").read_text())
    frames_dir = workdir / "frames"
    start = time.perf_counter()
    snippets = [
        torch.stack([_pil_frame(frames_dir / f"{index:06d}.jpg") for index in window], dim=1)  # (C, T, H, W)
        for window in authors_frame_indices(n_frames)
    ]
    clip = torch.stack(snippets) / 255 - 100 / 255  # the model's in-forward normalisation
    frames_s = time.perf_counter() - start
    waveform, rate = librosa.load(str(workdir / "audio.mp3"), sr=AUTHORS_SAMPLE_RATE)
    mfcc = librosa.feature.mfcc(y=waveform, sr=rate, n_mfcc=AUTHORS_N_MFCC).T  # (T, 32)
    mfcc = np.tile(mfcc, (math.ceil(AUTHORS_AUDIO_FRAMES / len(mfcc)), 1))[:AUTHORS_AUDIO_FRAMES]
    audio = torch.from_numpy(mfcc)
    assert clip.shape == (NUM_SEGMENTS, 3, FRAMES_PER_SEGMENT, SIZE, SIZE) and audio.shape == (4096, 32)
    return {"frames_s": frames_s, "audio_s": time.perf_counter() - start - frames_s}


def run_authors(video: Path) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="avcanet-authors-"))
    try:
        start = time.perf_counter()
        extract = authors_extract(video, workdir)
        extract_s = time.perf_counter() - start
        start = time.perf_counter()
        load = authors_load(workdir)
        load_s = time.perf_counter() - start
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return {"total_s": extract_s + load_s, "extract_s": extract_s, "load_s": load_s, **extract, **load}


# --------------------------------------------------------------------------------------------------------------
# (b) the decode floor, and ours
# --------------------------------------------------------------------------------------------------------------


def run_floor(video: Path, decoder_threads: int, batched: bool = False) -> dict:
    """Decode the 128 frames (one `get_frames_at` per segment window, each window dropped once decoded so that no
    memory is spent keeping full-size frames; or all 128 in one call with `batched`) and the whole audio track at
    16 kHz mono."""
    from torchcodec.decoders import AudioDecoder, VideoDecoder

    with single_torch_thread():  # as ours: torch's spinning OpenMP workers would take the cores from FFmpeg
        start = time.perf_counter()
        decoder = VideoDecoder(str(video), seek_mode="exact", num_ffmpeg_threads=decoder_threads)
        indices = sample_segment_frame_indices(decoder.metadata.num_frames, NUM_SEGMENTS, FRAMES_PER_SEGMENT)
        if batched:
            decoded = decoder.get_frames_at(indices.flatten().tolist()).data.shape[0]
        else:
            decoded = sum(decoder.get_frames_at(window.tolist()).data.shape[0] for window in indices)
        frames_s = time.perf_counter() - start
        audio = AudioDecoder(str(video), sample_rate=16000, num_channels=1).get_all_samples().data
        total_s = time.perf_counter() - start
    assert decoded == NUM_SEGMENTS * FRAMES_PER_SEGMENT and audio.shape[0] == 1
    return {"total_s": total_s, "frames_s": frames_s, "audio_s": total_s - frames_s}


STAGES = defaultdict(float)  # seconds per stage of our processor during the current call


def instrument():
    """Time the stages of our processor (wrapping its methods; a few timer calls per segment)."""
    targets = [
        (TorchcodecVideoReader, "__init__", "open (probe + decoders)"),
        (TorchcodecVideoReader, "get_frames", "decode 128 frames"),
        (AVCANetVideoProcessor, "_transform", "resize + crop (uint8)"),
        (AVCANetVideoProcessor, "rescale_and_normalize", "to float + normalise"),
        (AVCANetProcessor, "_features_from_reader", "audio windows + log-mel"),
    ]
    for owner, name, stage in targets:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, _original=original, _stage=stage, **kwargs):
            start = time.perf_counter()
            try:
                return _original(*args, **kwargs)
            finally:
                STAGES[_stage] += time.perf_counter() - start

        setattr(owner, name, timed)


def run_ours(processor: AVCANetProcessor, video: Path) -> dict:
    STAGES.clear()
    start = time.perf_counter()
    inputs = processor(videos=str(video), training=False)
    total_s = time.perf_counter() - start
    assert inputs["pixel_values_videos"].shape == (1, NUM_SEGMENTS * FRAMES_PER_SEGMENT, 3, SIZE, SIZE)
    assert inputs["audio_mask"].item() == 1
    stages = {f"stage:{stage}_s": seconds for stage, seconds in STAGES.items()}
    return {"total_s": total_s, **stages, "stage:rest_s": total_s - sum(STAGES.values())}


# --------------------------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10 s 640x360, 5 s 720x1280 and 60 s 1280x720 files")
    parser.add_argument("--repeats", type=int, help="timed rounds per file (default 5, --quick 3)")
    parser.add_argument("--authors-max-runs-long", type=int, default=1,
                        help="runs of the authors' pipeline on files over 2 min (--quick: 30 s); it dumps every frame")  # fmt: skip
    parser.add_argument(
        "--long-repeats", type=int, help="rounds on files over 2 min (--quick: 30 s); default 3, --quick 2"
    )
    parser.add_argument("--files", nargs="+", choices=sorted(MEDIA), help="media keys instead of the default set")
    parser.add_argument("--skip-authors", action="store_true")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads (default: all)")
    parser.add_argument("--decoder-threads", type=int, default=0, help="FFmpeg threads per decoder (0: FFmpeg picks)")
    parser.add_argument("--media-dir", type=Path, default=DEFAULT_MEDIA_DIR)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 5)
    args.long_repeats = args.long_repeats or (2 if args.quick else 3)
    keys = args.files or (
        ["10s_640x360", "5s_720x1280", "60s_1280x720"]
        if args.quick
        else ["10s_640x360", "30s_720x1280", "10min_1280x720"]
    )
    with_authors = not args.skip_authors and shutil.which("ffmpeg") is not None
    if with_authors and importlib.util.find_spec("librosa") is None:
        print("librosa is not installed: skipping the authors' pipeline (pip install librosa)")
        with_authors = False

    print(f"machine: {machine()}; torch threads {args.threads}, decoder threads {args.decoder_threads}")
    paths = {key: media_file(key, args.media_dir) for key in keys}
    processor = AVCANetProcessor(video_processor=AVCANetVideoProcessor(decoder_threads=args.decoder_threads))
    instrument()

    # warm-up (imports, librosa's numba/soxr set-up, torch's lazy init, page cache) on the smallest file
    smallest = min(paths.values(), key=lambda path: path.stat().st_size)
    for path in paths.values():  # read each file once so that no method pays for the first disk read
        path.read_bytes()
    run_ours(processor, smallest)
    run_floor(smallest, args.decoder_threads)
    if with_authors:
        run_authors(smallest)

    results = {}
    for key, path in paths.items():
        seconds = MEDIA[key][1]
        long_file = seconds > (30 if args.quick else 120)
        authors_runs = min(repeats, args.authors_max_runs_long) if long_file else repeats
        methods = {
            "ours": lambda path=path: run_ours(processor, path),
            "floor": lambda path=path: run_floor(path, args.decoder_threads),
            "floor_batched": lambda path=path: run_floor(path, args.decoder_threads, batched=True),
        }
        runs = {"ours": [], "floor": [], "floor_batched": [], "authors": []}
        for round_index in range(min(repeats, args.long_repeats) if long_file else repeats):
            order = ["ours", "floor", "floor_batched"]
            order += ["authors"] if with_authors and round_index < authors_runs else []
            order = order[round_index % len(order) :] + order[: round_index % len(order)]  # rotate
            for name in order:
                runs[name].append(run_authors(path) if name == "authors" else methods[name]())
        results[key] = summarize(key, runs)
        print_file(results[key])

    print_summary(results, args, repeats)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


def summarize(key: str, runs: dict) -> dict:
    out = {"file": MEDIA[key][4], "seconds": MEDIA[key][1]}
    for name, values in runs.items():
        if values:
            out[name] = {field: median([run[field] for run in values]) for field in values[0] if field.endswith("_s")}
            out[name]["runs_s"] = [run["total_s"] for run in values]
            if name == "authors":
                out[name]["dump_mib"] = values[0]["dump_mib"]
                out[name]["n_frames"] = values[0]["n_frames"]
    return out


def print_file(result: dict):
    ours, floor = result["ours"], result["floor"]
    print(f"\n{result['file']}")
    print(f"  ours   {ours['total_s']:7.2f} s/video  (runs {', '.join(f'{t:.2f}' for t in ours['runs_s'])})")
    stages = {key[6:-2]: value for key, value in ours.items() if key.startswith("stage:")}
    print("         stages: " + ", ".join(f"{name} {seconds:.3f} s" for name, seconds in stages.items()))
    print(f"  floor  {floor['total_s']:7.2f} s/video  (128 frames {floor['frames_s']:.2f} s + whole audio track "
          f"{floor['audio_s']:.2f} s; runs {', '.join(f'{t:.2f}' for t in floor['runs_s'])})")  # fmt: skip
    if "authors" in result:
        authors = result["authors"]
        print(f"  authors{authors['total_s']:7.2f} s/video  (ffmpeg -> {authors['n_frames']} JPEGs {authors['jpg_s']:.2f} s "
              f"[{authors['dump_mib']:.0f} MiB on disk] + mp3 {authors['mp3_s']:.2f} s; loader {authors['load_s']:.2f} s = "
              f"PIL 128 JPEGs {authors['frames_s']:.2f} s + librosa MFCC {authors['audio_s']:.2f} s; "
              f"runs {', '.join(f'{t:.2f}' for t in authors['runs_s'])})")  # fmt: skip
    batched = result["floor_batched"]
    print(f"  floor, one call {batched['total_s']:5.2f} s/video  (128 frames {batched['frames_s']:.2f} s)")
    print(f"  ours/floor {ours['total_s'] / floor['total_s']:.2f}  ours/(128 frames only) "
          f"{ours['total_s'] / floor['frames_s']:.2f}", end="")  # fmt: skip
    if "authors" in result:
        print(f"  ours/authors {ours['total_s'] / result['authors']['total_s']:.3f}  "
              f"ours/authors-loader-only {ours['total_s'] / result['authors']['load_s']:.2f}", end="")  # fmt: skip
    print(flush=True)


def print_summary(results: dict, args, repeats: int):
    header = ["file", "ours s/video", "(a) authors s/video (dump + loader)", "(a) loader only", "(b) floor",
              "(b) floor, one call", "ours/(a)", "ours/(a) loader", "ours/(b)"]  # fmt: skip
    rows = []
    for result in results.values():
        ours, floor, authors = result["ours"]["total_s"], result["floor"]["total_s"], result.get("authors")
        rows.append([
            result["file"], f"{ours:.2f}",
            f"{authors['total_s']:.2f} ({authors['extract_s']:.2f} + {authors['load_s']:.2f})" if authors else "-",
            f"{authors['load_s']:.2f}" if authors else "-", f"{floor:.2f}", f"{result['floor_batched']['total_s']:.2f}",
            f"{ours / authors['total_s']:.3f}" if authors else "-", f"{ours / authors['load_s']:.2f}" if authors else "-",
            f"{ours / floor:.2f}",
        ])  # fmt: skip
    print(f"\nmedians of {repeats} rounds ({args.long_repeats} on files over {30 if args.quick else 120} s, where the "
          f"authors' pipeline runs "
          f"{args.authors_max_runs_long} time(s))")  # fmt: skip
    print(markdown_table(header, rows))
    ordered = sorted(results.values(), key=lambda result: result["seconds"])
    if len(ordered) > 1:
        first, last = ordered[0], ordered[-1]
        growth = last["ours"]["total_s"] / first["ours"]["total_s"]
        print(f"\nours grows x{growth:.1f} from {first['file']} to {last['file']} "
              f"(x{last['seconds'] / first['seconds']:.0f} the length): "
              + ", ".join(f"{r['file']} {r['ours']['total_s']:.2f} s" for r in ordered))  # fmt: skip


if __name__ == "__main__":
    main()
