"""Reading the sampled frames and the audio of one video, without decoding the rest of it.

`open_video` turns any accepted input into a reader with one interface:

- a prepared copy (`dataset_scripts.prepare`, recognised by its settings tag, `prepared_copies`) is read with PyAV,
  whose planar 4:4:4 -> planar RGB conversion gives torchcodec's pixels exactly in 25 instead of 34 ms for a
  training read of a 30 s copy (one core), and whose frame table and frame size (a 4:2:0 copy is coded at even
  sides) the copy's tag gives (no packet scan);
- any other path, bytes or binary file object is decoded with torchcodec when it loads (`VideoDecoder` in exact seek
  mode, so frame `i` is frame `i` even at a variable frame rate; it turns frames upright from the display-matrix
  rotation itself), else with PyAV, which finds frames the same way and applies the rotation here;
- a torchcodec `VideoDecoder` (what a `datasets` `Video` column yields) is read as it is; its audio comes from the
  path or bytes `datasets` records on it (a prepared copy's source is read as a prepared copy);
- already-decoded frames (an array, a tensor, a list of PIL images) are indexed in memory.

`reader.prepared` holds a prepared copy's tag, and `reader.require` refuses sizes or audio rates the copy cannot
provide (`PreparedVideoMismatchError`).

Readers decode only the frames asked for, one segment window at a time, and audio only inside the audio windows, so
memory follows the number of sampled frames, not the length of the file. Every failure to read an input becomes a
`VideoDecodingError` that names the input and the cause.
"""

import bisect
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio_decoding import TorchcodecAudioTrack, pyav_audio_window
from .decoding_threads import decoder_threads_for_this_process
from .errors import VideoDecodingError, ffmpeg_reason
from .frame_sampling import looped_windows, windows_within_clip
from .prepared_copies import check_prepared_settings, parse_prepared_tag


try:  # torchcodec needs the system FFmpeg libraries and fails to import (not only ImportError) without them
    from torchcodec.decoders import VideoDecoder, get_container_metadata

    TORCHCODEC_AVAILABLE = True
except Exception:
    VideoDecoder = get_container_metadata = None
    TORCHCODEC_AVAILABLE = False

try:
    import av
    from av.video.reformatter import VideoReformatter
except ImportError:
    av = VideoReformatter = None


@dataclass
class DecodedFrames:
    """Frames decoded at requested indices, in the requested order."""

    frames: torch.Tensor  # (K, C, H, W) uint8, upright
    timestamps: torch.Tensor  # (K,) float64, seconds from the clip's first frame
    durations: torch.Tensor  # (K,) float64, seconds each frame is shown


class FrameDecodingFailed(Exception):
    """A frame the container lists cannot be decoded (a damaged or cut-off tail); readers' internal signal."""


def describe_source(source) -> str:
    """A short printable name of a video input, for messages."""
    if isinstance(source, (str, os.PathLike)):
        return repr(str(source))
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes>"
    if hasattr(source, "read"):
        return repr(getattr(source, "name", f"<file object {type(source).__name__}>"))
    encoded = getattr(source, "_hf_encoded", None) or {}
    if encoded.get("path"):
        return repr(encoded["path"])
    return f"<{type(source).__name__}>"


def _check_source_exists(source, name: str):
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise VideoDecodingError(name, "file not found")
        if path.is_dir():
            raise VideoDecodingError(name, "is a directory, not a video file")
        if path.stat().st_size == 0:
            raise VideoDecodingError(name, "file is empty (0 bytes)")
    elif isinstance(source, (bytes, bytearray, memoryview)) and len(source) == 0:
        raise VideoDecodingError(name, "no data (0 bytes)")


