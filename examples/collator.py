"""
The collator of `examples/train.py`: raw data-set rows (video cells and labels) to a batch, decoded inside the
DataLoader worker; rows that cannot be decoded are left out and named (`bad_videos.collate_skipping_bad_rows`).
"""

import fsspec
import torch

from bad_videos import collate_skipping_bad_rows
from long_runs import batch_generator
from processing import AVCANetProcessor


def video_source(video):
    """What the processor reads from a video cell: `Video(decode=False)`'s `{"bytes", "path"}` (the bytes when
    embedded, else the file), raw bytes (a parquet `binary` column), or a path. A remote path (`hf://...` in a
    stream of a Hub video folder) is read into memory: the decoders open local files only."""
    if isinstance(video, dict):
        video = video["bytes"] if video.get("bytes") else video["path"]
    if isinstance(video, str) and "://" in video:
        with fsspec.open(video, "rb") as file:
            return file.read()
    return video


class ProcessingCollator:
    """
    Trainer's `data_collator`: the processor decodes a batch of raw rows (video cells and labels) inside the DataLoader
    worker, straight into the batch (made in shared memory there, `batch_tensor`), so nothing is stacked again or copied
    to hand it over. It stops after the decoding and the crops (`processor(..., finish=False)`); `AVCANetTrainer`
    runs the rest on the model's device (`processor.finish`). The frames stay uint8, a quarter of the bytes of float32
    through the workers, the pinned buffers and the copy to the GPU, and the augmentation and the log-mel (a fifth of
    a worker's time per video) run there.

    Args:
        processor: the run's processor.
        training: random windows and crops with augmentation, else the centre ones.
        video_column: the column of the video cells.
        without: `"audio"` or `"video"` takes that modality away: no audio track (`audio_mask` 0), or a uniform
            grey video (each channel at the normalisation mean: 0 once normalised, to float rounding). The accuracy
            that is left shows what the model gets from the other modality alone; on the synthetic set it cannot
            exceed `modality_ceilings`. (The audio and visual heads cannot show this: they read embeddings that the
            fusion has already mixed.)
    """

    def __init__(self, processor: AVCANetProcessor, training: bool, video_column: str = "video", without=None,
                 seed=None, num_clips: int = 1, num_crops: int = 1):  # fmt: skip
        self.processor, self.training, self.video_column, self.without = processor, training, video_column, without
        self.seed, self.epoch = seed, 0  # with a seed, numbered rows draw their augmentation from (seed, epoch, rows)
        self.views = {"num_clips": num_clips, "num_crops": num_crops} if num_clips * num_crops > 1 else {}

    def __call__(self, rows: list[dict]) -> dict:
        """The batch of the rows that decode; the others are left out and listed (`bad_videos`)."""
        return collate_skipping_bad_rows(rows, self._decode, self._probe, self.video_column)

    def _probe(self, row: dict):
        self.processor(videos=[video_source(row[self.video_column])], finish=False)  # eval mode: no random draw

    def _decode(self, rows: list[dict]) -> dict:
        videos = [video_source(row[self.video_column]) for row in rows]
        if self.views:  # finished inputs, a video's views in consecutive rows (`AVCANetTrainer.prediction_step`)
            inputs = dict(self.processor(videos=videos, **self.views))
            for key in ("segment_time_spans", "window_spans", "window_index", "video_index"):
                inputs.pop(key)
            return {**inputs, "labels": torch.tensor([row["label"] for row in rows])}
        generator = batch_generator(rows, self.seed, self.epoch) if self.training else None
        inputs = dict(self.processor(videos=videos, training=self.training, finish=False, generator=generator))
        inputs["labels"] = torch.tensor([row["label"] for row in rows])
        if self.without == "audio":
            inputs["audio_mask"] = torch.zeros_like(inputs["audio_mask"])
        elif self.without == "video":
            video_processor = self.processor.video_processor
            grey = [round(mean / video_processor.rescale_factor) for mean in video_processor.image_mean]
            inputs["pixel_values_videos"][:] = torch.tensor(grey, dtype=torch.uint8).reshape(-1, 1, 1)
            if "augmentation_operations" in inputs:  # a rotation would turn the grey corners black
                inputs["augmentation_operations"].zero_()
        return inputs
