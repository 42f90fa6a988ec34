"""Video processor of AV-CANet: segment sampling, decoding of only the sampled frames, crops and augmentation."""

import math
import warnings
from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as tvF
from torch.utils.data import get_worker_info

from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import PILImageResampling, SizeDict
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor

from .errors import VideoDecodingError
from .frame_sampling import sample_segment_positions, segment_time_spans, segment_window_centers
from .decoding_threads import single_torch_thread
from .video_decoding import AVCANetVideoReader, FrameDecodingFailed, is_single_video, open_video


AUTHORS_MEAN = [100 / 255] * 3  # the release normalises as x / 255 - 100 / 255 (spec §3.3)
AUTHORS_STD = [1.0] * 3

# Training augmentation of the release (`transforms/spatial.py`), drawn once per video.
CROP_POSITIONS = ("center", "top_left", "top_right", "bottom_left", "bottom_right")
AUGMENT_PROBABILITY = 0.3
AUGMENTATIONS = ("hflip", "rotate", "brightness")
MAX_ROTATION_DEGREES = 20.0
BRIGHTNESS_RANGE = (0.5, 1.0)


class AVCANetVideoProcessorKwargs(VideosKwargs, total=False):
    r"""
    num_segments (`int`, *optional*, defaults to 16):
        Temporal segments per video (the model's `num_segments`).
    frames_per_segment (`int`, *optional*, defaults to 8):
        Consecutive frames sampled in each segment (the model's `frames_per_segment`).
    decoder_threads (`int`, *optional*, defaults to 0):
        FFmpeg threads per decoder; 0 lets FFmpeg choose, except in a DataLoader worker, where 0 means the worker's
        share of the cores (1 with 2 workers on 2 cores).
    """

    num_segments: int
    frames_per_segment: int
    decoder_threads: int


@dataclass
class AVCANetSpatialAugmentation:
    """The random spatial choices of one training video, applied identically to all its frames."""

    crop_position: str  # one of CROP_POSITIONS
    operation: str | None  # one of AUGMENTATIONS, or None
    uniform: float = 0.0  # the U(0, 1) draw behind the operation's amount (a float32, which a batch holds exactly)

    @classmethod
    def draw(cls, generator: torch.Generator | None = None) -> "AVCANetSpatialAugmentation":
        crop_position = CROP_POSITIONS[int(torch.randint(len(CROP_POSITIONS), (), generator=generator))]
        operation, uniform = None, 0.0
        if float(torch.rand((), generator=generator)) < AUGMENT_PROBABILITY:
            operation = AUGMENTATIONS[int(torch.randint(len(AUGMENTATIONS), (), generator=generator))]
            uniform = float(torch.rand((), generator=generator))
        return cls(crop_position, operation, uniform)

    @property
    def amount(self) -> float:
        return operation_amount(self.operation, self.uniform)

    @property
    def operation_code(self) -> int:
        """0 without an operation, else 1 + its index in `AUGMENTATIONS` (what a batch hands over)."""
        return 0 if self.operation is None else 1 + AUGMENTATIONS.index(self.operation)


def operation_amount(operation: str | None, uniform: float) -> float:
    """Degrees for "rotate" (U(-20, 20)), the factor for "brightness" (U(0.5, 1)), from a U(0, 1) draw."""
    if operation == "rotate":
        return MAX_ROTATION_DEGREES * (2 * uniform - 1)
    if operation == "brightness":
        return BRIGHTNESS_RANGE[0] + (BRIGHTNESS_RANGE[1] - BRIGHTNESS_RANGE[0]) * uniform
    return 0.0


def apply_spatial_operation(frames: torch.Tensor, operation: str | None, amount: float) -> torch.Tensor:
    """One video's augmentation operation (`AVCANetSpatialAugmentation`) on its uint8 frames `(..., C, H, W)`, on
    any device."""
    if operation == "hflip":
        return tvF.horizontal_flip(frames)
    if operation == "rotate":
        return tvF.rotate(frames, amount, interpolation=tvF.InterpolationMode.BILINEAR)
    if operation == "brightness":
        return tvF.adjust_brightness(frames, amount)
    return frames


@dataclass
class AVCANetSampledClip:
    """One video's sampled frames, with the timing the audio windows are aligned to."""

    frames: torch.Tensor  # (S * T, C, H, W) uint8, cropped; `augmented()` applies the operation
    segment_centers: torch.Tensor  # (S,) float64, seconds on the looped clip's timeline
    clip_duration: float  # seconds, the loop period
    segment_spans: torch.Tensor  # (S, 2) float64, start and end of each segment's frames, seconds in the clip
    augmentation: AVCANetSpatialAugmentation | None = None  # training's random choices (the crop already made)
    truncated: bool = False  # the picture stops before the end its header announces: only the decodable prefix

    def augmented(self) -> torch.Tensor:
        """The frames with the augmentation operation applied."""
        if self.augmentation is None:
            return self.frames
        return apply_spatial_operation(self.frames, self.augmentation.operation, self.augmentation.amount)


