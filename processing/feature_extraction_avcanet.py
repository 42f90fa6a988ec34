"""Audio features of AV-CANet: a log-mel spectrogram cut into segments aligned with the visual segments, or the
authors' release layout (MFCC-32 of the whole track, tiled) for checkpoints converted from it."""

from functools import lru_cache

import numpy as np
import torch
import torchaudio

from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import logging

from .frame_sampling import audio_window_starts, looped_windows


logger = logging.get_logger(__name__)

LOG_OFFSET = 1e-6  # log(mel + 1e-6): digital silence maps to log(1e-6) ~ -13.8 instead of -inf
AUDIO_FEATURES = ("log_mel", "mfcc")
RELEASE_MFCC_MEL_BINS = 128  # librosa's default under the release's `librosa.feature.mfcc(n_mfcc=32)`


@lru_cache(maxsize=8)
def _mel_spectrogram(sampling_rate: int, n_fft: int, hop_length: int, num_mel_bins: int, device: torch.device):
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sampling_rate,
        n_fft=n_fft,
        win_length=n_fft,
        hop_length=hop_length,
        n_mels=num_mel_bins,
        center=False,  # a window of (F - 1) * hop + n_fft samples gives exactly F frames
        power=2.0,
        mel_scale="slaney",  # librosa's default, as in the release; HTK spacing leaves low mel bins empty at n_fft 400
        norm="slaney",
    ).to(device)


@lru_cache(maxsize=8)
def _mfcc(sampling_rate: int, n_fft: int, hop_length: int, num_coefficients: int):
    """torchaudio's MFCC with the defaults of `librosa.feature.mfcc`: centred Hann frames with zero padding, power 2,
    128 Slaney mels with Slaney norm, `power_to_db` (ref 1, amin 1e-10, top_db 80), DCT-II with orthonormal scaling."""
    return torchaudio.transforms.MFCC(
        sample_rate=sampling_rate,
        n_mfcc=num_coefficients,
        dct_type=2,
        norm="ortho",
        log_mels=False,
        melkwargs=dict(
            n_fft=n_fft,
            win_length=n_fft,
            hop_length=hop_length,
            n_mels=RELEASE_MFCC_MEL_BINS,
            center=True,
            pad_mode="constant",
            power=2.0,
            mel_scale="slaney",
            norm="slaney",
        ),
    )


def to_mono_waveform(audio, sampling_rate: int | None) -> tuple[torch.Tensor, int | None]:
    """A `(n,)` float32 mono waveform and its rate from a 1-D or `(channels, n)` array or tensor, a list of floats,
    a `{"array", "sampling_rate"}` dict, or a torchcodec `AudioDecoder` (what a `datasets` `Audio` column yields).
    Channels are averaged."""
    if hasattr(audio, "get_all_samples"):
        samples = audio.get_all_samples()
        audio, sampling_rate = samples.data, samples.sample_rate
    elif isinstance(audio, dict):
        audio, sampling_rate = audio["array"], audio.get("sampling_rate", sampling_rate)
    waveform = torch.as_tensor(np.asarray(audio) if not isinstance(audio, torch.Tensor) else audio, dtype=torch.float32)
    if waveform.ndim == 2:
        waveform = waveform.mean(dim=0)
    if waveform.ndim != 1:
        raise ValueError(f"A waveform must be 1-D or 2-D (channels, samples), got shape {tuple(waveform.shape)}.")
    return waveform, sampling_rate