class AVCANetVideoReader:
    """Frames and audio of one video. Subclasses set the attributes below and implement `get_frames` (and
    `get_audio` when they can have audio).

    Attributes:
        name: printable name of the input.
        num_frames: frames that can be sampled (a damaged tail excluded once found).
        height, width: size of the upright frames.
        clip_duration: seconds from the start of the first frame to the end of the last (the loop period).
        has_audio: whether the input has an audio track this reader can decode.
    """

    name: str
    num_frames: int
    height: int
    width: int
    clip_duration: float
    has_audio: bool = False
    prepared: dict | None = None  # the settings tag of a prepared copy (`dataset_scripts.prepare`)
    listed_frames: int | None = None  # frames the header lists, set only when fewer decode (a cut-off file)

    def require(self, short_side: int | None = None, sampling_rate: int | None = None):
        """Refuse (`PreparedVideoMismatchError`) when this is a prepared copy made for smaller frames than
        `short_side` or for another audio rate than `sampling_rate`; original files provide anything."""
        if self.prepared is not None:
            check_prepared_settings(self.prepared, self.name, short_side, sampling_rate)

    def get_frames(self, indices: list[int]) -> DecodedFrames:
        """Decode the frames at `indices` (any order, repeats allowed); raises `FrameDecodingFailed`."""
        raise NotImplementedError

    def get_audio(self, start: float, num_samples: int, sample_rate: int) -> torch.Tensor:
        """`(num_samples,)` float32 mono audio at `sample_rate` from `start` seconds after the first frame; zeros
        where the track has no samples."""
        raise NotImplementedError

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def read_audio_windows(self, starts: torch.Tensor, num_samples: int, sample_rate: int) -> torch.Tensor:
        """`(S, num_samples)` float32 audio windows starting at `starts` seconds on the looped clip's timeline.

        Windows inside the clip are decoded one by one (a long video is never decoded whole); when the clip is
        loop-padded its (short) audio is decoded once and tiled.
        """
        self.require(sampling_rate=sample_rate)
        window_duration = num_samples / sample_rate
        if windows_within_clip(starts, window_duration, self.clip_duration):
            return torch.stack([self.get_audio(float(start), num_samples, sample_rate) for start in starts])
        clip = self.get_audio(0.0, max(round(self.clip_duration * sample_rate), 1), sample_rate)
        return looped_windows(clip, torch.round(starts * sample_rate), num_samples)

    def decodable_prefix(self) -> int:
        """Find how many leading frames decode (a cut-off file fails only on its tail), keep only those, and
        return their number. Raises `VideoDecodingError` when not even the first frame decodes."""
        low, high = 0, self.num_frames  # frames [0, low) decode; frame `high` does not (or is past the end)
        while low < high:
            middle = (low + high) // 2
            try:
                self.get_frames([middle])
                low = middle + 1
            except FrameDecodingFailed:
                high = middle
        if low == 0:
            raise VideoDecodingError(self.name, "no frame of the video stream can be decoded")
        last = self.get_frames([low - 1])
        self.listed_frames = max(self.listed_frames or 0, self.num_frames)
        self.num_frames = low
        self.clip_duration = float(last.timestamps[0] + last.durations[0])  # the last good frame ends the clip
        return low


