"""Audio windows of a video file, mixed to mono and brought to the requested rate exactly as waveforms given to the
feature extractor are (torchaudio), so every kind of input gives the same features.

- `TorchcodecAudioTrack`: torchcodec's `AudioDecoder` on a path or bytes (the readers' choice when it loads);
- `pyav_audio_window`: a PyAV loop over an open container's first audio track (when torchcodec does not load).

Only the samples around a window are decoded, so a long track is never decoded whole.
"""

import numpy as np
import torch
import torchaudio

from .errors import VideoDecodingError, ffmpeg_reason


try:  # torchcodec needs the system FFmpeg libraries and fails to import (not only ImportError) without them
    from torchcodec.decoders import AudioDecoder
except Exception:
    AudioDecoder = None

try:
    import av
except ImportError:
    av = None


RESAMPLING_MARGIN_SECONDS = 0.05  # decoded around a window that is resampled, so the filter has no edges inside it


def decoding_margin(native_rate: int, sample_rate: int) -> float:
    """Seconds decoded on each side of a window: room for the resampling filter, or one sample when the track is
    already at `sample_rate` (the sample nearest the window's start is then always among those decoded; a prepared
    copy's FLAC blocks decode 10 % fewer samples)."""
    return RESAMPLING_MARGIN_SECONDS if native_rate != sample_rate else 1 / sample_rate


def place_samples(samples: torch.Tensor, offset: int, num_samples: int) -> torch.Tensor:
    """Put `samples` at `offset` into `num_samples` zeros (either may hang over the edges)."""
    out = torch.zeros(num_samples, dtype=torch.float32)
    begin, end = max(offset, 0), min(offset + len(samples), num_samples)
    if end > begin:
        out[begin:end] = samples[begin - offset : end - offset]
    return out


def window_from_native(
    samples: torch.Tensor, native_rate: int, first_time: float, begin: float, num_samples: int, sample_rate: int
) -> torch.Tensor:
    """Mono `(num_samples,)` audio at `sample_rate` starting at time `begin`, from native-rate `samples` `(C, n)`
    whose first sample plays at `first_time`."""
    mono = samples.to(torch.float32).mean(dim=0)
    if native_rate != sample_rate:
        mono = torchaudio.functional.resample(mono, native_rate, sample_rate)
    return place_samples(mono, round((first_time - begin) * sample_rate), num_samples)


class TorchcodecAudioTrack:
    """Audio windows of a file from torchcodec's `AudioDecoder` (its C++ loop reads a prepared copy's FLAC windows
    1.6x faster than a PyAV loop)."""

    def __init__(self, source, name: str):
        try:
            self._decoder = AudioDecoder(source)
        except Exception as error:
            raise VideoDecodingError(name, f"its audio track cannot be read ({ffmpeg_reason(error)})") from error
        self._native_rate = self._decoder.metadata.sample_rate

    def window(self, begin: float, num_samples: int, sample_rate: int) -> torch.Tensor:
        """`(num_samples,)` mono audio at `sample_rate` from `begin` seconds on the container's timeline."""
        margin = decoding_margin(self._native_rate, sample_rate)
        try:
            samples = self._decoder.get_samples_played_in_range(
                max(begin - margin, 0.0), begin + num_samples / sample_rate + margin
            )
        except RuntimeError:  # no audio there: the track is shorter than the video
            return torch.zeros(num_samples)
        return window_from_native(samples.data, samples.sample_rate, samples.pts_seconds, begin, num_samples, sample_rate)


def pyav_audio_window(container, begin: float, num_samples: int, sample_rate: int) -> torch.Tensor:
    """`(num_samples,)` mono audio at `sample_rate` from `begin` seconds on the timeline of the open PyAV `container`
    (its first audio track); zeros where the track has no samples. Seeking moves the container's read position."""
    stream = container.streams.audio[0]
    margin = decoding_margin(stream.rate, sample_rate)
    end = begin + num_samples / sample_rate + margin
    # AAC frames right after a seek decode without their overlap: start a little earlier and let them fall away
    seek_to = max(begin - margin - 0.1, 0.0)
    chunks, first_time, native_rate = [], None, stream.rate
    try:
        container.seek(int(seek_to / float(stream.time_base)), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            if first_time is None:
                first_time = frame.time
            if frame.time >= end:
                break
            chunks.append(_audio_to_float(frame))
            native_rate = frame.sample_rate
    except av.error.FFmpegError:
        pass  # a cut-off track: keep what decoded
    if first_time is None or not chunks:
        return torch.zeros(num_samples)
    samples = torch.from_numpy(np.concatenate(chunks, axis=1))  # (C, n)
    return window_from_native(samples, native_rate, first_time, begin, num_samples, sample_rate)


_SAMPLE_SCALE = {"u8": 1 / 128, "s16": 1 / 2**15, "s32": 1 / 2**31, "s64": 1 / 2**63, "flt": 1.0, "dbl": 1.0}


def _audio_to_float(frame) -> np.ndarray:
    """`(C, n)` float32 samples of a decoded audio frame, scaled as FFmpeg's resampler converts to float (a
    resampler call per frame cost more than decoding the FLAC of a prepared copy)."""
    samples = frame.to_ndarray()  # planar (C, n); packed (1, n * C), interleaved
    if not frame.format.is_planar:
        samples = samples.reshape(-1, len(frame.layout.channels)).T
    kind = frame.format.name.rstrip("p")
    floats = samples.astype(np.float32)
    if kind == "u8":
        floats -= 128
    return floats * np.float32(_SAMPLE_SCALE[kind]) if _SAMPLE_SCALE[kind] != 1.0 else floats
