"""The AV-CANet processor: frames and time-aligned log-mel audio from the same videos, in one call."""

import torch

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin

from .decoding_threads import single_torch_thread
from .feature_extraction_avcanet import AVCANetFeatureExtractor, to_mono_waveform
from .frame_sampling import audio_window_starts
# not used here: imported so that `save_pretrained` copies it with the processor's code (`pipeline()` loads it from
# there, as the config's `custom_pipelines` says)
from .pipeline_avcanet import AVCANetVideoClassificationPipeline  # noqa: F401
# likewise: every saved folder carries the Inference Endpoints handler and the onnxruntime runner of its export
from .handler import EndpointHandler  # noqa: F401
from .onnx_avcanet import AVCANetOnnxModel  # noqa: F401
from .video_decoding import is_single_video, open_video
from .windows import iter_window_batches
from .video_processing_avcanet import (
    AUGMENTATIONS,
    AVCANetVideoProcessor,
    apply_spatial_operation,
    batch_tensor,
    operation_amount,
)


class AVCANetProcessor(ProcessorMixin):
    r"""
    Builds every input of `AVCANetForVideoClassification` from videos: `pixel_values_videos` from the video processor
    and `input_features` + `audio_mask` from the feature extractor, with audio segment `i` centred on the moment the
    frames of visual segment `i` show (in training too, where those frames are random).

    Each video is opened once: its sampled frames are decoded, then only the audio windows next to them. Without
    `audio=`, the audio comes from the video file itself; a file without an audio track is valid and gets silent
    features with `audio_mask` 0.

    Args:
        video_processor (`AVCANetVideoProcessor`, *optional*):
            Frame sampling and spatial processing; the defaults when not given.
        feature_extractor (`AVCANetFeatureExtractor`, *optional*):
            Log-mel features; the defaults when not given. Both must use the same `num_segments`.

    Example:

    ```python
    >>> processor = AVCANetProcessor()
    >>> inputs = processor(videos=["clip.mp4"])  # eval mode: centre windows and crops
    >>> logits = model(**inputs).logits
    ```
    """

    def __init__(
        self,
        video_processor: AVCANetVideoProcessor | None = None,
        feature_extractor: AVCANetFeatureExtractor | None = None,
        **kwargs,
    ):
        video_processor = video_processor if video_processor is not None else AVCANetVideoProcessor()
        feature_extractor = feature_extractor if feature_extractor is not None else AVCANetFeatureExtractor()
        if video_processor.num_segments != feature_extractor.num_segments:
            raise ValueError(
                f"The video processor cuts videos into {video_processor.num_segments} segments but the feature "
                f"extractor into {feature_extractor.num_segments}: they must agree."
            )
        super().__init__(video_processor, feature_extractor, **kwargs)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        # Load the two sub-processors with their own classes rather than through the Auto classes, so that
        # `AVCANetProcessor.from_pretrained` needs no `trust_remote_code` for code it already has.
        kwargs.pop("trust_remote_code", None)
        return [
            AVCANetVideoProcessor.from_pretrained(pretrained_model_name_or_path, **kwargs),
            AVCANetFeatureExtractor.from_pretrained(pretrained_model_name_or_path, **kwargs),
        ]

    @classmethod
    def from_model_config(cls, config, **video_processor_kwargs) -> "AVCANetProcessor":
        """A processor whose sizes match a model config (anything with `num_segments`, `frames_per_segment`,
        `image_size`, `num_mel_bins` and `audio_frames_per_segment`)."""
        video_processor = AVCANetVideoProcessor(
            num_segments=config.num_segments,
            frames_per_segment=config.frames_per_segment,
            size={"shortest_edge": config.image_size},
            crop_size={"height": config.image_size, "width": config.image_size},
            **video_processor_kwargs,
        )
        feature_extractor = AVCANetFeatureExtractor(
            feature_size=config.num_mel_bins,
            num_segments=config.num_segments,
            audio_frames_per_segment=config.audio_frames_per_segment,
        )
        return cls(video_processor, feature_extractor)

    def __call__(
        self,
        videos=None,
        audio=None,
        sampling_rate: int | None = None,
        training: bool = False,
        generator: torch.Generator | None = None,
        return_tensors: str | None = "pt",
        return_time_spans: bool = False,
        finish: bool = True,
        return_video_status: bool = False,
        window_seconds: float | None = None,
        window_stride: float | None = None,
        num_clips: int = 1,
        num_crops: int = 1,
    ) -> BatchFeature:
        """
        Args:
            videos: one video or a list of them: paths, bytes, binary file objects, torchcodec `VideoDecoder`s, or
                decoded frames (`(T, H, W, C)` uint8 arrays or tensors, lists of PIL images).
            audio: optional, one waveform per video (1-D or `(channels, samples)` arrays or tensors, `{"array",
                "sampling_rate"}` dicts, torchcodec `AudioDecoder`s, or `None` for a clip without audio), used instead
                of the files' audio tracks. A waveform starts with its video; decoded frames are taken to span their
                waveform evenly.
            sampling_rate: rate of the arrays and tensors in `audio`.
            training: random segment windows, crops and augmentation (drawn once per video) instead of the
                deterministic centre ones.
            generator: the random source in training; the global torch RNG when `None`.
            return_tensors: `"pt"` (default) or `"np"`.
            return_time_spans: also return `segment_time_spans`, which the model does not take (pop it before
                `model(**inputs)`).
            return_video_status: also return `video_truncated` `(batch,)` int64 (1 when the picture could not be
                decoded past a point: only the frames before it were sampled) and `video_decoded_seconds` `(batch,)`
                float64 (the seconds of picture sampled from), which the model does not take (pop them too). With
                `audio_mask` (0: no audio track, silence stands in) they say what an answer rests on.
            finish: `False` leaves the steps after the decoding and the crops to `finish`, where the model runs
                (DataLoader workers then hand over a quarter of the bytes, and the GPU does a fifth of their work):
                the training augmentation, the normalisation and the log-mel.
            window_seconds, window_stride: cut each video into windows of `window_seconds` seconds every
                `window_stride` (default `window_seconds`) seconds, the last one ending with the video, each sampled
                as a clip of its own (`windows`); evaluation only.
            num_clips, num_crops: test-time views: `num_clips` temporal offsets of the segments' frame windows times
                `num_crops` (1 or 3) spatial crops, decoded once (`windows`); evaluation only.

        Returns:
            `BatchFeature` with `pixel_values_videos` `(batch, num_segments * frames_per_segment, 3, height, width)`
            float32, `input_features` `(batch, num_mel_bins, num_segments * audio_frames_per_segment)` float32 and
            `audio_mask` `(batch,)` int64; with `return_time_spans`, `segment_time_spans` `(batch, num_segments, 2)`
            float64: the start and end, in seconds from the video's first frame, of the frames each segment sampled.
            Without `finish`: uint8 `pixel_values_videos`, not yet augmented; for log-mel features, `audio_windows`
            `(batch, num_segments, window_samples)` float32 instead of `input_features`; in training, each video's
            drawn operation, `augmentation_operations` `(batch,)` int64 (0 none, else 1 + its index in
            `AUGMENTATIONS`), and `augmentation_draws` `(batch,)` float32, the U(0, 1) draw behind its amount.
            With windows or views: every window of every video in every view, one row per view, a window's views
            consecutive (see `iter_windows`, which streams a long video a few windows at a time), with
            `segment_time_spans` per row and `window_spans`, `window_index` and `video_index` per window.
        """
        if videos is None:
            raise ValueError("AVCANetProcessor needs `videos`.")
        if window_seconds is not None or window_stride is not None or num_clips != 1 or num_crops != 1:
            if training or audio is not None or not finish:
                raise ValueError("Windows and views are for evaluation on the videos' own audio (finished inputs).")
            return self._all_windows(videos, window_seconds, window_stride, num_clips, num_crops, return_tensors)
        batched = not is_single_video(videos)
        videos = list(videos) if batched else [videos]
        if not videos:
            raise ValueError("No videos given.")
        if audio is not None:
            audio = list(audio) if batched else [audio]
            if len(audio) != len(videos):
                raise ValueError(f"Got {len(audio)} audio clips for {len(videos)} videos.")

        clips, operations, audio_parts, audio_mask, time_spans, video_status = [], [], [], [], [], []
        with single_torch_thread():
            for index, video in enumerate(videos):
                given = audio[index] if audio is not None else None
                clip, audio_part, has_audio = self._process_one(
                    video, given, audio is not None, sampling_rate, training, generator
                )
                clips.append(clip.augmented() if finish else clip.frames)
                video_status.append((clip.truncated, clip.clip_duration))
                operations.append(clip.augmentation)
                audio_parts.append(audio_part)
                audio_mask.append(has_audio)
                time_spans.append(clip.segment_spans)
            data = {"pixel_values_videos": self.video_processor.to_pixel_values(clips, normalize=finish)}
            audio_batch = batch_tensor((len(audio_parts), *audio_parts[0].shape), torch.float32)  # as the frames'
            torch.stack(audio_parts, out=audio_batch)
            if self.feature_extractor.audio_features == "mfcc":
                data["input_features"] = audio_batch  # (B, n_mfcc, S * F)
            elif finish:
                data["input_features"] = self.feature_extractor.features_from_windows(audio_batch)  # (B, n_mels, S * F)
            else:
                data["audio_windows"] = audio_batch  # (B, S, window_samples)
        if not finish and training:
            data["augmentation_operations"] = torch.tensor([operation.operation_code for operation in operations])
            data["augmentation_draws"] = torch.tensor([operation.uniform for operation in operations])
        data["audio_mask"] = torch.tensor(audio_mask, dtype=torch.long)  # (B,)
        if return_time_spans:
            data["segment_time_spans"] = torch.stack(time_spans)  # (B, S, 2)
        if return_video_status:
            truncated, seconds = zip(*video_status)
            data["video_truncated"] = torch.tensor(truncated, dtype=torch.long)  # (B,)
            data["video_decoded_seconds"] = torch.tensor(seconds, dtype=torch.float64)  # (B,)
        return BatchFeature(data=data, tensor_type=return_tensors)

    def _all_windows(self, videos, window_seconds, window_stride, num_clips, num_crops, return_tensors):
        videos = [videos] if is_single_video(videos) else list(videos)
        batches = [
            (number, batch)
            for number, video in enumerate(videos)
            for batch in self.iter_windows(video, window_seconds, window_stride, num_clips, num_crops)
        ]
        data = {key: torch.cat([batch[key] for _, batch in batches]) for key in batches[0][1]}
        data["video_index"] = torch.cat([torch.full_like(batch["window_index"], number) for number, batch in batches])
        return BatchFeature(data=data, tensor_type=return_tensors)

    def iter_windows(
        self,
        video,
        window_seconds: float | None = None,
        window_stride: float | None = None,
        num_clips: int = 1,
        num_crops: int = 1,
        batch_size: int = 4,
    ):
        """The inputs of one video's windows in every view, `batch_size` windows at a time, decoded in one pass with
        flat memory (`windows.iter_window_batches`)."""
        return iter_window_batches(
            self, video, window_seconds, window_stride, num_clips, num_crops, batch_size,
            self.video_processor.decoder_threads,
        )  # fmt: skip

    def finish(self, inputs: dict) -> dict:
        """The model's inputs from `processor(..., finish=False)`'s, on their device: the training augmentation
        applied to the uint8 frames, which are then normalised (`video_processor.normalize_pixel_values`), and the
        log-mel features of the audio windows. These are the processor's own operations in the same order, so on the
        CPU they give exactly its values (on an accelerator the rotation and the FFT round differently). Finished
        inputs are returned as they are; `inputs` is not changed."""
        inputs = dict(inputs)
        frames = inputs["pixel_values_videos"]
        if "augmentation_operations" in inputs:
            codes, draws = inputs.pop("augmentation_operations").tolist(), inputs.pop("augmentation_draws").tolist()
            frames = frames.clone() if any(codes) else frames  # the caller's batch stays as it was
            for row, (code, uniform) in enumerate(zip(codes, draws)):
                if code:
                    operation = AUGMENTATIONS[code - 1]
                    frames[row] = apply_spatial_operation(frames[row], operation, operation_amount(operation, uniform))
        if frames.dtype == torch.uint8:
            inputs["pixel_values_videos"] = self.video_processor.normalize_pixel_values(frames)
        if "audio_windows" in inputs:
            inputs["input_features"] = self.feature_extractor.features_from_windows(inputs.pop("audio_windows"))
        return inputs

    def _process_one(self, video, audio, audio_given: bool, sampling_rate, training, generator):
        """Frames and audio of one video, opening it once: the audio as log-mel windows `(S, window_samples)`, or
        as the release's MFCC features. With `audio_given`, `audio` (possibly `None`: no audio) replaces the file's
        track; silence stands for no audio."""
        waveform, rate = to_mono_waveform(audio, sampling_rate) if audio is not None else (None, None)
        span = len(waveform) / (rate or self.feature_extractor.sampling_rate) if waveform is not None else None
        with open_video(video, self.video_processor.decoder_threads, clip_duration=span) as reader:
            clip = self.video_processor.sample_clip(reader, training=training, generator=generator)
            if audio_given:
                audio_part, has_audio = self._audio_from_waveform(waveform, rate, clip)
            else:
                audio_part, has_audio = self._audio_from_reader(reader, clip)
        return clip, audio_part, has_audio

    def _audio_from_waveform(self, waveform, rate, clip) -> tuple[torch.Tensor, int]:
        extractor = self.feature_extractor
        if waveform is None:
            return self._silence(), 0
        waveform = extractor.mono_at_sampling_rate(waveform, rate)
        if extractor.audio_features == "mfcc":
            return extractor.release_mfcc(waveform), 1
        return extractor.windows_from_waveform(waveform, clip.segment_centers, clip.clip_duration), 1

    def _audio_from_reader(self, reader, clip) -> tuple[torch.Tensor, int]:
        if not reader.has_audio:
            return self._silence(), 0
        extractor = self.feature_extractor
        if extractor.audio_features == "mfcc":  # the release's layout: the whole track, not time-aligned
            num_samples = max(round(reader.clip_duration * extractor.sampling_rate), extractor.n_fft)
            return extractor.release_mfcc(reader.get_audio(0.0, num_samples, extractor.sampling_rate)), 1
        starts = audio_window_starts(clip.segment_centers, extractor.window_duration, clip.clip_duration)
        return reader.read_audio_windows(starts, extractor.window_samples, extractor.sampling_rate), 1

    def _silence(self) -> torch.Tensor:
        extractor = self.feature_extractor
        if extractor.audio_features == "mfcc":
            return extractor.silence()
        return torch.zeros(extractor.num_segments, extractor.window_samples)


__all__ = ["AVCANetProcessor"]