class TorchcodecVideoReader(AVCANetVideoReader):
    """torchcodec `VideoDecoder` in exact seek mode; `AudioDecoder` for the audio, created only when the container
    lists an audio track (torchcodec's own error for a missing track is misleading).

    A `decoder` passed in (from a `datasets` `Video` column) is used as it is; its audio, and a fresh decoder after a
    failure, come from the path or bytes `datasets` records on it.
    """

    def __init__(self, source, name: str, decoder_threads: int = 0, decoder=None):
        self.name = name
        self._threads = decoder_threads
        if decoder is not None:
            encoded = getattr(decoder, "_hf_encoded", None) or {}
            source = encoded.get("bytes") or encoded.get("path")
            if source is None:
                warnings.warn(
                    f"No source file is known for the torchcodec VideoDecoder {name}: it is read as having no audio "
                    "track. Pass its waveform as `audio=`.",
                    stacklevel=4,
                )
        else:
            _check_source_exists(source, name)
        streams = None
        if source is not None:
            try:
                streams = self._probe(source)
            except VideoDecodingError:
                if decoder is None:
                    raise
                warnings.warn(f"The source of {name} cannot be opened again: it is read as having no audio track.")
                source = None
        self._source = source
        if decoder is None:
            if streams.best_video_stream_index is None:
                kinds = sorted({stream.media_type for stream in streams.streams}) or ["none"]
                raise VideoDecodingError(name, f"contains no video stream (streams: {', '.join(kinds)})")
            decoder = self._open_video()
        self._video = decoder
        self._audio = None
        self.has_audio = streams is not None and streams.best_audio_stream_index is not None

        metadata = decoder.metadata
        self.num_frames = metadata.num_frames or 0
        if self.num_frames == 0:
            raise VideoDecodingError(name, "the video stream has no frames")
        self.height, self.width = metadata.height, metadata.width
        self._begin = metadata.begin_stream_seconds or 0.0
        self.clip_duration = (metadata.end_stream_seconds or 0.0) - self._begin
        if self.clip_duration <= 0:
            self.clip_duration = self.num_frames / (metadata.average_fps or 30.0)
        header, content = metadata.num_frames_from_header, metadata.num_frames_from_content
        if header and content and content < header:
            self.listed_frames = header
            warnings.warn(
                f"Video {name} looks truncated: its header lists {header} frames but only {content} are in the file; "
                "using the frames that decode.",
                stacklevel=4,
            )

    def _probe(self, source):
        self._rewind(source)
        try:
            return get_container_metadata(source)
        except Exception as error:
            raise VideoDecodingError(self.name, f"FFmpeg cannot open it ({ffmpeg_reason(error)})") from error

    def _open_video(self):
        self._rewind(self._source)
        try:
            return VideoDecoder(self._source, seek_mode="exact", num_ffmpeg_threads=self._threads)
        except Exception as error:
            raise VideoDecodingError(self.name, f"FFmpeg cannot read it ({ffmpeg_reason(error)})") from error

    @staticmethod
    def _rewind(source):
        if hasattr(source, "seek"):
            source.seek(0)

    def get_frames(self, indices: list[int]) -> DecodedFrames:
        try:
            batch = self._video.get_frames_at(indices)
        except (RuntimeError, IndexError) as error:
            if self._source is not None:  # a failed torchcodec decoder stays stuck at the end of the stream
                self._video = self._open_video()
            raise FrameDecodingFailed(str(error)) from error
        frames = batch.data
        if frames.shape[1] == self.height and frames.shape[2] == self.width:  # a decoder made with NHWC order
            frames = frames.permute(0, 3, 1, 2)
        timestamps = batch.pts_seconds.to(torch.float64) - self._begin
        return DecodedFrames(frames, timestamps, batch.duration_seconds.to(torch.float64))

    def get_audio(self, start: float, num_samples: int, sample_rate: int) -> torch.Tensor:
        if not self.has_audio:
            return torch.zeros(num_samples)
        if self._audio is None:
            self._rewind(self._source)
            self._audio = TorchcodecAudioTrack(self._source, self.name)
        return self._audio.window(self._begin + start, num_samples, sample_rate)


