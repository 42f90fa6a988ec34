"""
Checkpoints a long run can always resume from: a full one on SIGTERM (preemption), none half-written taken for a
whole one.

- `PreemptionCallback`: SIGTERM (a spot instance reclaimed, `scancel`, a Kubernetes eviction) only raises a flag; at
  the end of the optimizer step under way, every process agrees on it, Trainer saves a full checkpoint (model,
  optimizer, scheduler, RNG states, trainer state: the data position is its step) and the training loop stops.
  `examples/train.py` then exits 0 with a line that says how to resume.
- Completeness: a checkpoint folder is complete once `CHECKPOINT_COMPLETE` is in it, written (atomically) after
  every other file of it, the processor included. Trainer's rotation of old checkpoints (`save_total_limit`) is
  held back until then (`deferred_rotation`), so a process killed at any moment of a save leaves the previous
  checkpoint in place.
- `resume_checkpoint`: what to resume from (`--resume_from_checkpoint PATH`, `last`/`true`, or automatically the last
  complete checkpoint of `output_dir`); half-written checkpoints newer than it are removed first, so they can
  neither be rotated in place of a whole one nor mixed into the next save of the same step.
"""

import contextlib
import logging
import os
import re
import shutil
import signal
import threading
from pathlib import Path

import torch
import transformers.trainer
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

TRAINER_STATE_NAME = transformers.trainer.TRAINER_STATE_NAME  # Trainer writes it after the weights and optimizer

logger = logging.getLogger("avcanet.checkpoints")

CHECKPOINT_COMPLETE = "checkpoint_complete"  # the marker written last into a checkpoint folder
_CHECKPOINT_NAME = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")


def mark_complete(folder: str | os.PathLike) -> None:
    """Write the completeness marker last, atomically (a temporary file renamed), and flush it to disk."""
    marker = Path(folder) / CHECKPOINT_COMPLETE
    temporary = marker.with_name(f".{CHECKPOINT_COMPLETE}.tmp")
    with open(temporary, "w") as file:
        file.write("complete\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, marker)


def checkpoints_of(output_dir: str | os.PathLike) -> list[Path]:
    """The `checkpoint-N` folders of `output_dir`, by step."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [path for path in folder.iterdir() if path.is_dir() and _CHECKPOINT_NAME.match(path.name)]
    return sorted(found, key=lambda path: int(_CHECKPOINT_NAME.match(path.name).group(1)))


def is_complete(checkpoint: str | os.PathLike, markers_in_use: bool = True) -> bool:
    """Whether a checkpoint was fully written: its marker; for a folder of checkpoints written before markers
    existed (`markers_in_use` false), its trainer state, which Trainer writes after the weights and the optimizer."""
    checkpoint = Path(checkpoint)
    return (checkpoint / (CHECKPOINT_COMPLETE if markers_in_use else TRAINER_STATE_NAME)).is_file()


def last_complete_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """The complete checkpoint of `output_dir` with the highest step, or `None`."""
    checkpoints = checkpoints_of(output_dir)
    markers_in_use = any(is_complete(path) for path in checkpoints)
    complete = [path for path in checkpoints if is_complete(path, markers_in_use)]
    return complete[-1] if complete else None


def incomplete_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """The checkpoints of `output_dir` newer than its last complete one: saves that were interrupted."""
    last = last_complete_checkpoint(output_dir)
    step = int(_CHECKPOINT_NAME.match(last.name).group(1)) if last is not None else -1
    return [path for path in checkpoints_of(output_dir) if int(_CHECKPOINT_NAME.match(path.name).group(1)) > step]


def resume_checkpoint(requested: str | None, output_dir: str | os.PathLike, is_main_process: bool = True):
    """
    The checkpoint to resume from: `requested` when it is a path; the last complete one of `output_dir` when it is
    `last` or `true` (an error when there is none) or not given (a new run when there is none). Interrupted saves
    newer than the chosen checkpoint are removed by the main process.
    """
    if requested is not None and requested.lower() not in ("last", "true"):
        if not Path(requested).is_dir():
            raise ValueError(f"--resume_from_checkpoint {requested}: no such checkpoint folder.")
        markers_in_use = any(is_complete(path) for path in checkpoints_of(Path(requested).parent))
        if not is_complete(requested, markers_in_use):
            raise ValueError(f"--resume_from_checkpoint {requested} is incomplete (its save was interrupted).")
        return str(requested)
    last = last_complete_checkpoint(output_dir)
    if last is None and requested is not None:
        raise ValueError(f"--resume_from_checkpoint {requested}: {output_dir} has no complete checkpoint.")
    if is_main_process:
        for folder in incomplete_checkpoints(output_dir):
            logger.warning("Removing %s: its save was interrupted (no %s in it).", folder, CHECKPOINT_COMPLETE)
            shutil.rmtree(folder, ignore_errors=True)
    return str(last) if last is not None else None


@contextlib.contextmanager
def deferred_rotation():
    """Hold back the deletion of old checkpoints that Trainer's `_save_checkpoint` ends with; the calls are
    collected in the list yielded, to run once the new checkpoint is marked complete."""
    pending = []
    rotate = transformers.trainer.rotate_checkpoints
    transformers.trainer.rotate_checkpoints = lambda *args, **kwargs: pending.append((args, kwargs))
    try:
        yield pending
    finally:
        transformers.trainer.rotate_checkpoints = rotate


def rotate(pending: list) -> None:
    for args, kwargs in pending:
        transformers.trainer.rotate_checkpoints(*args, **kwargs)


class PreemptionCallback(TrainerCallback):
    """
    On SIGTERM, a full checkpoint at the end of the current optimizer step, then the end of training. The signal
    handler only sets a flag (it runs between two Python bytecodes, maybe inside a save); the decision is taken at
    `on_step_end`, where all processes take it together (a process that saved alone would hang the others). A
    second SIGTERM while that checkpoint is written is only logged. `stopped_at` is the step saved, else `None`.
    """

    def __init__(self):
        self.requested = False
        self.stopped_at: int | None = None
        self._previous_handler = None
        self._saved_step: int | None = None

    def _handle(self, signum, frame):
        if not self.requested:
            logger.warning("SIGTERM received: saving a checkpoint at the end of this step, then stopping.")
        self.requested = True

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGTERM, self._handle)

    def on_train_end(self, args, state, control, **kwargs):
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)
            self._previous_handler = None

    def _agreed(self, args) -> bool:
        if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return self.requested
        flag = torch.tensor([float(self.requested)], device=args.device)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
        return bool(flag.item())

    def on_step_end(self, args, state, control, **kwargs):
        if self.stopped_at is None and self._agreed(args):
            self.requested = True
            control.should_save = True
            control.should_training_stop = True
            self.stopped_at = state.global_step

    def on_save(self, args, state, control, **kwargs):
        self._saved_step = state.global_step

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.stopped_at is not None and self._saved_step == state.global_step:
            control.should_save = False  # this step's checkpoint is already written


__all__ = [
    "CHECKPOINT_COMPLETE",
    "PreemptionCallback",
    "deferred_rotation",
    "is_complete",
    "last_complete_checkpoint",
    "mark_complete",
    "resume_checkpoint",
    "rotate",
]
