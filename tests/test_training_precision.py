"""examples/train.py with --bf16 learns the synthetic set as fp32 does; running out of memory ends with advice, not a
traceback."""

import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch

from tests.test_training import REPO, environment, train

sys.path.insert(0, str(REPO / "examples"))
from out_of_memory import out_of_memory_advice, out_of_memory_message  # noqa: E402

# a short run the CPU-demo model learns from (the synthetic label needs both modalities)
SHORT_RUN = ["--max_steps", "24", "--learning_rate", "1e-3", "--warmup_steps", "2", "--synthetic_train_per_class", "8",
             "--per_device_train_batch_size", "8", "--save_strategy", "no", "--synthetic_test_per_class", "4"]  # fmt: skip


def test_bf16_training_reaches_the_test_accuracy_of_fp32(tmp_path):
    accuracies = {}
    for precision in ("fp32", "bf16"):
        output_dir = tmp_path / precision
        # the bf16 run reads the synthetic set the fp32 run generated (same videos, no second generation)
        data = [] if precision == "fp32" else ["--dataset_dir", str(tmp_path / "fp32" / "data" / "synthetic")]
        train(tmp_path, output_dir, *SHORT_RUN, *data, *(["--bf16", "true"] if precision == "bf16" else []))
        accuracies[precision] = json.loads((output_dir / "test_results.json").read_text())["test_accuracy"]
    print(accuracies)
    # 16 test videos, 4 classes: both learn (well above chance), and bf16 within one video of fp32
    assert accuracies["fp32"] >= 0.5, accuracies
    assert abs(accuracies["bf16"] - accuracies["fp32"]) <= 1 / 16 + 1e-9, accuracies


def training_args(**overrides):
    defaults = dict(per_device_train_batch_size=8, per_device_eval_batch_size=16, gradient_accumulation_steps=2,
                    world_size=1, device="cuda:0", gradient_checkpointing=False, bf16=False, fp16=False,
                    auto_find_batch_size=False)  # fmt: skip
    return SimpleNamespace(**{**defaults, **overrides})


@pytest.mark.parametrize(
    "error",
    [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
     RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: not enough memory: you tried to allocate 1")],
)  # fmt: skip
def test_out_of_memory_becomes_a_message_naming_the_batch_and_the_levers(error):
    with pytest.raises(SystemExit) as exit_info:
        with out_of_memory_advice(training_args()):
            raise error
    message = str(exit_info.value.code)
    assert "batch of 8 videos per device" in message and "effective batch is 16" in message
    for lever in ("--gradient_checkpointing", "--bf16", "--gradient_accumulation_steps 4", "--auto_find_batch_size"):
        assert lever in message, lever
    assert str(error).split(".")[0][:20] in message  # what the allocator said


def test_levers_already_pulled_are_not_offered_again():
    message = out_of_memory_message(training_args(gradient_checkpointing=True, bf16=True, auto_find_batch_size=True))
    assert "--gradient_checkpointing" not in message and "--bf16" not in message and "--auto_find" not in message
    assert "--per_device_train_batch_size 4 --gradient_accumulation_steps 4" in message


def test_other_errors_pass_through():
    with pytest.raises(RuntimeError, match="shape mismatch"):
        with out_of_memory_advice(training_args()):
            raise RuntimeError("shape mismatch")


OUT_OF_MEMORY_RUN = textwrap.dedent(
    """
    import sys
    import torch
    import train
    from modeling_avcanet import AVCANetForVideoClassification

    def forward(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    AVCANetForVideoClassification.forward = forward
    train.main(sys.argv[1:])
    """
)


def test_train_py_out_of_memory_ends_with_the_message_and_no_traceback(tmp_path):
    script = tmp_path / "oom_train.py"
    script.write_text(OUT_OF_MEMORY_RUN)
    command = [sys.executable, str(script), "--output_dir", str(tmp_path / "run"), "--use_cpu", "true",
               "--synthetic_train_per_class", "2", "--synthetic_eval_per_class", "1", "--synthetic_test_per_class", "1",
               "--per_device_train_batch_size", "4", "--eval_strategy", "no", "--load_best_model_at_end", "false",
               "--dataloader_num_workers", "0", "--max_steps", "2"]  # fmt: skip
    env = environment(tmp_path)
    env["PYTHONPATH"] = f"{REPO / 'examples'}:{env['PYTHONPATH']}"
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Out of memory while training at a batch of 4 videos per device" in result.stderr
    assert "--gradient_checkpointing" in result.stderr and "--auto_find_batch_size" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
