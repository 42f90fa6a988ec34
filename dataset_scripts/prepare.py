"""
A one-off preparation of a saved data set into a training-ready copy that decodes many times faster every epoch.

Each video is decoded once and re-encoded into a small mp4 made for one processor setting:

- frames upright, resized to the short side the processor needs, the largest of its training crop and its eval
  resize (112 by default; decoded by PyAV straight into the encoder's YUV at that size, or by the processor's own
  reader for files that need it), as H.264 4:4:4 (CRF 16, fastdecode) with a keyframe exactly every
  `frames_per_segment` frames (none added at scene cuts or where the source had one), so that any window of
  `frames_per_segment` frames decodes from at most one keyframe back (the encoding was chosen by measurement,
  `benchmarks/prepared_encoding.py`); `--pixel_format yuv420p` halves the colour resolution for reads 1.2-1.3x
  faster (the frames are then coded at even sides, the tag keeps their size);
- the SAME frames with the same timestamps and durations (a variable frame rate stays variable), so the processor
  draws the same frame indices and the same audio windows as from the original; when every frame follows the last
  by the same step, the tag announces it (`constant_frame_step`), so readers need not scan the copy's packets;
- the audio as the feature extractor reads it: channels averaged and resampled to its rate (16 kHz) with the same
  torchaudio call, starting with the first frame, stored as 24-bit 16 kHz mono FLAC in the same file (blocks of
  4608 samples, compression level 8);
- the settings it was made for, as a JSON tag in the file (`processing.prepared_copies.PREPARED_FORMAT`), so the
  processor knows it reads a prepared copy and refuses a size or rate the copy cannot provide
  (`PreparedVideoMismatchError`).

The copy is a folder `datasets.load_from_disk` and `examples/train.py --dataset_dir` read like the source (same
splits, rows, labels and `label_polarities.json`; the `video` column holds the prepared files' bytes), plus
`prepared.json` with the settings and the videos left out.

    python -m dataset_scripts.prepare data/emotions --output data/emotions-prepared
    python -m dataset_scripts.prepare data/emotions --output data/emotions-32 --model outputs/avcanet-demo
    python -m dataset_scripts.prepare data/emotions --output data/emotions-420 --pixel_format yuv420p
    python -m dataset_scripts.prepare data/emotions --output /shared/prepared --shard_index 2 --num_shards 4

Work is split by process (`RANK` / `WORLD_SIZE`, set by `accelerate launch` and `torchrun`, or `--shard_index` /
`--num_shards` on several machines sharing the output folder), each process's share over all its cores
(`Dataset.map(num_proc=...)`, with a progress bar). Every video is written to `<output>/.work/` atomically and
skipped when already there, so a killed run continues where it stopped. The process that finishes last writes the
data set (or `--merge` does, once all shares are done), then removes `.work`. A video that cannot be read is
reported once, with its path and the reason, and left out.
"""

import argparse
import io
import json
import logging
import os
import shutil
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from datasets import DatasetDict, Video, load_from_disk

from processing import AVCANetProcessor
from processing.errors import VideoDecodingError
from processing.prepared_copies import PREPARED_FORMAT, PREPARED_PIXEL_FORMATS, check_prepared_settings
from processing.decoding_threads import single_torch_thread
from processing.video_decoding import FrameDecodingFailed, open_video
from transformers.image_utils import PILImageResampling, SizeDict

from .common import LABEL_POLARITIES_FILE
from .validity import report_skipped_videos

logger = logging.getLogger(__name__)

