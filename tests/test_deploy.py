"""Deployment: examples/export_onnx.py (dynamo export, dynamic batch, onnxruntime parity on real files, int8),
`AVCANetOnnxModel`, `predict.py --onnx`, and the Inference Endpoints `handler.py` every saved folder carries."""

import base64
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from media import make_video
from saved_model import save_tiny_model

from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification
from processing import AVCANetProcessor, VideoDecodingError
from processing.onnx_avcanet import ONNX_INPUTS, ONNX_OUTPUTS, AVCANetOnnxModel

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))
import export_onnx  # noqa: E402
import predict  # noqa: E402
from push_to_hub import files_to_upload, write_model_card  # noqa: E402

LABELS = {"Joy": "positive", "Calm": "neutral", "Tension": "negative", "Sadness": "negative"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model"), label_polarities=LABELS, logit_scale=200)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    """Four real clips (one without sound) of different content, and a garbage file."""
    folder = tmp_path_factory.mktemp("videos")
    paths = [make_video(folder / f"clip{index}.mp4", num_frames=16, fps=8, width=40, height=32, audio_rate=16000,
                        audio_channels=1, burn_frame_index=False, with_audio=index != 2, seed=index)
             for index in range(4)]  # fmt: skip
    (folder / "garbage.mp4").write_bytes(b"not a video at all " * 64)
    return paths + [folder / "garbage.mp4"]


@pytest.fixture(scope="module")
def onnx_dir(model_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("onnx")
    assert export_onnx.main([str(model_dir), str(folder), "--int8", "--calibration_clips", "1"]) == 0
    return folder


def eager_outputs(model_dir, inputs) -> dict[str, np.ndarray]:
    model = AVCANetForVideoClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        outputs = model(**{name: inputs[name] for name in ONNX_INPUTS})
    return {name: outputs[name].numpy() for name in ONNX_OUTPUTS}


def test_every_saved_folder_carries_the_handler_and_uploads_it(model_dir, tmp_path):
    assert {"handler.py", "onnx_avcanet.py"} <= {path.name for path in model_dir.iterdir()}
    write_model_card(model_dir, AVCANetConfig.from_pretrained(model_dir), {}, "confusion_matrix.png", "me/model")
    assert "handler.py" in {path.name for path in files_to_upload(model_dir)}
    card = (model_dir / "README.md").read_text()
    assert "## Deploy" in card and "handler.py" in card and "export_onnx.py" in card


def test_export_names_inputs_and_outputs_with_a_dynamic_batch(onnx_dir, model_dir, videos):
    graph = onnx.load(str(onnx_dir / "model.onnx"), load_external_data=False).graph
    assert [node.name for node in graph.input] == list(ONNX_INPUTS)
    assert [node.name for node in graph.output] == list(ONNX_OUTPUTS)
    for node in [*graph.input, *graph.output]:
        batch = node.type.tensor_type.shape.dim[0]
        assert batch.dim_param and not batch.HasField("dim_value"), node.name
    # the folder is self-contained: the processor's files and code sit beside the model
    assert {"config.json", "processor_config.json", "handler.py", "onnx_avcanet.py"} <= {
        path.name for path in onnx_dir.iterdir()
    }
    processor = AVCANetProcessor.from_pretrained(onnx_dir)
    model = AVCANetOnnxModel.from_pretrained(onnx_dir)
    for rows in (1, 3):  # exported with a batch of 4 clips
        inputs = processor(videos=[str(path) for path in videos[:rows]])
        assert rows < 3 or inputs["audio_mask"].tolist() == [1, 1, 0]  # the silent clip's path is exported too
        expected, actual = eager_outputs(model_dir, inputs), model.run(inputs)
        for name in ONNX_OUTPUTS:
            assert actual[name].shape == expected[name].shape
            np.testing.assert_allclose(actual[name], expected[name], rtol=0, atol=1e-4, err_msg=name)


def test_int8_copy_is_smaller_and_agrees_with_fp32(onnx_dir, videos):
    fp32, int8 = onnx_dir / "model.onnx", onnx_dir / "model_int8.onnx"
    assert int8.stat().st_size <= fp32.stat().st_size / 3
    quantized = AVCANetOnnxModel.from_pretrained(onnx_dir, int8=True)
    reference = AVCANetOnnxModel.from_pretrained(onnx_dir)
    inputs = reference.processor(videos=[str(path) for path in videos[:4]])
    top_fp32 = reference.run(inputs)["logits"].argmax(-1)
    top_int8 = quantized.run(inputs)["logits"].argmax(-1)
    assert (top_fp32 == top_int8).mean() >= 0.75, (top_fp32, top_int8)


def test_the_onnx_model_answers_as_the_pipeline(onnx_dir, model_dir, videos):
    from transformers import pipeline

    classifier = pipeline("video-classification", model=str(model_dir), trust_remote_code=True)
    model = AVCANetOnnxModel.from_pretrained(onnx_dir)
    expected = classifier(str(videos[0]), top_k=2, timeline=True)
    actual = model.predict(str(videos[0]), top_k=2, timeline=True)
    assert [label["label"] for label in actual["labels"]] == [label["label"] for label in expected["labels"]]
    assert actual["labels"][0]["score"] == pytest.approx(expected["labels"][0]["score"], abs=1e-4)
    assert [entry["label"] for entry in actual["timeline"]] == [entry["label"] for entry in expected["timeline"]]
    assert (actual["audio"], actual["truncated"]) == (expected["audio"], expected["truncated"])
    assert len(model.predict([str(path) for path in videos[:3]], top_k=1, batch_size=2)) == 3


def test_predict_with_onnx_writes_the_lines_of_the_pytorch_model(onnx_dir, model_dir, videos, tmp_path):
    paths = [str(path) for path in videos]  # the last one cannot be read: exit status 1, and the run goes on
    assert predict.main([str(model_dir), *paths, "--timeline", "--output", str(tmp_path / "eager.jsonl")]) == 1
    assert predict.main(["--onnx", str(onnx_dir), *paths, "--timeline", "--output", str(tmp_path / "onnx.jsonl")]) == 1
    eager = [json.loads(line) for line in (tmp_path / "eager.jsonl").read_text().splitlines()]
    exported = [json.loads(line) for line in (tmp_path / "onnx.jsonl").read_text().splitlines()]
    assert [line["path"] for line in exported] == paths
    assert "garbage.mp4" in exported[-1]["error"]
    for ours, theirs in zip(exported[:-1], eager[:-1]):
        assert ours["labels"][0]["label"] == theirs["labels"][0]["label"] and ours["polarity"] == theirs["polarity"]
        assert (ours["audio"], ours["truncated"]) == (theirs["audio"], theirs["truncated"])
        assert [entry["label"] for entry in ours["timeline"]] == [entry["label"] for entry in theirs["timeline"]]
    assert predict.main(["--onnx", str(onnx_dir), paths[0], "--int8", "--output", str(tmp_path / "int8.jsonl")]) == 0
    assert "labels" in json.loads((tmp_path / "int8.jsonl").read_text())
    windows = tmp_path / "windows.jsonl"  # window inference runs the export too (2 s clip, 1 s windows)
    assert predict.main(["--onnx", str(onnx_dir), paths[0], "--window_seconds", "1", "--output", str(windows)]) == 0
    assert [entry["start"] for entry in json.loads(windows.read_text())["windows"]] == [0.0, 1.0]


def load_handler(folder):
    """`handler.py` imported from the folder alone, as Inference Endpoints does."""
    spec = importlib.util.spec_from_file_location(f"handler_{abs(hash(str(folder)))}", Path(folder) / "handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.EndpointHandler(str(folder))


@pytest.mark.parametrize("served", ["pytorch", "onnx"])
def test_handler_answers_base64_bytes_and_bad_input(served, model_dir, onnx_dir, videos):
    handler = load_handler(model_dir if served == "pytorch" else onnx_dir)
    video = videos[0].read_bytes()
    answer = handler({"inputs": base64.b64encode(video).decode(), "parameters": {"top_k": 2}})
    assert [set(label) for label in answer] == [{"label", "score", "polarity", "audio", "truncated"}] * 2
    with_timeline = handler({"inputs": video, "parameters": {"top_k": 1, "timeline": True}})
    assert with_timeline["labels"][0]["label"] == answer[0]["label"] and len(with_timeline["timeline"]) == 4
    assert handler({"inputs": "data:video/mp4;base64," + base64.b64encode(video).decode()})[0] == answer[0]

    garbage = handler({"inputs": videos[-1].read_bytes()})
    assert garbage["status"] == 400 and "could not be read" in garbage["error"]
    assert "not base64" in handler({"inputs": "clip.mp4 is not base64!"})["error"]
    assert "top_k" in handler({"inputs": video, "parameters": {"top_k": "three"}})["error"]
    assert "unknown parameters" in handler({"inputs": video, "parameters": {"threshold": 0.5}})["error"]
    assert "inputs" in handler({"video": video})["error"]
    assert "empty" in handler({"inputs": b""})["error"]


def assert_same_answer(actual, expected, where="answer"):
    """The same keys, labels and flags, and every score within 1e-4 (the window answers round to 4 decimals)."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), where
        for key in expected:
            assert_same_answer(actual[key], expected[key], f"{where}[{key!r}]")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), where
        for index, (ours, theirs) in enumerate(zip(actual, expected)):
            assert_same_answer(ours, theirs, f"{where}[{index}]")
    elif isinstance(expected, float):
        assert abs(actual - expected) <= 1e-4 + 1e-9, (where, actual, expected)
    else:
        assert actual == expected and type(actual) is type(expected), (where, actual, expected)


