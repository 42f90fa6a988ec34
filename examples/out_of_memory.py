"""
Out of memory in `examples/train.py`: a message that names the batch and the levers, instead of a traceback.

    with out_of_memory_advice(training_args):
        trainer.train()

GPU (`torch.OutOfMemoryError`) and CPU allocator failures ("DefaultCPUAllocator: not enough memory") end the run with
`SystemExit` and the message. A process the Linux OOM killer ends gets SIGKILL and can print nothing: the shell shows
"Killed" (exit status 137); the same levers apply.
"""

import contextlib
import logging

import torch

logger = logging.getLogger("avcanet.train")

# what PyTorch's and accelerate's allocators say when an allocation fails (accelerate's `should_reduce_batch_size`)
OUT_OF_MEMORY_MESSAGES = (
    "out of memory",
    "DefaultCPUAllocator: can't allocate memory",
    "DefaultCPUAllocator: not enough memory",
    "CUDNN_STATUS_NOT_SUPPORTED",
    "cuDNN error",
)


def is_out_of_memory(error: BaseException) -> bool:
    if isinstance(error, torch.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and len(error.args) == 1 and any(
        message in str(error.args[0]) for message in OUT_OF_MEMORY_MESSAGES
    )


def out_of_memory_message(args, phase: str = "training") -> str:
    """The batch that did not fit and what to change, for `TrainingArguments` `args`."""
    training = phase == "training"
    per_device = args.per_device_train_batch_size if training else args.per_device_eval_batch_size
    device = str(args.device)
    lines = [f"Out of memory while {phase} at a batch of {per_device} videos per device ({device})."]
    if training:
        accumulation, world = args.gradient_accumulation_steps, args.world_size
        effective = per_device * accumulation * world
        lines[0] += (f" The effective batch is {effective} ({per_device} per device x {accumulation} accumulation "
                     f"steps x {world} processes).")  # fmt: skip
        levers = []
        if not args.gradient_checkpointing:
            levers.append("--gradient_checkpointing true: recompute each Swin block in the backward pass "
                          "(about a third of the activation memory for ~25 % more time)")  # fmt: skip
        if not (args.bf16 or args.fp16):
            levers.append("--bf16 true: bf16 autocast halves the activations (and is faster where the hardware has "
                          "bf16 matrix units)")  # fmt: skip
        half = max(1, per_device // 2)
        levers.append(f"--per_device_train_batch_size {half} --gradient_accumulation_steps {accumulation * per_device // half}: "
                      "the same effective batch in smaller pieces")  # fmt: skip
        if not args.auto_find_batch_size:
            levers.append("--auto_find_batch_size true: Trainer halves the per-device batch until a step fits")
    else:
        levers = [f"--per_device_eval_batch_size {max(1, per_device // 2)}"]
    lines.append("Try, in this order:")
    lines += [f"  {lever}" for lever in levers]
    lines.append("docs/performance.md lists the memory each setting takes.")
    return "\n".join(lines)


@contextlib.contextmanager
def out_of_memory_advice(args, phase: str = "training"):
    """Turns an out-of-memory error raised inside the block into `SystemExit` with `out_of_memory_message`."""
    try:
        yield
    except (torch.OutOfMemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        message = out_of_memory_message(args, phase) + f"\n(the allocator said: {first_line})"
        logger.error(message)
        raise SystemExit(message) from None
