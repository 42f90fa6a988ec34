"""Temporal sampling of AV-CANet: which frames each segment takes, and which stretch of audio goes with them.

Frames (the release's TSN scheme, `transforms/temporal.py`): the frame indices `0..N-1` are loop-padded to at least
`S * T` entries (`S` segments of `T` frames), so position `p` of the padded list shows frame `p % N`. The padded list
is cut into `S` equal segments of `len // S` positions (the remainder is dropped) and each segment contributes a
contiguous window of `T` positions: in training a window starting anywhere in the segment, uniformly over all
`len // S - T + 1` starts (the release draws from `[0, len - T - 1]` and so never picks the last start; fixed here),
in evaluation the centre window.

Audio (ours; the release tiles a 47.6 s MFCC and cuts it into 16 equal chunks whatever the video's length, so audio
chunk i and visual segment i cover different moments): the audio of a clip is looped exactly like its frames, with
the clip's duration as period, and audio segment i is the window of fixed length centred on the centre time of the
frames visual segment i sampled, shifted just enough to stay inside the looped audio (a clip with at least `S * T`
frames is not looped, so its windows stay inside the clip). Both modalities of segment i therefore show the same
moment, in training (random windows) as in evaluation.

Everything here is pure index and time arithmetic on tensors, so it can be tested without any media.
"""

import math

import torch


def sample_segment_positions(
    num_frames: int,
    num_segments: int,
    frames_per_segment: int,
    training: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Positions in the loop-padded frame list, `(num_segments, frames_per_segment)` int64.

    Position `p` shows frame `p % num_frames`; `p // num_frames` counts how often the clip has looped by then.
    Training draws one start per segment from `generator` (the global torch RNG when `None`).
    """
    if num_frames < 1:
        raise ValueError(f"A video needs at least one frame, got num_frames={num_frames}.")
    padded_length = max(num_frames, num_segments * frames_per_segment)
    segment_length = padded_length // num_segments  # >= frames_per_segment
    last_start = segment_length - frames_per_segment
    if training:
        starts = torch.randint(0, last_start + 1, (num_segments,), generator=generator)  # every valid start
    else:
        starts = torch.full((num_segments,), last_start // 2)
    segment_begins = torch.arange(num_segments) * segment_length
    return (segment_begins + starts)[:, None] + torch.arange(frames_per_segment)[None, :]


def sample_segment_frame_indices(
    num_frames: int,
    num_segments: int,
    frames_per_segment: int,
    training: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Frame indices `(num_segments, frames_per_segment)` of the segment windows (see the module docstring)."""
    positions = sample_segment_positions(num_frames, num_segments, frames_per_segment, training, generator)
    return positions % num_frames


def segment_window_centers(
    positions: torch.Tensor,
    timestamps: torch.Tensor,
    durations: torch.Tensor,
    num_frames: int,
    clip_duration: float,
) -> torch.Tensor:
    """Centre time, in seconds on the looped clip's timeline, of each segment's frame window, `(S,)` float64.

    Args:
        positions: `(S, T)` positions from `sample_segment_positions`.
        timestamps: `(S, T)` presentation time of each sampled frame, seconds from the clip's first frame.
        durations: `(S, T)` display duration of each sampled frame, seconds.
        num_frames: frames in the clip.
        clip_duration: seconds from the clip's first frame to the end of its last one (the loop period).

    A window spans from the start of its first frame to the end of its last frame; a window that wraps around the
    end of the clip continues on the next loop, `clip_duration` later.
    """
    loops = (positions // num_frames).to(torch.float64)
    timestamps = timestamps.to(torch.float64)
    begin = loops[:, 0] * clip_duration + timestamps[:, 0]
    end = loops[:, -1] * clip_duration + timestamps[:, -1] + durations[:, -1].to(torch.float64)
    return (begin + end) / 2


def segment_time_spans(
    positions: torch.Tensor,
    timestamps: torch.Tensor,
    durations: torch.Tensor,
    num_frames: int,
    clip_duration: float,
) -> torch.Tensor:
    """Start and end, in seconds on the clip's own timeline, of the frames each segment sampled, `(S, 2)` float64.

    A window starts with its first frame and ends when its last frame ends (arguments as for
    `segment_window_centers`, so variable frame rates are exact). In a loop-padded clip a window that wraps past the
    clip's end is cut there, so every span lies within `[0, clip_duration]`.
    """
    loops = (positions // num_frames).to(torch.float64)
    timestamps = timestamps.to(torch.float64)
    start = timestamps[:, 0]
    end = (loops[:, -1] - loops[:, 0]) * clip_duration + timestamps[:, -1] + durations[:, -1].to(torch.float64)
    return torch.stack([start, end.clamp(max=clip_duration)], dim=-1)


def audio_window_starts(centers: torch.Tensor, window_duration: float, clip_duration: float) -> torch.Tensor:
    """Start time, in seconds on the looped clip's timeline, of each segment's audio window, `(S,)` float64.

    The window of length `window_duration` is centred on `centers` and shifted to lie inside the looped audio: as
    many copies of the clip as the centres reach into (one for a clip that was not loop-padded).
    """
    clip_duration = max(float(clip_duration), 1e-6)
    copies = max(1, math.ceil(float(centers.max()) / clip_duration - 1e-9))
    latest_start = max(copies * clip_duration - window_duration, 0.0)
    return (centers.to(torch.float64) - window_duration / 2).clamp(0.0, latest_start)


def looped_windows(signal: torch.Tensor, starts: torch.Tensor, length: int) -> torch.Tensor:
    """Cut `(len(starts), length)` windows out of `signal` `(n,)` repeated forever, starting at sample `starts`.

    A silent (empty) signal gives zeros.
    """
    if signal.numel() == 0:
        return signal.new_zeros(len(starts), length)
    offsets = starts.to(torch.int64)[:, None] + torch.arange(length)[None, :]  # (S, length)
    return signal[offsets % signal.numel()]


def windows_within_clip(starts: torch.Tensor, window_duration: float, clip_duration: float) -> bool:
    """Whether every audio window lies inside one copy of the clip (the clip was not loop-padded)."""
    return bool((starts + window_duration <= clip_duration + 1e-6).all())


__all__ = [
    "audio_window_starts",
    "looped_windows",
    "sample_segment_frame_indices",
    "sample_segment_positions",
    "segment_time_spans",
    "segment_window_centers",
    "windows_within_clip",
]