PIPELINE_CALLS = {  # name: (which videos, options)
    "top_k": (0, {"top_k": 2}),
    "timeline, no sound": (2, {"timeline": True}),
    "batch": (slice(0, 4), {"top_k": 3, "batch_size": 2}),
    "windows": (0, {"window_seconds": 1.0, "timeline": True}),
    "views": (1, {"num_clips": 2, "top_k": 2}),
}


@pytest.fixture(scope="module")
def pytorch_pipeline(model_dir):
    from transformers import pipeline

    return pipeline("video-classification", model=str(model_dir), trust_remote_code=True)


def test_the_pipeline_runs_the_export_folder_with_the_pytorch_answers(onnx_dir, pytorch_pipeline, videos):
    from transformers import pipeline

    classifier = pipeline("video-classification", model=str(onnx_dir), trust_remote_code=True)
    # the export's config names the onnxruntime model: no PyTorch model (nor its code or weights) on this path
    assert type(classifier.model).__name__ == "AVCANetOnnxModel" and not isinstance(classifier.model, torch.nn.Module)
    assert not list(onnx_dir.glob("modeling_*.py")) and not list(onnx_dir.glob("*.safetensors"))
    assert type(classifier).__name__ == type(pytorch_pipeline).__name__ == "AVCANetVideoClassificationPipeline"
    for name, (which, options) in PIPELINE_CALLS.items():
        chosen = [str(path) for path in videos[which]] if isinstance(which, slice) else str(videos[which])
        assert_same_answer(classifier(chosen, **options), pytorch_pipeline(chosen, **options), name)

    for classify in (classifier, pytorch_pipeline):  # the same clear error, naming the file and the cause
        with pytest.raises(ValueError, match="garbage.mp4': FFmpeg cannot open it") as raised:
            classify(str(videos[-1]))
        assert type(raised.value).__name__ == "VideoDecodingError"

    quantized = pipeline("video-classification", model=str(onnx_dir), trust_remote_code=True,
                         model_kwargs={"int8": True})  # fmt: skip
    assert Path(quantized.model.session._model_path).name == "model_int8.onnx"
    assert [set(label) for label in quantized(str(videos[0]), top_k=2)] == [
        {"label", "score", "polarity", "audio", "truncated"}
    ] * 2