PREPARED_FILE = "prepared.json"
WORK_DIR = ".work"
PREPARED_VERSION = 1
# H.264, `tune=fastdecode` (no CABAC, no deblocking), a keyframe every `frames_per_segment` frames (set per copy):
# of all-intra, keyframes every 4, 8, 16, 32 frames and MJPEG, the fastest training-mode read on one core but for
# MJPEG, whose files are 8x larger (benchmarks/prepared_encoding.py); fastdecode reads 15 % faster again. No scene-cut
# keyframes (`sc_threshold=0`, 2 % larger files) and no keyframes forced by the source's: readers take them to be
# exactly every interval. The pixel format is a setting of the copy (`PREPARED_PIXEL_FORMATS`).
VIDEO_ENCODING = {
    "codec": "libx264",
    "options": {"crf": "16", "preset": "veryfast", "tune": "fastdecode", "bf": "0", "sc_threshold": "0"},
}
# FLAC blocks of 0.29 s at 16 kHz and a deeper search: 12 % smaller than the defaults (1152, level 5), reads as fast
AUDIO_ENCODING_OPTIONS = {"frame_size": "4608", "compression_level": "8"}
FRAMES_PER_DECODE = 32  # frames decoded, resized and encoded at a time: memory follows this, not the file length
AUDIO_CHUNK_SECONDS = 30.0  # audio resampled per chunk (with the reader's margins), so a long track is never whole


def prepared_settings_for(
    processor: AVCANetProcessor, short_side: int | None = None, pixel_format: str = "yuv444p"
) -> dict:
    """What a copy made for `processor` stores: the frames' short side and the audio rate (the settings a later
    processor is checked against), and the pixel format of its frames. `short_side` may ask for larger frames than
    `processor` needs, for later use; `pixel_format` is one of `PREPARED_PIXEL_FORMATS`."""
    needed = processor.video_processor.required_short_side
    if short_side is not None and short_side < needed:
        raise ValueError(f"short_side={short_side} is smaller than the {needed} pixels the processor needs.")
    if pixel_format not in PREPARED_PIXEL_FORMATS:
        raise ValueError(f"pixel_format must be one of {', '.join(PREPARED_PIXEL_FORMATS)}, got {pixel_format!r}.")
    return {
        "format": PREPARED_FORMAT,
        "version": PREPARED_VERSION,
        "short_side": short_side or needed,
        "sampling_rate": processor.feature_extractor.sampling_rate,
        "keyframe_interval": processor.video_processor.frames_per_segment,  # a window decodes from <= 1 keyframe back
        "pixel_format": pixel_format,
    }


def _resized_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """The processor's shortest-edge resize, never enlarging (a smaller original already holds all there is)."""
    if min(height, width) <= short_side:
        return height, width
    if height <= width:
        return short_side, int(short_side * width / height)
    return int(short_side * height / width), short_side


def _even_sized(frame):
    """`frame` (yuv420p, yuv444p or rgb24) with its last row and column repeated up to even sides, as 4:2:0 needs;
    the copy's tag gives the real size, which readers crop back to."""
    height, width = frame.height % 2, frame.width % 2  # rows and columns to add
    if not height and not width:
        return frame
    if frame.format.name == "yuv420p":  # odd sides already have ceil(side / 2) chroma samples: pad the luma only
        luma, *chroma = [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)[:, : p.width] for p in frame.planes]
        luma = np.pad(luma, ((0, height), (0, width)), mode="edge")
        planes = np.concatenate([luma.ravel(), *(plane.ravel() for plane in chroma)])
        return av.VideoFrame.from_ndarray(planes.reshape(-1, luma.shape[1]), format="yuv420p")  # (3 H / 2, W)
    if frame.format.name == "rgb24":
        pixels = np.pad(frame.to_ndarray(), ((0, height), (0, width), (0, 0)), mode="edge")
    else:
        pixels = np.pad(frame.to_ndarray(channel_last=False), ((0, 0), (0, height), (0, width)), mode="edge")
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format=frame.format.name)


def _as_file(source):
    return io.BytesIO(source) if isinstance(source, bytes) else os.fspath(source)


class _NotForTheFastPath(Exception):
    """The source needs the processor's own reader to be copied exactly (see `_frames_by_pyav`)."""


