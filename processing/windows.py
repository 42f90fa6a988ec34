"""Sliding windows and multi-view sampling: what `AVCANetProcessor` does with `window_seconds` or `num_clips` /
`num_crops`.

Windows: a video of `D` seconds is cut into windows of `W` seconds starting every `stride` seconds, the last one
aligned to the end of the file (a video no longer than `W` is one window). A window holds the frames that start inside
it, and is sampled exactly as a clip of those frames would be (`frame_sampling`: `S` segments of `T` frames, audio
windows centred on the frames' moments and looped the same way when the window has fewer than `S * T` frames).

Views: `num_clips` temporal views move each segment's window of `T` frames to `num_clips` evenly spread places inside
its segment (one view: the centre, the processor's usual choice); `num_crops` spatial views crop 1 (the centre) or 3
(both ends and the centre of the long side) squares out of the resized frames. Views share their decoded frames:
the frames all views of a window need are decoded once, resized once and cropped per view.

One decoding pass: `AVCANetWindowStream` decodes the frames every window needs in file order, each once, through the
reader's forward decoding (which never seeks back, and seeks forward only over frames nothing needs), and hands out
each window as soon as its last frame is decoded. It keeps only the resized frames of the windows still open, so
memory does not grow with the length of the file.
"""

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as tvF
from transformers.feature_extraction_utils import BatchFeature

from .errors import VideoDecodingError
from .frame_sampling import audio_window_starts, looped_windows, sample_segment_positions, segment_time_spans
from .frame_sampling import segment_window_centers, windows_within_clip
from .video_decoding import (
    AVCANetVideoReader,
    DecodedFramesReader,
    FrameDecodingFailed,
    PyAVVideoReader,
    VideoDecoder,
    describe_source,
    is_decoded_frames,
    open_video,
)
from .decoding_threads import decoder_threads_for_this_process, single_torch_thread


CROP_CHOICES = (1, 3)
DECODE_CHUNK = 8  # full-size frames decoded per call: one segment's worth, as the processor decodes


def window_plan(
    duration: float, window_seconds: float, window_stride: float | None = None
) -> list[tuple[float, float]]:
    """`(start, end)` seconds of each window: every `window_stride` (default `window_seconds`) seconds from 0, the
    last one ending with the video. A video no longer than a window is one window; a stride above the window leaves
    gaps."""
    if not window_seconds or window_seconds <= 0:
        raise ValueError(f"window_seconds must be positive, got {window_seconds}.")
    stride = window_seconds if window_stride is None else window_stride
    if stride <= 0:
        raise ValueError(f"window_stride must be positive, got {window_stride}.")
    if duration <= window_seconds + 1e-6:
        return [(0.0, float(duration))]
    last_start = duration - window_seconds
    count = math.ceil(last_start / stride - 1e-9)  # windows that start before the end-aligned one
    starts = [index * stride for index in range(count)] + [last_start]
    return [(float(start), float(start + window_seconds)) for start in starts]