class PyAVVideoReader(AVCANetVideoReader):
    """PyAV: one open container for frames (and audio). Frames are found the way torchcodec's exact mode finds them:
    the packet timestamps are scanned once (no decoding), frame `i` is the `i`-th smallest, and each request seeks to
    the keyframe before it unless it can keep decoding forward. The audio of a path or bytes comes from torchcodec
    when it loads (`TorchcodecAudioTrack`, faster), else from the same container."""

    def __init__(self, source, name: str, decoder_threads: int = 0, container=None):
        self.name = name
        if container is None:
            _check_source_exists(source, name)
            if hasattr(source, "seek"):
                source.seek(0)
            try:
                container = av.open(io.BytesIO(source) if isinstance(source, bytes) else source)
            except Exception as error:
                raise VideoDecodingError(name, f"FFmpeg cannot open it ({error})") from error
        self._container = container
        if not self._container.streams.video:
            kinds = sorted({stream.type for stream in self._container.streams}) or ["none"]
            self._container.close()
            raise VideoDecodingError(name, f"contains no video stream (streams: {', '.join(kinds)})")
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._stream.codec_context.thread_count = decoder_threads
        self.has_audio = bool(self._container.streams.audio)
        self._source = source if isinstance(source, (str, os.PathLike, bytes)) and TORCHCODEC_AVAILABLE else None
        self._audio = None
        self.prepared = parse_prepared_tag(self._container.metadata)
        self._index_frames()
        self._frames = None  # the decode iterator after the last seek
        self._last_pts = None
        try:
            first = self._decode_at(self._pts[0])
        except FrameDecodingFailed as error:
            raise VideoDecodingError(name, f"its first frame cannot be decoded ({error})") from error
        self._rotation = round((first.rotation or 0) / 90) % 4
        # a 4:2:0 copy is coded at even sides; its tag gives the size before that
        self._stored_height = (self.prepared or {}).get("height", first.height)
        self._stored_width = (self.prepared or {}).get("width", first.width)
        stored = (self._stored_height, self._stored_width)
        self.height, self.width = stored[::-1] if self._rotation % 2 else stored
        self._planar = first.format.name == "yuv444p"  # see `_copy_rgb`
        self._reformatter = VideoReformatter()

    def _index_frames(self):
        """The frames' timestamps, durations and keyframes: announced by a prepared copy whose frames follow at a
        constant step (its keyframes exactly every `keyframe_interval` frames, `dataset_scripts.prepare`), else found by
        scanning the packets (5 ms for 900 frames, 80 ms for 18,000)."""
        announced = (self.prepared or {}).get("constant_frame_step")
        if announced:
            end, step = announced["frames"] * announced["step"], announced["step"]
            keyframe_step = self.prepared["keyframe_interval"] * step
            self._set_frames(list(range(0, end, step)), list(range(0, end, keyframe_step)), step)
        else:
            self._scan_packets()
        header = self._stream.frames
        if header and self.num_frames < header:
            self.listed_frames = header
            warnings.warn(
                f"Video {self.name} looks truncated: its header lists {header} frames but only {self.num_frames} are "
                "in the file; using the frames that decode.",
                stacklevel=5,
            )

    def _scan_packets(self):
        pts, keyframes, last_duration = [], [], 0
        try:
            for packet in self._container.demux(self._stream):
                if packet.pts is None or packet.size == 0:
                    continue
                pts.append(packet.pts)
                last_duration = packet.duration or last_duration
                if packet.is_keyframe:
                    keyframes.append(packet.pts)
        except av.error.FFmpegError:
            pass  # a cut-off file: keep the packets before the damage
        if not pts:
            raise VideoDecodingError(self.name, "the video stream has no frames")
        pts = sorted(pts)
        last_duration = last_duration or (int(np.median(np.diff(pts))) if len(pts) > 1 else 1)
        self._set_frames(pts, sorted(keyframes), last_duration)

    def _set_frames(self, pts: list[int], keyframes: list[int], last_duration: int):
        self._pts, self._keyframes = pts, keyframes
        self._time_base = float(self._stream.time_base)
        self._durations = np.append(np.diff(pts), last_duration) * self._time_base
        self.num_frames = len(pts)
        self.clip_duration = (pts[-1] + last_duration - pts[0]) * self._time_base

    def _needs_seek(self, target: int) -> bool:
        if self._frames is None or self._last_pts is None or target <= self._last_pts:
            return True
        following = self._pts[bisect.bisect_right(self._pts, self._last_pts)]  # the frame decoding forward gives next
        # a keyframe after that one and not after the target: seeking there skips decoding the frames before it (a
        # keyframe that is the next frame anyway gains nothing from a seek and a decoder flush)
        return bisect.bisect_right(self._keyframes, target) > bisect.bisect_right(self._keyframes, following)

    def _decode_at(self, target: int):
        try:
            if self._needs_seek(target):
                self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
                self._frames = self._container.decode(self._stream)
            for frame in self._frames:
                if frame.pts is None:
                    continue
                self._last_pts = frame.pts
                if frame.pts >= target:
                    if frame.pts == target:
                        return frame
                    break
        except av.error.FFmpegError as error:
            self._frames = None
            raise FrameDecodingFailed(str(error)) from error
        self._frames = None
        raise FrameDecodingFailed(f"frame at pts {target} not found")

    def get_frames(self, indices: list[int]) -> DecodedFrames:
        unique = sorted(set(indices))
        position = {index: row for row, index in enumerate(unique)}
        size = (self._stored_height, self._stored_width)
        stored = torch.empty((len(unique), *((3, *size) if self._planar else (*size, 3))), dtype=torch.uint8)
        out = stored.numpy()  # numpy's copies cost a tenth of torch's per call, and there are 3 per frame
        for row, index in enumerate(unique):
            self._copy_rgb(self._decode_at(self._pts[index]), out[row])
        frames = stored if self._planar else stored.permute(0, 3, 1, 2)  # (K, C, H, W), a view of packed RGB
        frames = frames if indices == unique else frames[[position[index] for index in indices]]
        if self._rotation:
            frames = torch.rot90(frames, k=self._rotation, dims=(2, 3)).contiguous()
        pts = torch.tensor([self._pts[index] for index in indices], dtype=torch.float64)
        timestamps = (pts - self._pts[0]) * self._time_base
        durations = torch.tensor(self._durations[indices], dtype=torch.float64)
        return DecodedFrames(frames, timestamps, durations)

    def _copy_rgb(self, frame, out: np.ndarray):
        """Convert `frame` to RGB into `out` with one reused converter, the same pixels as torchcodec's: 4:4:4 frames
        to planar RGB (`gbrp`, planes G, B, R) into `out` `(3, H, W)`, 2x faster than packed RGB and no
        packed-to-planar copy; other frames to packed RGB into `out` `(H, W, 3)` (FFmpeg 8.1's 4:2:0 -> planar RGB
        spoils the last columns of rows whose width is 2-8 past a multiple of 16; packed RGB costs the same). One
        thread: swscale's default, a slice thread per core, spends 1.5-7x the CPU time on frames this small and
        crowds the other DataLoader workers out (same pixels)."""
        rgb = self._reformatter.reformat(frame, format="gbrp" if self._planar else "rgb24", threads=1)
        height, width = self._stored_height, self._stored_width
        if not self._planar:
            packed = rgb.planes[0]
            rows = np.frombuffer(packed, dtype=np.uint8).reshape(rgb.height, packed.line_size)  # (H, padded 3 W)
            np.copyto(out, rows[:height, : 3 * width].reshape(height, width, 3))
            return
        for channel, plane in zip((1, 2, 0), rgb.planes):
            rows = np.frombuffer(plane, dtype=np.uint8).reshape(rgb.height, plane.line_size)  # (H, padded W)
            np.copyto(out[channel], rows[:height, :width])

    def get_audio(self, start: float, num_samples: int, sample_rate: int) -> torch.Tensor:
        if not self.has_audio:
            return torch.zeros(num_samples)
        begin = self._pts[0] * self._time_base + start
        if self._source is not None:
            self._audio = self._audio or TorchcodecAudioTrack(self._source, self.name)
            return self._audio.window(begin, num_samples, sample_rate)
        self._frames = None  # seeking the audio loses the video decode position
        return pyav_audio_window(self._container, begin, num_samples, sample_rate)

    def close(self):
        self._container.close()