def batch_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """An empty batch tensor, made in shared memory inside a DataLoader worker: torch would otherwise copy it there to
    hand it to the main process, and fresh pages cost about 2 us each on a virtual machine (a float32 batch of 8 clips
    at the paper's sizes has 38,000 of them)."""
    if get_worker_info() is None:
        return torch.empty(shape, dtype=dtype)
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * dtype.itemsize)  # as torch's default_collate does
    return torch.empty(0, dtype=dtype).set_(storage).view(shape)


class AVCANetVideoProcessor(BaseVideoProcessor):
    r"""
    Turns videos into AV-CANet's `pixel_values_videos`: `num_segments` windows of `frames_per_segment` consecutive
    frames (the release's TSN sampling, see `frame_sampling`), decoded by seeking so only those frames are decoded,
    upright, cropped to `crop_size` and normalised.

    Spatial processing, applied to uint8 frames segment by segment (so a 4K video never holds more than one
    segment at full size):
    - evaluation (default): resize the short side to `size["shortest_edge"]` (`do_resize`), then centre-crop
      `crop_size` (`do_center_crop`);
    - training (`training=True`): a square crop of side min(height, width) at the centre or a corner, resized to
      `crop_size`, then with probability 0.3 one of horizontal flip, rotation by U(-20, 20) degrees or brightness
      factor U(0.5, 1); every random choice is drawn once per video.

    Normalisation defaults to the authors' `x / 255 - 100 / 255` (`image_mean = 100 / 255`, `image_std = 1`); use
    ImageNet or Kinetics statistics with backbones pretrained on them.

    Accepted videos: a path, bytes, a binary file object, a torchcodec `VideoDecoder` (a `datasets` `Video` column),
    or decoded frames (a `(T, H, W, C)` uint8 array or tensor, or a list of PIL images); one or a list of them.
    """

    resample = PILImageResampling.BILINEAR
    size = {"shortest_edge": 112}
    crop_size = {"height": 112, "width": 112}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    image_mean = AUTHORS_MEAN
    image_std = AUTHORS_STD
    num_segments = 16
    frames_per_segment = 8
    decoder_threads = 0
    valid_kwargs = AVCANetVideoProcessorKwargs
    model_input_names = ["pixel_values_videos"]

    def __init__(self, **kwargs: Unpack[AVCANetVideoProcessorKwargs]):
        super().__init__(**kwargs)

    def preprocess(
        self,
        videos,
        training: bool = False,
        generator: torch.Generator | None = None,
        return_tensors: str | None = "pt",
        normalize: bool = True,
    ) -> BatchFeature:
        """
        Args:
            videos: one video or a list of them (see the class docstring for the kinds accepted).
            training: sample random windows and crops with augmentation instead of the deterministic centre ones.
            generator: the random source in training; the global torch RNG when `None` (so DataLoader workers,
                which torch seeds differently, draw differently).
            return_tensors: `"pt"` (default) or `"np"`.
            normalize: `False` returns the uint8 frames, for `normalize_pixel_values` where the model runs (a
                quarter of the bytes through DataLoader workers and to an accelerator).

        Returns:
            `BatchFeature` with `pixel_values_videos` `(batch, num_segments * frames_per_segment, 3, height, width)`
            float32 (uint8 without `normalize`).
        """
        videos = [videos] if is_single_video(videos) else list(videos)
        if not videos:
            raise ValueError("No videos given.")
        clips = []
        with single_torch_thread():
            for video in videos:
                with open_video(video, self.decoder_threads) as reader:
                    clips.append(self.sample_clip(reader, training=training, generator=generator).augmented())
            pixel_values = self.to_pixel_values(clips, normalize)
        return BatchFeature(data={"pixel_values_videos": pixel_values}, tensor_type=return_tensors)

    def to_pixel_values(self, clips: list[torch.Tensor], normalize: bool = True) -> torch.Tensor:
        """Sampled uint8 clips `(S * T, C, H, W)` -> one batch `(batch, S * T, C, H, W)`: float32, rescaled and
        normalised, or the uint8 frames without `normalize`. Written into one buffer (`batch_tensor`) and normalised
        in place: fresh float copies per clip and per batch (page faults on 19 MB each) cost more than decoding a
        prepared copy."""
        pixel_values = batch_tensor((len(clips), *clips[0].shape), torch.float32 if normalize else torch.uint8)
        for row, clip in zip(pixel_values, clips):
            row.copy_(clip)
        return self.normalize_pixel_values(pixel_values) if normalize else pixel_values

    def normalize_pixel_values(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames `(batch, S * T, C, H, W)` of 0-255 on any device, uint8 (or float32, normalised in place) -> float32,
        rescaled and normalised: what the model takes. The same operations in the same order wherever they run, so
        the values do not depend on where."""
        rescale = self.rescale_factor if self.do_rescale else 1.0
        mean = torch.tensor(self.image_mean if self.do_normalize else 0.0, dtype=torch.float32, device=frames.device)
        std = torch.tensor(self.image_std if self.do_normalize else 1.0, dtype=torch.float32, device=frames.device)
        mean, std = mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1)
        return frames.to(torch.float32).mul_(rescale / std).sub_(mean / std)

    @property
    def required_short_side(self) -> int:
        """The smallest short side of the frames that loses nothing: the training crop is a square of the short side
        resized to `crop_size`, evaluation resizes the short side to `size` (what `dataset_scripts.prepare` keeps)."""
        size, crop = dict(self.size or {}), dict(self.crop_size or {})
        sides = [crop.get("height"), crop.get("width"), size.get("shortest_edge"), size.get("height")]
        return max(side or 0 for side in sides + [size.get("width")])

    def sample_clip(
        self, reader: AVCANetVideoReader, training: bool = False, generator: torch.Generator | None = None
    ) -> AVCANetSampledClip:
        """Sample, decode and crop one opened video (the augmentation is drawn, not applied: `augmented()`).

        A file whose tail does not decode (cut off during a download, with its index at the front) is sampled again
        over the frames that do decode, with a warning. A prepared copy made for smaller frames than these settings
        need is refused (`PreparedVideoMismatchError`).
        """
        reader.require(short_side=self.required_short_side)
        try:
            return self._sample_clip(reader, training, generator)
        except FrameDecodingFailed:
            listed = reader.num_frames
            decodable = reader.decodable_prefix()
            warnings.warn(
                f"Video {reader.name}: frames {decodable} to {listed - 1} cannot be decoded; sampling frames 0 to "
                f"{decodable - 1} only.",
                stacklevel=3,
            )
        try:
            return self._sample_clip(reader, training, generator)
        except FrameDecodingFailed as error:
            raise VideoDecodingError(reader.name, f"frames fail to decode ({error})") from error

    def _sample_clip(self, reader: AVCANetVideoReader, training: bool, generator: torch.Generator | None):
        positions = sample_segment_positions(
            reader.num_frames, self.num_segments, self.frames_per_segment, training, generator
        )  # (S, T)
        augmentation = AVCANetSpatialAugmentation.draw(generator) if training else None
        segments, timestamps, durations = [], [], []
        for window in positions:
            decoded = reader.get_frames((window % reader.num_frames).tolist())
            segments.append(self._crop(decoded.frames, augmentation))  # (T, C, H', W') uint8
            timestamps.append(decoded.timestamps)
            durations.append(decoded.durations)
        frames = torch.cat(segments)  # (S * T, C, H', W') uint8
        timing = (positions, torch.stack(timestamps), torch.stack(durations), reader.num_frames, reader.clip_duration)
        return AVCANetSampledClip(
            frames,
            segment_window_centers(*timing),
            reader.clip_duration,
            segment_time_spans(*timing),
            augmentation,
            truncated=reader.listed_frames is not None,
        )

    def _crop(self, frames: torch.Tensor, augmentation: AVCANetSpatialAugmentation | None) -> torch.Tensor:
        """Resize and crop uint8 frames `(T, C, H, W)`: at the centre, or in training at the drawn position."""
        if augmentation is None:
            if self.do_resize:
                frames = self.resize(frames, size=self.size, resample=self.resample)
            if self.do_center_crop:
                frames = self.center_crop(frames, self.crop_size)
            return frames

        height, width = frames.shape[-2:]
        side = min(height, width)
        top, left = {
            "center": ((height - side) // 2, (width - side) // 2),
            "top_left": (0, 0),
            "top_right": (0, width - side),
            "bottom_left": (height - side, 0),
            "bottom_right": (height - side, width - side),
        }[augmentation.crop_position]
        frames = frames[..., top : top + side, left : left + side]
        return self.resize(
            frames, size=SizeDict(height=self.crop_size.height, width=self.crop_size.width), resample=self.resample
        )


__all__ = ["AVCANetVideoProcessor"]