def _frames_by_pyav(
    source, reader, height: int, width: int, color: dict, pixel_format: str, frame_step: dict | None = None
):
    """The frames of `source` as `(VideoFrame at height x width, pts, duration)`, decoded by PyAV straight into the
    encoder's `pixel_format` and size (no RGB round trip: 2x faster than the reader on HD files; rotated frames go
    through 4:4:4, turned there).

    Used only when it provably gives the reader's frames: every frame decodes, in increasing timestamps, as many as
    the reader lists, ending where the reader's clip ends, in limited-range YUV (`color` gets the source's colour
    tags for the encoder), and, with `frame_step`, frame `i` at `i * step` shown `step` long, `frames` of them;
    otherwise raises `_NotForTheFastPath` before or while yielding."""
    with av.open(_as_file(source)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        time_base, first, count, previous = stream.time_base, None, 0, None
        try:
            for frame in container.decode(stream):
                if frame.pts is None or (previous is not None and frame.pts <= previous):
                    raise _NotForTheFastPath("frames without or out of order timestamps")
                if first is None:
                    if frame.color_range == 2 or frame.format.name.startswith("yuvj"):
                        raise _NotForTheFastPath("full-range YUV")  # a range conversion would shift the levels
                    first = frame.pts
                    rotation = round((frame.rotation or 0) / 90) % 4
                    color.update(colorspace=frame.colorspace, color_primaries=frame.color_primaries,
                                 color_trc=frame.color_trc)  # fmt: skip
                stored_height, stored_width = (width, height) if rotation % 2 else (height, width)
                planar = "yuv444p" if rotation else pixel_format
                # one thread, as the decoder: the preparation runs a process per core (same pixels, a third less CPU)
                small = frame.reformat(
                    stored_width, stored_height, format=planar, interpolation="BILINEAR", threads=1
                )
                if rotation:
                    planes = np.rot90(small.to_ndarray(channel_last=False), k=rotation, axes=(1, 2))
                    small = av.VideoFrame.from_ndarray(np.ascontiguousarray(planes), format="yuv444p")
                duration = frame.duration or 0
                if frame_step is not None and (frame.pts - first, duration) != (count * frame_step["step"],
                                                                                 frame_step["step"]):  # fmt: skip
                    raise _NotForTheFastPath("the frames are not at the constant step announced in the tag")
                previous, count = frame.pts, count + 1
                yield small, frame.pts - first, duration
        except av.error.FFmpegError as error:
            raise _NotForTheFastPath(f"decoding failed ({error})") from error
    if first is None or count != reader.num_frames or (frame_step is not None and count != frame_step["frames"]):
        raise _NotForTheFastPath(f"{count} frames decoded, the reader lists {reader.num_frames}")
    if abs(float((previous - first + duration) * time_base) - reader.clip_duration) > 1e-6:
        raise _NotForTheFastPath("the clip ends elsewhere than for the reader")


def _frames_by_reader(reader, resizer, short_side: int, height: int, width: int, time_base: Fraction):
    """The frames as the processor's reader decodes them (upright RGB, resized as the processor's eval resize), as
    `(rgb24 VideoFrame, pts, duration)`; a cut-off tail is dropped as the processor drops it."""
    begin = 0
    while begin < reader.num_frames:
        try:
            decoded = reader.get_frames(list(range(begin, min(begin + FRAMES_PER_DECODE, reader.num_frames))))
        except FrameDecodingFailed:  # a cut-off tail: keep the frames that decode, as the processor does
            if reader.decodable_prefix() <= begin:
                break
            continue
        begin += len(decoded.frames)
        frames = decoded.frames
        if (height, width) != tuple(frames.shape[-2:]):
            size = SizeDict(shortest_edge=short_side)
            frames = resizer.resize(frames, size=size, resample=PILImageResampling.BILINEAR)
        for image, timestamp, duration in zip(frames, decoded.timestamps, decoded.durations):
            frame = av.VideoFrame.from_ndarray(image.permute(1, 2, 0).numpy(), format="rgb24")
            yield frame, round(float(timestamp) / time_base), round(float(duration) / time_base)


def prepare_video(source, output_path, settings: dict, encoding: dict = VIDEO_ENCODING, resizer=None) -> dict:
    """Re-encode one video (a path or the bytes of a file) into `output_path` (written atomically); returns facts
    about it. Raises `VideoDecodingError` for a video the processor could not read either.

    Frames come from PyAV decoding straight into the encoder's format when that provably gives the processor's
    frames (`_frames_by_pyav`), else from the processor's own reader."""
    output_path = Path(output_path)
    resizer = resizer or AVCANetProcessor().video_processor
    partial = output_path.with_name(output_path.name + ".partial")
    with single_torch_thread(), open_video(source, decoder_threads=1) as reader:
        time_base, frame_step = _source_timing(source)
        height, width = _resized_size(reader.height, reader.width, settings["short_side"])
        color = {}
        try:  # PyAV straight into YUV, announcing a constant frame step if the source has one, then without
            for step in [frame_step, None] if frame_step else [None]:
                try:
                    frames = _frames_by_pyav(source, reader, height, width, color, settings["pixel_format"], step)
                    _write_copy(partial, reader, frames, settings, encoding, time_base, height, width, color, step)
                    break
                except _NotForTheFastPath:
                    if step is None:
                        raise
        except _NotForTheFastPath:
            frames = _frames_by_reader(reader, resizer, settings["short_side"], height, width, time_base)
            _write_copy(partial, reader, frames, settings, encoding, time_base, height, width, {})
        os.replace(partial, output_path)
        return {"frames": reader.num_frames, "has_audio": reader.has_audio}


def _source_timing(source) -> tuple[Fraction, dict | None]:
    """The source's video time base (copied, so that timestamps stay exact) and, when every frame follows the last by
    the same step, `{"frames", "step"}`: announced in the copy's tag, readers then need not scan its packets
    (`processing.video_decoding.PyAVVideoReader`). Reads the packets' headers, decodes nothing."""
    with av.open(_as_file(source)) as container:
        stream = container.streams.video[0]
        time_base = stream.time_base  # read while the container is open: the stream is freed with it
        try:
            pts = sorted(packet.pts for packet in container.demux(stream) if packet.pts is not None and packet.size)
        except av.error.FFmpegError:
            return time_base, None  # damaged: the copy is made without the announcement
    steps = set(np.diff(pts).tolist())
    return time_base, ({"frames": len(pts), "step": steps.pop()} if len(steps) == 1 else None)


def _write_copy(path, reader, frames, settings, encoding, time_base, height, width, color: dict, frame_step=None):
    """Encode `frames` (`(VideoFrame, pts, duration)` in `time_base`) and the reader's audio into the mp4 at `path`;
    the tag records `settings` and, when given, the constant `frame_step` the frames follow."""
    rate = settings["sampling_rate"]
    tag = dict(settings, height=height, width=width, has_audio=reader.has_audio)
    tag.update({"constant_frame_step": frame_step} if frame_step else {})
    subsampled = settings["pixel_format"] == "yuv420p"  # 4:2:0 is coded at even sides
    with av.open(str(path), mode="w", format="mp4") as container:
        container.metadata["comment"] = json.dumps(tag)
        video = container.add_stream(encoding["codec"], rate=30)
        video.width, video.height = (width + width % 2, height + height % 2) if subsampled else (width, height)
        video.pix_fmt = settings["pixel_format"]
        video.time_base = time_base
        video.codec_context.time_base = time_base
        video.options = {"g": str(settings["keyframe_interval"]), **encoding["options"]}
        audio = container.add_stream("flac", rate=rate, layout="mono") if reader.has_audio else None
        if audio is not None:
            audio.format = "s32"  # FLAC keeps 24 bits: 16 bits would move the log-mel of quiet bins by ~0.1
            audio.options = AUDIO_ENCODING_OPTIONS
        durations = {}
        for frame, pts, duration in frames:
            if not durations:
                for name, value in color.items():  # the source's colour tags, before the encoder opens
                    setattr(video.codec_context, name, value)
            frame = _even_sized(frame) if subsampled else frame
            frame.pts, frame.time_base = pts, time_base
            frame.pict_type = av.video.frame.PictureType.NONE  # a source keyframe must not force one here
            durations[pts] = duration
            _mux(container, video.encode(frame), durations)
        _mux(container, video.encode(), durations)
        if audio is not None:
            total = max(round(reader.clip_duration * rate), 1)
            chunk = round(AUDIO_CHUNK_SECONDS * rate)
            for start in range(0, total, chunk):
                samples = reader.get_audio(start / rate, min(chunk, total - start), rate)
                pcm = (samples.double().clamp(-1, 1 - 2**-31) * 2**31).round().to(torch.int32).numpy()[None, :]
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm), format="s32", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
                container.mux(audio.encode(frame))
            container.mux(audio.encode())