class DecodedFramesReader(AVCANetVideoReader):
    """Frames already in memory, `(T, C, H, W)` uint8, taken to span `clip_duration` seconds evenly."""

    def __init__(self, frames: torch.Tensor, name: str, clip_duration: float):
        self.name = name
        self._frames = frames
        self.num_frames, _, self.height, self.width = frames.shape
        if self.num_frames == 0:
            raise VideoDecodingError(name, "no frames")
        self.clip_duration = clip_duration

    def get_frames(self, indices: list[int]) -> DecodedFrames:
        step = self.clip_duration / self.num_frames
        index = torch.tensor(indices)
        durations = torch.full((len(indices),), step, dtype=torch.float64)
        return DecodedFrames(self._frames[index], index.to(torch.float64) * step, durations)


def frames_to_tensor(video, name: str) -> torch.Tensor:
    """Already-decoded frames as `(T, C, H, W)` uint8 RGB: a `(T, H, W, C)` or `(T, C, H, W)` uint8 array or tensor,
    or a list of PIL images or `(H, W, C)` arrays."""
    if isinstance(video, (list, tuple)):
        video = np.stack([np.asarray(frame.convert("RGB") if hasattr(frame, "convert") else frame) for frame in video])
    frames = torch.as_tensor(np.asarray(video)) if not isinstance(video, torch.Tensor) else video
    if frames.dtype != torch.uint8:
        raise VideoDecodingError(name, f"decoded frames must be uint8 (0-255), got {frames.dtype}")
    if frames.ndim != 4:
        raise VideoDecodingError(name, f"decoded frames need 4 dimensions (T, H, W, C), not {tuple(frames.shape)}")
    if frames.shape[-1] in (1, 3, 4) and frames.shape[1] not in (1, 3, 4):
        frames = frames.permute(0, 3, 1, 2)  # (T, H, W, C) -> (T, C, H, W)
    if frames.shape[1] == 1:
        frames = frames.expand(-1, 3, -1, -1)
    return frames[:, :3].contiguous()