def view_segment_positions(num_frames: int, num_segments: int, frames_per_segment: int, num_clips: int = 1):
    """`(num_clips, S, T)` positions in the loop-padded frame list (as `sample_segment_positions`): view `k` starts
    each segment's window at `floor(last_start * (2k + 1) / (2 * num_clips))`, evenly spread over the valid starts; one
    view is the evaluation centre (`last_start // 2`). A segment of exactly `T` positions gives every view the same
    frames."""
    if num_clips < 1:
        raise ValueError(f"num_clips must be at least 1, got {num_clips}.")
    centre = sample_segment_positions(num_frames, num_segments, frames_per_segment)  # (S, T)
    padded_length = max(num_frames, num_segments * frames_per_segment)
    last_start = padded_length // num_segments - frames_per_segment
    shifts = [(last_start * (2 * view + 1)) // (2 * num_clips) - last_start // 2 for view in range(num_clips)]
    return torch.stack([centre + shift for shift in shifts])


def crop_corners(height: int, width: int, crop_height: int, crop_width: int, num_crops: int) -> list[tuple[int, int]]:
    """`(top, left)` of each spatial view: the centre (as `center_crop` places it), or the start, the centre and the
    end of the long side. Frames smaller than the crop give the centre only (`center_crop` pads them)."""
    if num_crops not in CROP_CHOICES:
        raise ValueError(f"num_crops must be one of {CROP_CHOICES}, got {num_crops}.")
    centre = (int((height - crop_height) / 2.0), int((width - crop_width) / 2.0))
    if num_crops == 1 or crop_height > height or crop_width > width:
        return [centre] * num_crops
    if width >= height:
        return [(centre[0], 0), centre, (centre[0], width - crop_width)]
    return [(0, centre[1]), centre, (height - crop_height, centre[1])]


@dataclass
class AVCANetWindowClip:
    """Where a window's frames are: `num_frames` consecutive frames from `first_frame`, which starts `offset` seconds
    after the video's first frame; the window lasts `clip_duration` seconds (its loop period)."""

    first_frame: int
    num_frames: int
    offset: float
    clip_duration: float


@dataclass
class AVCANetWindowViews:
    """One window, sampled in every view.

    frames: `(num_clips * num_crops, S * T, C, H, W)` uint8, view `k * num_crops + c` is temporal view `k`, crop `c`.
    audio: per temporal view, `(num_clips, S, window_samples)` float32 audio windows (log-mel) or
        `(num_clips, n_mfcc, S * F)` release MFCC features; silence when `has_audio` is 0.
    segment_spans: `(num_clips, S, 2)` float64 start and end of each segment's frames, seconds in the video.
    """

    index: int
    start: float
    end: float
    frames: torch.Tensor
    audio: torch.Tensor
    has_audio: int
    segment_spans: torch.Tensor


def frame_times(reader: AVCANetVideoReader) -> tuple[torch.Tensor, torch.Tensor]:
    """Start (from the first frame) and display duration of every frame, `(N,)` float64 each, without decoding."""
    if isinstance(reader, PyAVVideoReader):  # the packet timestamps it scanned when it opened
        pts = torch.tensor(reader._pts, dtype=torch.float64)
        return (pts - pts[0]) * reader._time_base, torch.as_tensor(reader._durations, dtype=torch.float64)
    if isinstance(reader, DecodedFramesReader):
        step = reader.clip_duration / reader.num_frames
        return torch.arange(reader.num_frames, dtype=torch.float64) * step, torch.full((reader.num_frames,), step)
    raise TypeError(f"Frame times of a {type(reader).__name__} are not known without decoding.")


def open_for_windows(video, decoder_threads: int = 0, clip_duration: float | None = None) -> AVCANetVideoReader:
    """A reader whose frame times are known before decoding (`frame_times`): PyAV for encoded videos (its packet scan
    costs 80 ms for 18,000 frames), in memory for decoded frames."""
    if is_decoded_frames(video):
        return open_video(video, decoder_threads, clip_duration=clip_duration)
    name = describe_source(video)
    if VideoDecoder is not None and isinstance(video, VideoDecoder):
        encoded = getattr(video, "_hf_encoded", None) or {}
        video = encoded.get("bytes") or encoded.get("path")
        if video is None:
            raise VideoDecodingError(name, "sliding windows need the file behind the VideoDecoder, which is unknown")
    if hasattr(video, "read"):
        video = video.read()
    if isinstance(video, (bytearray, memoryview)):
        video = bytes(video)
    return PyAVVideoReader(video, name, decoder_threads_for_this_process(decoder_threads))


def plan_window_clips(reader: AVCANetVideoReader, plan: list[tuple[float, float]]) -> list[AVCANetWindowClip]:
    """The frames of each planned window: those that start inside it (the last window: up to the end); a window
    between two frames of a variable-rate video gets the frame shown at its start."""
    starts, durations = frame_times(reader)
    ends = starts + durations
    clips = []
    for index, (begin, end) in enumerate(plan):
        first = int(torch.searchsorted(starts, torch.tensor(begin - 1e-9, dtype=torch.float64)))
        last = len(starts) if index == len(plan) - 1 else int(torch.searchsorted(starts, torch.tensor(end - 1e-9)))
        if last <= first:  # no frame starts inside: the one on screen at `begin`
            first = max(min(first, len(starts)) - 1, 0)
            last = first + 1
        duration = float(ends[last - 1] - starts[first])
        clips.append(AVCANetWindowClip(first, last - first, float(starts[first]), duration))
    return clips


class AVCANetWindowStream:
    """Samples windows of one opened video in every view, decoding each frame they need once and in file order.

    Args:
        processor: an `AVCANetProcessor` (its video processor's sizes and its feature extractor's audio windows).
        reader: the opened video.
        clips: the windows (`plan_window_clips`), in time order; one clip of the whole video for plain multi-view.
        num_clips, num_crops: the views (see the module docstring).
    """

    def __init__(self, processor, reader, clips: list[AVCANetWindowClip], num_clips: int = 1, num_crops: int = 1):
        self.processor, self.reader, self.clips = processor, reader, clips
        self.num_clips, self.num_crops = num_clips, num_crops
        video_processor = processor.video_processor
        segments, frames = video_processor.num_segments, video_processor.frames_per_segment
        self.positions = [view_segment_positions(clip.num_frames, segments, frames, num_clips) for clip in clips]
        # the video's frame index of every position, and the last window needing each frame (to free it after)
        self.needed = [
            sorted(set((positions % clip.num_frames + clip.first_frame).flatten().tolist()))
            for positions, clip in zip(self.positions, clips)
        ]
        self.last_use = {}
        for index, frames_needed in enumerate(self.needed):
            self.last_use.update(dict.fromkeys(frames_needed, index))
        self.order = sorted(self.last_use)  # every needed frame, in file order

    def __iter__(self) -> Iterator[AVCANetWindowViews]:
        cache, cursor = {}, 0
        for index, clip in enumerate(self.clips):
            target = self.needed[index][-1]
            while cursor < len(self.order) and self.order[cursor] <= target:
                chunk = [frame for frame in self.order[cursor : cursor + DECODE_CHUNK] if frame <= target]
                cursor += len(chunk)
                self._decode_into(cache, chunk)
            yield self._window(index, clip, cache)
            for frame in self.needed[index]:
                if self.last_use[frame] == index:
                    del cache[frame]

    def _decode_into(self, cache: dict, indices: list[int]):
        try:
            decoded = self.reader.get_frames(indices)
        except FrameDecodingFailed as error:
            raise VideoDecodingError(self.reader.name, f"frames {indices[0]}-{indices[-1]} fail to decode ({error})")
        video_processor = self.processor.video_processor
        frames = decoded.frames
        if video_processor.do_resize:  # per frame, so the same pixels as the processor's per-segment resize
            frames = video_processor.resize(frames, size=video_processor.size, resample=video_processor.resample)
        for row, frame in enumerate(indices):
            cache[frame] = (frames[row].clone(), float(decoded.timestamps[row]), float(decoded.durations[row]))

    def _window(self, index: int, clip: AVCANetWindowClip, cache: dict) -> AVCANetWindowViews:
        views, centres, spans = [], [], []
        for positions in self.positions[index]:  # (S, T) per temporal view
            frames = (positions % clip.num_frames + clip.first_frame).flatten().tolist()
            stacked = torch.stack([cache[frame][0] for frame in frames])  # (S * T, C, h, w)
            times = torch.tensor([[cache[frame][1], cache[frame][2]] for frame in frames], dtype=torch.float64)
            timestamps = (times[:, 0] - clip.offset).reshape(positions.shape)  # seconds in the window's clip
            durations = times[:, 1].reshape(positions.shape)
            timing = (positions, timestamps, durations, clip.num_frames, clip.clip_duration)
            centres.append(segment_window_centers(*timing))
            spans.append(segment_time_spans(*timing) + clip.offset)
            views.extend(self._crops(stacked))
        audio, has_audio = self._audio(clip, centres)
        end = clip.offset + clip.clip_duration
        return AVCANetWindowViews(index, clip.offset, end, torch.stack(views), audio, has_audio, torch.stack(spans))

    def _crops(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """The spatial views of resized frames `(..., C, h, w)`; the centre view is exactly `center_crop`'s."""
        video_processor = self.processor.video_processor
        if not video_processor.do_center_crop:
            return [frames] * self.num_crops
        crop = video_processor.crop_size
        centre = video_processor.center_crop(frames, crop)
        corners = crop_corners(*frames.shape[-2:], crop.height, crop.width, self.num_crops)
        if len(set(corners)) == 1:
            return [centre] * self.num_crops
        first, _, last = (tvF.crop(frames, top, left, crop.height, crop.width) for top, left in corners)
        return [first, centre, last]

    def _audio(self, clip: AVCANetWindowClip, centres: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
        """Each temporal view's audio windows, read as the processor reads a clip's (`read_audio_windows`), moved to
        where the window starts."""
        extractor, reader = self.processor.feature_extractor, self.reader
        if not reader.has_audio:
            return torch.stack([self.processor._silence()] * len(centres)), 0
        rate = extractor.sampling_rate
        reader.require(sampling_rate=rate)
        if extractor.audio_features == "mfcc":  # the release's layout: the window's whole track
            samples = max(round(clip.clip_duration * rate), extractor.n_fft)
            return torch.stack([extractor.release_mfcc(reader.get_audio(clip.offset, samples, rate))] * len(centres)), 1
        parts = []
        for view_centres in centres:
            starts = audio_window_starts(view_centres, extractor.window_duration, clip.clip_duration)
            if windows_within_clip(starts, extractor.window_duration, clip.clip_duration):
                parts.append(torch.stack([reader.get_audio(clip.offset + float(s), extractor.window_samples, rate)
                                          for s in starts]))  # fmt: skip
            else:  # a window shorter than S * T frames loops like its frames
                period = reader.get_audio(clip.offset, max(round(clip.clip_duration * rate), 1), rate)
                parts.append(looped_windows(period, torch.round(starts * rate), extractor.window_samples))
        return torch.stack(parts), 1


def iter_window_batches(
    processor,
    video,
    window_seconds: float | None = None,
    window_stride: float | None = None,
    num_clips: int = 1,
    num_crops: int = 1,
    batch_size: int = 4,
    decoder_threads: int = 0,
) -> Iterator[BatchFeature]:
    """Model inputs of one video's windows (the whole video as one window without `window_seconds`), `batch_size`
    windows at a time, each in `num_clips * num_crops` views; decoded in one pass (`AVCANetWindowStream`).

    Each batch holds `pixel_values_videos`, `input_features` and `audio_mask` with one row per view (a window's views
    consecutive), `segment_time_spans` `(rows, S, 2)` in seconds of the video, and per window `window_spans`
    `(windows, 2)` float64 (start and end of its frames) and `window_index` `(windows,)`. Pop the last three before
    `model(**batch)`; `average_views` turns the model's rows into windows.
    """
    if window_seconds is None and window_stride is not None:
        raise ValueError("window_stride needs window_seconds.")
    if window_seconds is None:  # the processor's own reader: plain multi-view needs no frame times
        reader = open_video(video, decoder_threads)
    else:
        reader = open_for_windows(video, decoder_threads)
    with reader:
        reader.require(short_side=processor.video_processor.required_short_side)
        if window_seconds is None:
            clips = [whole_video_clip(reader)]
        else:
            clips = plan_window_clips(reader, window_plan(reader.clip_duration, window_seconds, window_stride))
        windows = iter(AVCANetWindowStream(processor, reader, clips, num_clips, num_crops))
        while True:
            with single_torch_thread():  # decoding only: the model runs between batches with all its threads
                chunk = list(itertools.islice(windows, batch_size))
                if not chunk:
                    return
                batch = _window_batch(processor, chunk, num_crops)
            yield batch


def _window_batch(processor, windows: list[AVCANetWindowViews], num_crops: int) -> BatchFeature:
    extractor = processor.feature_extractor
    clips = [view for window in windows for view in window.frames]  # (S * T, C, H, W) per row
    audio = torch.cat([window.audio for window in windows])  # (windows * K, ...)
    if extractor.audio_features != "mfcc":
        audio = extractor.features_from_windows(audio)  # (windows * K, n_mels, S * F)
    views = windows[0].frames.shape[0]
    data = {
        "pixel_values_videos": processor.video_processor.to_pixel_values(clips),
        "input_features": audio.repeat_interleave(num_crops, dim=0),  # crops share their clip's audio
        "audio_mask": torch.tensor([window.has_audio for window in windows]).repeat_interleave(views),
        "segment_time_spans": torch.cat([window.segment_spans for window in windows]).repeat_interleave(num_crops, 0),
        "window_spans": torch.tensor([[window.start, window.end] for window in windows], dtype=torch.float64),
        "window_index": torch.tensor([window.index for window in windows]),
    }
    return BatchFeature(data=data)


def whole_video_clip(reader: AVCANetVideoReader) -> AVCANetWindowClip:
    """The whole video as one window: what the processor samples without `window_seconds`."""
    return AVCANetWindowClip(0, reader.num_frames, 0.0, reader.clip_duration)


def average_views(values: torch.Tensor, num_views: int) -> torch.Tensor:
    """`(batch * num_views, ...)` rows, each video's views consecutive -> `(batch, ...)` means over the views."""
    return values.reshape(-1, num_views, *values.shape[1:]).mean(dim=1)


__all__ = [
    "AVCANetWindowClip",
    "AVCANetWindowStream",
    "AVCANetWindowViews",
    "average_views",
    "crop_corners",
    "frame_times",
    "iter_window_batches",
    "open_for_windows",
    "plan_window_clips",
    "view_segment_positions",
    "whole_video_clip",
    "window_plan",
]
