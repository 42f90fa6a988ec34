"""
What a `Trainer` needs to survive a long run (`examples/train.py`'s `AVCANetTrainer` mixes it in):

- rows left out by the collators (`bad_videos.collate_skipping_bad_rows`) are recorded in the main process, once per
  row, with their split; a batch whose rows were all bad is no step at all (one process) or a clear error (several:
  the others would wait forever for its gradients); evaluation metrics carry `<prefix>_skipped_videos`; and
  `skipped_videos.json` is written into `output_dir` at the end of training and of each evaluation, with a one-line
  count;
- checkpoints are marked complete after their last file, the processor included, and old ones rotated away only then
  (`safe_checkpoints`).
"""

import hashlib
import json
import logging
from pathlib import Path

import torch
from accelerate.utils import gather_object

from bad_videos import ROW_KEY, SKIPPED_KEY, SKIPPED_VIDEOS_FILE, SkippedVideoLog, is_empty_batch
from safe_checkpoints import deferred_rotation, mark_complete, rotate
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

logger = logging.getLogger("avcanet.long_runs")


def batch_generator(rows: list[dict], seed: int | None, epoch: int) -> torch.Generator | None:
    """
    The random source of a training batch's augmentation, from the run's seed, the epoch and the rows' numbers
    (`bad_videos.RowNumbered`) rather than from the global RNG: the draws of a batch then depend neither on when it
    was decoded (a DataLoader decodes ahead; Trainer's resume decodes the first batch before it restores the RNG
    state), nor on which worker decoded it. This is what makes a resumed run bit-exact. `None` (the global RNG) for a
    stream, whose rows are not numbered, or without a seed.
    """
    numbers = [row.get(ROW_KEY) for row in rows]
    if seed is None or not numbers or None in numbers:
        return None
    digest = hashlib.sha256(json.dumps([seed, epoch, numbers]).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


class LongRunTrainerMixin:
    """
    Mixed in before `Trainer`. Keyword arguments:
        skipped_videos: the run's `SkippedVideoLog` (the pre-pass's records already in it); a new one by default.
        processor: saved into every checkpoint before it is marked complete (optional).
    """

    def __init__(self, *args, skipped_videos: SkippedVideoLog | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped_videos = skipped_videos if skipped_videos is not None else SkippedVideoLog()
        self._split_in_use = "train"

    # ---- rows left out -------------------------------------------------------------------------------------------

    def _record_skipped(self, inputs: dict) -> None:
        records = inputs.pop(SKIPPED_KEY, None)
        if records is None:
            return
        self.skipped_videos.add(records, self._split_in_use)
        labels = inputs.get("labels")
        self.skipped_videos.count_read(self._split_in_use, len(records) + (len(labels) if labels is not None else 0))

    def _prepare_inputs(self, inputs: dict) -> dict:
        self._record_skipped(inputs)
        return super()._prepare_inputs(inputs)

    def training_step(self, model, inputs, num_items_in_batch=None):
        if not is_empty_batch(inputs):
            return super().training_step(model, inputs, num_items_in_batch)
        self._record_skipped(inputs)
        if self.args.world_size > 1:
            raise RuntimeError(
                "A training batch in which every video is undecodable (see the warnings above): with several "
                "processes it cannot be left out, the others wait for its gradients. Repair or remove those rows "
                "(without --skip_video_check the pre-pass leaves them out of a data set on disk), or use a larger "
                "--per_device_train_batch_size."
            )
        # no backward: the gradients stay None, which the optimizer step skips; this batch changes nothing
        return torch.zeros((), device=self.args.device)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        if is_empty_batch(inputs):
            self._record_skipped(inputs)
            return None, None, None
        return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)

    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval"):  # fmt: skip
        split = "eval" if metric_key_prefix.startswith("eval") else "test"
        before, self._split_in_use = self.skipped_videos.rows_skipped[split], split
        try:
            output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                             metric_key_prefix)  # fmt: skip
        finally:
            self._split_in_use = "train"
        skipped = torch.tensor(self.skipped_videos.rows_skipped[split] - before, device=self.args.device)
        if self.args.world_size > 1:
            skipped = self.accelerator.reduce(skipped, reduction="sum")
        output.metrics[f"{metric_key_prefix}_skipped_videos"] = int(skipped)
        self.write_skipped_videos()
        return output

    def train(self, *args, **kwargs):
        result = super().train(*args, **kwargs)
        self.write_skipped_videos()
        return result

    def write_skipped_videos(self) -> None:
        """`skipped_videos.json` (the rows every process left out so far) and a one-line count."""
        records = self.skipped_videos.all_records()
        if self.args.world_size > 1:
            records = [record for part in gather_object([records]) for record in part]
        if self.is_world_process_zero():
            path = self.skipped_videos.write(self.args.output_dir, records)
            logger.info(SkippedVideoLog.summary(records, path))

    def _run_epoch(self, *args, **kwargs):
        epoch = kwargs.get("epoch", args[1] if len(args) > 1 else None)
        if epoch is not None and hasattr(self.data_collator, "epoch"):
            self.data_collator.epoch = epoch  # before the epoch's DataLoader workers start (they copy the collator)
        return super()._run_epoch(*args, **kwargs)

    # ---- complete checkpoints ------------------------------------------------------------------------------------

    def _save_checkpoint(self, model, trial) -> None:
        with deferred_rotation() as pending:
            super()._save_checkpoint(model, trial)
        folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        self.accelerator.wait_for_everyone()  # every process's files (its RNG state) are written
        if self.args.should_save:
            processor = getattr(self, "processor", None)
            if processor is not None:
                processor.save_pretrained(folder)
            mark_complete(folder)
            rotate(pending)


__all__ = ["LongRunTrainerMixin", "SKIPPED_VIDEOS_FILE", "batch_generator"]