def _mux(container, packets, durations: dict):
    for packet in packets:
        packet.duration = durations.get(packet.pts, packet.duration)
        container.mux(packet)


# --------------------------------------------------------------------------------------------------------------
# The data set: shares, resumable per-video work, the final write
# --------------------------------------------------------------------------------------------------------------


def _video_source(cell: dict):
    """What a `Video(decode=False)` cell holds: the bytes of the file, or its path."""
    return cell["bytes"] if cell.get("bytes") else cell["path"]


def _work_files(output_dir: Path, split: str, row: int) -> tuple[Path, Path]:
    """The prepared video of one row and the file that records why it was left out; one of them exists once the row
    is done."""
    folder = output_dir / WORK_DIR / split
    return folder / f"{row:08d}.mp4", folder / f"{row:08d}.problem.txt"


def _prepare_row(cell: dict, local_index: int, *, output_dir: str, split: str, offset: int, settings: dict):
    """`Dataset.map` function: prepare one row unless a previous run did; a video that fails is recorded, not raised."""
    video_path, problem_path = _work_files(Path(output_dir), split, offset + local_index)
    if not (video_path.exists() or problem_path.exists()):
        try:
            prepare_video(_video_source(cell), video_path, settings)
        except Exception as error:  # noqa: BLE001 - any failure leaves this one video out, never the whole run
            reason = error.cause if isinstance(error, VideoDecodingError) else f"{type(error).__name__}: {error}"
            partial = problem_path.with_suffix(".partial")
            partial.write_text(f"{cell.get('path') or '<bytes>'}\t{reason}")
            os.replace(partial, problem_path)
    return {}