def is_decoded_frames(video) -> bool:
    """Whether `video` is already-decoded frames rather than something to decode."""
    if isinstance(video, (np.ndarray, torch.Tensor)):
        return True
    if isinstance(video, (list, tuple)) and len(video) > 0:
        first = video[0]
        return hasattr(first, "convert") or (isinstance(first, (np.ndarray, torch.Tensor)) and first.ndim == 3)
    return False


def is_single_video(video) -> bool:
    """Whether `video` is one video (not a batch of them)."""
    if isinstance(video, (np.ndarray, torch.Tensor)):
        return video.ndim == 4
    if isinstance(video, (list, tuple)):
        return is_decoded_frames(video)
    return True


def _open_if_prepared(source):
    """An open PyAV container of `source` when it is a prepared copy (one open serves the check and the reading),
    else `None`, also for what FFmpeg cannot open (its reader says why)."""
    try:
        container = av.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    except Exception:  # noqa: BLE001 - whatever FFmpeg cannot open is no prepared copy
        return None
    finally:
        if hasattr(source, "seek"):
            source.seek(0)
    if parse_prepared_tag(container.metadata) is None:
        container.close()
        return None
    return container


def open_video(video, decoder_threads: int = 0, clip_duration: float | None = None) -> AVCANetVideoReader:
    """A reader for one video input (see the module docstring for the accepted kinds).

    decoder_threads: FFmpeg threads per decoder; 0 lets FFmpeg choose (in a DataLoader worker: the worker's share of
        the cores, see `decoder_threads_for_this_process`).
    clip_duration: for already-decoded frames, the seconds they span (their audio's length); frames are assumed to be
        at 30 fps when not given.
    """
    decoder_threads = decoder_threads_for_this_process(decoder_threads)
    name = describe_source(video)
    if is_decoded_frames(video):
        name = "<decoded frames>"
        return DecodedFramesReader(frames_to_tensor(video, name), name, clip_duration or len(video) / 30.0)
    if VideoDecoder is not None and isinstance(video, VideoDecoder):
        encoded = getattr(video, "_hf_encoded", None) or {}
        source = encoded.get("bytes") or encoded.get("path")
        container = _open_if_prepared(source) if source is not None else None
        if container is not None:
            return PyAVVideoReader(source, name, decoder_threads, container)
        return TorchcodecVideoReader(None, name, decoder_threads, decoder=video)
    if isinstance(video, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(video, "read"):
        if isinstance(video, (bytearray, memoryview)):
            video = bytes(video)
        container = _open_if_prepared(video)  # prepared copies decode faster with PyAV (module docstring)
        if container is not None and hasattr(video, "read"):  # read as bytes, which torchcodec's audio decoder takes
            container.close()
            return PyAVVideoReader(video.read(), name, decoder_threads)
        if container is not None:
            return PyAVVideoReader(video, name, decoder_threads, container)
        if TORCHCODEC_AVAILABLE:
            return TorchcodecVideoReader(video, name, decoder_threads)
        if av is not None:
            return PyAVVideoReader(video, name, decoder_threads)
        raise ImportError("Decoding video files needs torchcodec (with FFmpeg) or PyAV: `pip install av`.")
    raise TypeError(
        f"Unsupported video input of type {type(video).__name__}: expected a path, bytes, a binary file object, a "
        "torchcodec VideoDecoder, or decoded frames (a (T, H, W, C) uint8 array or tensor, or a list of PIL images)."
    )