class AVCANetFeatureExtractor(SequenceFeatureExtractor):
    r"""
    Log-mel audio features for AV-CANet, cut into `num_segments` segments of `audio_frames_per_segment` frames that
    cover the same moments as the visual segments.

    Each segment is the log-mel spectrogram (`torchaudio`, power 2, Slaney mel scale and filter norm as librosa,
    `log(mel + 1e-6)`, no normalisation) of one window of `(audio_frames_per_segment - 1) * hop_length + n_fft`
    samples (0.655 s by default) of mono audio (channels averaged) at `sampling_rate`, centred on a given time.
    `AVCANetProcessor` centres window `i` on the centre of the frames visual segment `i` sampled and loops short
    audio like the frames (see `frame_sampling`); used on its own, the extractor centres the windows on
    `num_segments` equal parts of the clip. The authors' release instead tiled a 47.6 s MFCC into 16 equal chunks
    whatever the clip's length, so its audio and visual segments showed different moments.

    With `audio_features="mfcc"` (`AVCANetFeatureExtractor.release_compatible()`) the extractor gives that layout
    instead, for checkpoints converted from the release: release-compatible, not time-aligned. The MFCC
    (`feature_size` coefficients of 128 mels, torchaudio matched to librosa's defaults) of the whole track at
    `sampling_rate` is tiled along time until it has `num_segments * audio_frames_per_segment` frames and cut there;
    segment `i` is frames `[i * F, (i + 1) * F)`, whatever the visual segments show.

    Args:
        feature_size (`int`, *optional*, defaults to 128):
            Mel bins (the model's `num_mel_bins`).
        sampling_rate (`int`, *optional*, defaults to 16000):
            Rate the audio is resampled to (with `torchaudio.functional.resample`) before the spectrogram.
        num_segments (`int`, *optional*, defaults to 16):
            Segments per clip (the model's `num_segments`).
        audio_frames_per_segment (`int`, *optional*, defaults to 64):
            Spectrogram frames per segment (the model's `audio_frames_per_segment`).
        n_fft (`int`, *optional*, defaults to 400):
            FFT and window length in samples (25 ms at 16 kHz).
        hop_length (`int`, *optional*, defaults to 160):
            Hop between spectrogram frames in samples (10 ms at 16 kHz).
        padding_value (`float`, *optional*, defaults to 0.0):
            Kept for `SequenceFeatureExtractor`; outputs have a fixed shape and are never padded.
        audio_features (`str`, *optional*, defaults to `"log_mel"`):
            `"log_mel"`: the time-aligned log-mel segments above. `"mfcc"`: the release's tiled MFCC layout.
    """

    model_input_names = ["input_features", "audio_mask"]

    def __init__(
        self,
        feature_size: int = 128,
        sampling_rate: int = 16000,
        num_segments: int = 16,
        audio_frames_per_segment: int = 64,
        n_fft: int = 400,
        hop_length: int = 160,
        padding_value: float = 0.0,
        audio_features: str = "log_mel",
        **kwargs,
    ):
        if audio_features not in AUDIO_FEATURES:
            raise ValueError(f"audio_features must be one of {AUDIO_FEATURES}, got {audio_features!r}.")
        kwargs.setdefault("return_attention_mask", False)
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        self.audio_features = audio_features
        self.num_segments = num_segments
        self.audio_frames_per_segment = audio_frames_per_segment
        self.n_fft = n_fft
        self.hop_length = hop_length

    @classmethod
    def release_compatible(cls, num_segments: int = 16, **kwargs) -> "AVCANetFeatureExtractor":
        """The authors' release audio input: MFCC-32 at 44.1 kHz (n_fft 2048, hop 512), tiled to 4096 frames (47.6 s)
        and cut into 16 parts of 256 frames. Release-compatible, not time-aligned (see the class docstring)."""
        settings = dict(feature_size=32, sampling_rate=44100, audio_frames_per_segment=256, n_fft=2048, hop_length=512)
        return cls(num_segments=num_segments, audio_features="mfcc", **{**settings, **kwargs})

    def release_mfcc(self, waveform: torch.Tensor) -> torch.Tensor:
        """`(feature_size, S * audio_frames_per_segment)` MFCC of a whole mono waveform at `sampling_rate`, tiled
        along time (the release's `np.tile` then the first frames)."""
        mfcc = _mfcc(self.sampling_rate, self.n_fft, self.hop_length, self.feature_size)(waveform.float())  # (C, T)
        num_frames = self.num_segments * self.audio_frames_per_segment
        return mfcc.repeat(1, -(-num_frames // mfcc.shape[1]))[:, :num_frames]

    @property
    def window_samples(self) -> int:
        """Samples of audio behind one segment's spectrogram."""
        return (self.audio_frames_per_segment - 1) * self.hop_length + self.n_fft

    @property
    def window_duration(self) -> float:
        """Seconds of audio behind one segment's spectrogram."""
        return self.window_samples / self.sampling_rate

    def features_from_windows(self, windows: torch.Tensor) -> torch.Tensor:
        """`(..., num_mel_bins, S * audio_frames_per_segment)` log-mel features of `(..., S, window_samples)` audio
        windows at `sampling_rate` (one clip's or a batch's, on any device), segment after segment along time."""
        transform = _mel_spectrogram(self.sampling_rate, self.n_fft, self.hop_length, self.feature_size, windows.device)
        log_mel = torch.log(transform(windows.float()) + LOG_OFFSET)  # (..., S, n_mels, F)
        return log_mel.transpose(-3, -2).flatten(-2)  # (..., n_mels, S * F)

    def silence(self) -> torch.Tensor:
        """The features of a clip without audio: those of digital silence."""
        if self.audio_features == "mfcc":
            return self.release_mfcc(torch.zeros(self.n_fft))
        return self.features_from_windows(torch.zeros(self.num_segments, self.window_samples))

    def default_segment_centers(self, clip_duration: float) -> torch.Tensor:
        """Centres of `num_segments` equal parts of a clip, `(S,)` seconds."""
        return (torch.arange(self.num_segments, dtype=torch.float64) + 0.5) * clip_duration / self.num_segments

    def windows_from_waveform(
        self, waveform: torch.Tensor, segment_centers: torch.Tensor, clip_duration: float
    ) -> torch.Tensor:
        """`(S, window_samples)` windows of a mono waveform at `sampling_rate` that starts with the clip, looped with
        period `clip_duration` (the waveform is cut or zero-padded to that length)."""
        period = max(round(clip_duration * self.sampling_rate), 1)
        clip = torch.nn.functional.pad(waveform[:period], (0, max(period - len(waveform), 0)))
        starts = audio_window_starts(segment_centers, self.window_duration, clip_duration)
        return looped_windows(clip, torch.round(starts * self.sampling_rate), self.window_samples)

    def mono_at_sampling_rate(self, audio, sampling_rate: int | None) -> torch.Tensor:
        """A `(n,)` float32 mono waveform at `self.sampling_rate` from one clip's audio (any kind `__call__` takes
        but `None`) whose arrays and tensors are at `sampling_rate`."""
        waveform, rate = to_mono_waveform(audio, sampling_rate)
        if rate is None:
            logger.warning_once(
                f"No sampling_rate given for the audio: assuming {self.sampling_rate} Hz. Pass `sampling_rate` to "
                "avoid silently wrong features."
            )
            rate = self.sampling_rate
        if rate != self.sampling_rate:
            waveform = torchaudio.functional.resample(waveform, rate, self.sampling_rate)
        return waveform

    def __call__(
        self,
        raw_audio,
        sampling_rate: int | None = None,
        segment_centers: list[torch.Tensor] | None = None,
        clip_durations: list[float] | None = None,
        return_tensors: str | None = "pt",
    ) -> BatchFeature:
        """
        Args:
            raw_audio: one clip's audio or a list of them; each a 1-D or `(channels, samples)` array or tensor, a
                `{"array", "sampling_rate"}` dict, a torchcodec `AudioDecoder`, or `None` for a clip without audio.
            sampling_rate: rate of arrays and tensors in `raw_audio`; they are resampled to `self.sampling_rate`.
            segment_centers: per clip, `(num_segments,)` centre times in seconds of the audio windows on the looped
                clip's timeline; defaults to the centres of `num_segments` equal parts of the clip.
            clip_durations: per clip, the seconds the clip lasts (the loop period); defaults to the audio's length.
            return_tensors: `"pt"` (default) or `"np"`.

        Returns:
            `BatchFeature` with `input_features` `(batch, feature_size, num_segments * audio_frames_per_segment)`
            float32 and `audio_mask` `(batch,)` int64, 0 for clips without audio (whose features are silence).
        """
        batched = isinstance(raw_audio, (list, tuple)) and not _is_number_list(raw_audio)
        clips = list(raw_audio) if batched else [raw_audio]
        features, mask = [], []
        for index, audio in enumerate(clips):
            if audio is None:
                features.append(self.silence())
                mask.append(0)
                continue
            waveform = self.mono_at_sampling_rate(audio, sampling_rate)
            mask.append(1)
            if self.audio_features == "mfcc":  # the release's layout ignores where the visual segments are
                features.append(self.release_mfcc(waveform))
                continue
            clip_duration = clip_durations[index] if clip_durations is not None else len(waveform) / self.sampling_rate
            if segment_centers is not None:
                centers = torch.as_tensor(segment_centers[index], dtype=torch.float64)
            else:
                centers = self.default_segment_centers(clip_duration)
            windows = self.windows_from_waveform(waveform, centers, clip_duration)
            features.append(self.features_from_windows(windows))
        data = {"input_features": torch.stack(features), "audio_mask": torch.tensor(mask, dtype=torch.long)}
        if return_tensors == "np":
            data = {key: value.numpy() for key, value in data.items()}
        return BatchFeature(data=data)


def _is_number_list(values) -> bool:
    return len(values) > 0 and isinstance(values[0], (int, float, np.number))


__all__ = ["AVCANetFeatureExtractor"]