def share_of_rows(num_rows: int, shard_index: int, num_shards: int) -> range:
    """The contiguous rows of a split that share `shard_index` of `num_shards` prepares."""
    return range(shard_index * num_rows // num_shards, (shard_index + 1) * num_rows // num_shards)


def _default_shard() -> tuple[int, int]:
    """This process's share under `accelerate launch` / `torchrun` (RANK, WORLD_SIZE), else the whole data set."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _default_num_proc() -> int:
    """All cores, split between the processes `accelerate launch` starts on this machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


def prepare_dataset(
    source_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    processor: AVCANetProcessor | None = None,
    short_side: int | None = None,
    num_proc: int | None = None,
    shard_index: int | None = None,
    num_shards: int | None = None,
    pixel_format: str = "yuv444p",
) -> Path | None:
    """
    Prepare the data set saved in `source_dir` (by `save_dataset`) for `processor` (default: `AVCANetProcessor()`,
    the default model config) into `output_dir`; see the module docstring.

    Args:
        short_side: store larger frames than `processor` needs (e.g. for a later, larger model).
        num_proc: worker processes (default: the cores, divided between the processes on this machine).
        shard_index, num_shards: this process's share (default: `RANK` / `WORLD_SIZE`, else everything).
        pixel_format: `"yuv444p"` (default) or `"yuv420p"`: half the colour resolution, reads 1.2-1.3x faster.

    Returns:
        `output_dir` when this call wrote the data set (it finished the last share), else `None`.
    """
    source_dir, output_dir = Path(source_dir), Path(output_dir)
    settings = prepared_settings_for(processor or AVCANetProcessor(), short_side, pixel_format)
    if (output_dir / PREPARED_FILE).exists():
        made_for = json.loads((output_dir / PREPARED_FILE).read_text())["settings"]
        if made_for != settings:
            raise ValueError(f"{output_dir} already holds a copy prepared for {made_for}, not {settings}.")
        logger.info("%s is already prepared", output_dir)
        return output_dir
    default_index, default_count = _default_shard()
    shard_index = default_index if shard_index is None else shard_index
    num_shards = default_count if num_shards is None else num_shards
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard_index must be in [0, {num_shards}), got {shard_index}.")
    source = load_from_disk(str(source_dir))
    if not isinstance(source, DatasetDict):
        raise ValueError(f"{source_dir} holds a single Dataset; expected a DatasetDict saved by save_dataset.")
    num_proc = num_proc or _default_num_proc()

    for split, rows in source.items():
        share = share_of_rows(len(rows), shard_index, num_shards)
        (output_dir / WORK_DIR / split).mkdir(parents=True, exist_ok=True)
        if len(share) == 0:
            continue
        rows.select(share).map(
            _prepare_row,
            input_columns="video",
            with_indices=True,
            fn_kwargs=dict(output_dir=str(output_dir), split=split, offset=share.start, settings=settings),
            remove_columns=rows.column_names,
            num_proc=min(num_proc, len(share)) if num_proc > 1 else None,  # 1: in this process, no pool
            keep_in_memory=True,  # nothing to cache: the work is the files written
            load_from_cache_file=False,
            desc=f"Preparing {split} ({shard_index + 1}/{num_shards})" if num_shards > 1 else f"Preparing {split}",
        )
    if not _all_rows_done(source, output_dir):
        logger.info("Share %d of %d done; the last share to finish writes the data set.", shard_index, num_shards)
        return None
    if num_shards > 1 and not _take_merge_lock(output_dir):
        return None  # another share found everything done at the same moment and writes it
    return write_prepared_dataset(source_dir, output_dir, settings)


def _all_rows_done(source: DatasetDict, output_dir: Path) -> bool:
    for split, rows in source.items():
        for row in range(len(rows)):
            video_path, problem_path = _work_files(output_dir, split, row)
            if not (video_path.exists() or problem_path.exists()):
                return False
    return True


def _take_merge_lock(output_dir: Path) -> bool:
    try:
        os.close(os.open(output_dir / WORK_DIR / "merge.lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def write_prepared_dataset(source_dir: str | os.PathLike, output_dir: str | os.PathLike, settings: dict) -> Path:
    """Write the data set from the prepared videos in `<output_dir>/.work` (every row must be done): the source's
    splits and columns without the rows left out, `video` holding the prepared files' bytes, the source's
    `label_polarities.json`, and `prepared.json`; the left-out videos are reported once. Removes `.work`."""
    source_dir, output_dir = Path(source_dir), Path(output_dir)
    source = load_from_disk(str(source_dir))
    splits, left_out = {}, {}
    for split, rows in source.items():
        kept, paths = [], []
        for row in range(len(rows)):
            video_path, problem_path = _work_files(output_dir, split, row)
            if video_path.exists():
                kept.append(row)
                paths.append(str(video_path))
            else:
                path, reason = problem_path.read_text().split("\t", 1)
                left_out[f"{split}[{row}] {path}"] = reason
        columns = rows.column_names
        prepared = rows.select(kept).remove_columns("video").add_column("video", paths)
        splits[split] = prepared.cast_column("video", Video(decode=False)).select_columns(columns)
    report_skipped_videos(left_out, f"Preparing {source_dir}")
    DatasetDict(splits).save_to_disk(str(output_dir))  # embeds the prepared files' bytes
    shutil.copyfile(source_dir / LABEL_POLARITIES_FILE, output_dir / LABEL_POLARITIES_FILE)
    record = {
        "settings": settings,
        "encoding": {
            "video": {**VIDEO_ENCODING, "pix_fmt": settings["pixel_format"]},
            "audio": f"flac 24-bit mono {settings['sampling_rate']} Hz",
        },
        "source": str(source_dir.resolve()),
        "videos": {split: len(rows) for split, rows in splits.items()},
        "left_out": left_out,
    }
    partial = output_dir / (PREPARED_FILE + ".partial")
    partial.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(partial, output_dir / PREPARED_FILE)  # written last: its presence means the copy is complete
    shutil.rmtree(output_dir / WORK_DIR, ignore_errors=True)
    return output_dir


def check_prepared_dataset(dataset_dir: str | os.PathLike, processor: AVCANetProcessor) -> dict | None:
    """Before training: raise `PreparedVideoMismatchError` when `dataset_dir` is a prepared copy that cannot give
    what `processor` needs; returns its settings (`None` for a data set that is not a prepared copy)."""
    record_path = Path(dataset_dir) / PREPARED_FILE
    if not record_path.exists():
        return None
    settings = json.loads(record_path.read_text())["settings"]
    check_prepared_settings(
        settings,
        repr(str(dataset_dir)),
        short_side=processor.video_processor.required_short_side,
        sampling_rate=processor.feature_extractor.sampling_rate,
    )
    return settings


def processor_for(model: str | None) -> AVCANetProcessor:
    """The processor a model needs: a saved processor (`preprocessor_config.json`) or one built from its config; the
    default processor without a model."""
    if model is None:
        return AVCANetProcessor()
    from modeling_avcanet import AVCANetConfig

    try:
        return AVCANetProcessor.from_pretrained(model)
    except (OSError, ValueError):
        return AVCANetProcessor.from_model_config(AVCANetConfig.from_pretrained(model))


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a data set saved by a dataset_scripts command (with label_polarities.json)")
    parser.add_argument("--output", required=True, help="the prepared copy's folder")
    parser.add_argument("--model", help="a save_pretrained folder or Hub id whose processor or config sets the sizes "
                        "(default: the default AVCANetConfig, 112 px, 16 kHz)")  # fmt: skip
    parser.add_argument("--short_side", type=int, help="store frames larger than the model needs")
    parser.add_argument("--pixel_format", choices=PREPARED_PIXEL_FORMATS, default="yuv444p",
                        help="yuv420p: half the colour resolution, reads 1.2-1.3x faster")  # fmt: skip
    parser.add_argument("--num_proc", type=int, help="worker processes (default: all cores)")
    parser.add_argument("--shard_index", type=int, help="this machine's share (default: RANK)")
    parser.add_argument("--num_shards", type=int, help="shares in all (default: WORLD_SIZE, else 1)")
    parser.add_argument("--merge", action="store_true", help="only write the data set, once every share is done")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(name)s %(message)s", level=logging.INFO)
    processor = processor_for(args.model)
    if args.merge:
        settings = prepared_settings_for(processor, args.short_side, args.pixel_format)
        if not _all_rows_done(load_from_disk(args.source), Path(args.output)):
            raise SystemExit(f"Not every share of {args.output} is done yet: run the missing shares first.")
        written = write_prepared_dataset(args.source, args.output, settings)
    else:
        start = time.perf_counter()
        written = prepare_dataset(
            args.source,
            args.output,
            processor,
            args.short_side,
            args.num_proc,
            args.shard_index,
            args.num_shards,
            args.pixel_format,
        )
        logger.info("Prepared in %.0f s", time.perf_counter() - start)
    if written is not None:
        record = json.loads((written / PREPARED_FILE).read_text())
        print(f"Prepared copy in {written}: {record['videos']} videos, {len(record['left_out'])} left out")


if __name__ == "__main__":
    main()