def test_the_pipeline_takes_an_onnx_model_object(onnx_dir, pytorch_pipeline, videos):
    from transformers import pipeline

    from processing.pipeline_avcanet import AVCANetVideoClassificationPipeline

    model = AVCANetOnnxModel.from_pretrained(onnx_dir)
    classifier = pipeline("video-classification", model=model, pipeline_class=AVCANetVideoClassificationPipeline)
    assert classifier.model is model and classifier.processor is model.processor
    for name in ("top_k", "batch", "windows"):
        which, options = PIPELINE_CALLS[name]
        chosen = [str(path) for path in videos[which]] if isinstance(which, slice) else str(videos[which])
        assert_same_answer(classifier(chosen, **options), pytorch_pipeline(chosen, **options), name)
    with pytest.raises(VideoDecodingError, match="garbage.mp4"):
        classifier(str(videos[-1]))


def test_the_pipeline_runs_an_export_from_the_hub(onnx_dir, videos, tmp_path):
    """A Hub repository holding an export (here: in the local Hub cache, offline) runs as the folder does; its
    `AVCANetOnnxModel` fetches the one ONNX file it needs."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repository = tmp_path / "hub" / "models--me--avcanet-onnx"
    shutil.copytree(onnx_dir, repository / "snapshots" / commit)
    (repository / "refs").mkdir()
    (repository / "refs" / "main").write_text(commit)
    code = (
        "import json, sys\nfrom transformers import pipeline\n"
        "classifier = pipeline('video-classification', model='me/avcanet-onnx', trust_remote_code=True)\n"
        "print(json.dumps([type(classifier.model).__name__, classifier(sys.argv[1], top_k=2)]))\n"
    )
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "TRANSFORMERS_"))}
    environment |= {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path / "home")}
    result = subprocess.run([sys.executable, "-c", code, str(videos[0])], env=environment, capture_output=True,
                            text=True, timeout=300, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    name, answer = json.loads(result.stdout.splitlines()[-1])
    assert name == "AVCANetOnnxModel"
    assert_same_answer(answer, AVCANetOnnxModel.from_pretrained(onnx_dir).predict(str(videos[0]), top_k=2))
