"""Tracing the model (torch.export, the ONNX exporter, torch.compile) must leave later eager calls untouched."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modeling_avcanet import AVCANetForVideoClassification
from tiny import make_inputs, tiny_config

TESTS = Path(__file__).parent

# two blocks per stage: the second one shifts its windows, so the shift mask is built too
SHIFTED = dict(swin_depths=[2, 2])

FIRST_CALL = """
import sys
import pytest
import torch
from modeling_avcanet import AVCANetForVideoClassification
from tiny import make_inputs, tiny_config

torch.manual_seed(0)
config = tiny_config(swin_depths=[2, 2])
model = AVCANetForVideoClassification(config).eval()
inputs = make_inputs(config)
with torch.no_grad():  # the export is the very first call of this process
    if sys.argv[2] == "torch.export":
        torch.export.export(model, (), inputs, strict=False)
    else:  # the dynamo ONNX exporter; its graph optimiser plays no part in the tracing: skipped, it is slow
        torch.onnx.export(model, (), sys.argv[3], kwargs=inputs, dynamo=True, optimize=False)
    logits = model(**inputs).logits
assert type(logits) is torch.Tensor, type(logits)
torch.save(logits, sys.argv[1])
"""


@pytest.mark.parametrize("exporter", ["torch.export", "onnx"])
def test_an_export_as_the_first_call_leaves_real_tensors_for_eager_calls(exporter, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    command = [sys.executable, "-c", FIRST_CALL, str(tmp_path / "logits.pt"), exporter, str(tmp_path / "model.onnx")]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert exporter != "onnx" or (tmp_path / "model.onnx").stat().st_size > 0
    torch.manual_seed(0)
    config = tiny_config(**SHIFTED)
    model = AVCANetForVideoClassification(config).eval()
    with torch.no_grad():
        expected = model(**make_inputs(config)).logits
    torch.testing.assert_close(torch.load(tmp_path / "logits.pt", weights_only=True), expected, rtol=0, atol=0)


def test_masks_made_under_a_fake_mode_are_not_cached():
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    config = tiny_config(**SHIFTED)
    model = AVCANetForVideoClassification(config).eval()
    inputs = make_inputs(config, batch_size=1)
    with FakeTensorMode(allow_non_fake_inputs=True) as mode, torch.no_grad():
        fake = model(**{name: mode.from_tensor(value) for name, value in inputs.items()}).logits
    assert isinstance(fake, FakeTensor)
    with torch.no_grad():
        logits = model(**inputs).logits
    assert not isinstance(logits, FakeTensor) and torch.isfinite(logits).all()


def test_compile_fullgraph_traces_inference_in_one_graph_with_eager_outputs():
    # backend="eager": dynamo's capture (fullgraph raises on any graph break) without inductor's slow code generation
    torch._dynamo.reset()
    config = tiny_config(**SHIFTED)
    model = AVCANetForVideoClassification(config).eval()
    inputs = make_inputs(config)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad():
        expected, actual = model(**inputs), compiled(**inputs)
    for name in ("logits", "segment_logits", "audio_segment_logits", "visual_segment_logits"):
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0)
    torch._dynamo.reset()
