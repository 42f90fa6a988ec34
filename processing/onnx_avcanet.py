"""Run an AV-CANet exported by `examples/export_onnx.py` with onnxruntime: the processor makes the inputs, an
onnxruntime session (no PyTorch model) makes the logits, and the answers are the pipeline's.

```python
from processing.onnx_avcanet import AVCANetOnnxModel

model = AVCANetOnnxModel.from_pretrained("outputs/avcanet-onnx")            # model.onnx + the processor's files
model.predict("clip.mp4", top_k=2)                                          # [{'label', 'score', 'polarity'}, ...]
model.predict(["a.mp4", b"<mp4 bytes>"], timeline=True)                     # one {'labels', 'timeline'} per video
model.run(processor_outputs)                                                # numpy: logits, segment_logits, ...
```

transformers' `pipeline()` runs it too, with every option of the PyTorch pipeline (windows and views included):

```python
pipeline("video-classification", model="outputs/avcanet-onnx", trust_remote_code=True)   # model_kwargs={"int8": True}
pipeline("video-classification", model=model, pipeline_class=AVCANetVideoClassificationPipeline)  # pipeline_avcanet
```

An export folder carries this file (the processor's code brings it along) and its `config.json` names this class as
the folder's `AutoModelForVideoClassification` (`examples/export_onnx.py` writes it so), so the Auto class, and with
it `pipeline()` on the folder, loads an `AVCANetOnnxModel` as remote code, the package not installed, and no PyTorch
model. For that the class has what transformers asks of a model besides `from_pretrained`: `config` (id2label,
num_labels, label_polarities), `device`, `to()` and `eval()` (both no-ops: onnxruntime's providers place the session),
`can_generate()`, `register_for_auto_class()`, and a call with the processor's outputs. A model object needs
`pipeline_class=`: `pipeline()` picks the class from the task before it looks at the model, and reads the AV-CANet
pipeline's name (`custom_pipelines`) only from a folder's `config.json`. The Inference Endpoints `handler.py` loads
this class with `get_class_from_dynamic_module("onnx_avcanet.AVCANetOnnxModel", folder)` when the folder holds a
`model.onnx`.
"""

import json
import os
from pathlib import Path

import numpy as np
import torch

from .pipeline_avcanet import as_processor_input, segment_timeline, video_status

try:  # optional: checkpoints carry this file, and loading their processor must not need onnxruntime
    import onnxruntime
except ImportError:  # pragma: no cover - reported when a session is made
    onnxruntime = None

ONNX_INPUTS = ("pixel_values_videos", "input_features", "audio_mask")
ONNX_OUTPUTS = ("logits", "segment_logits", "audio_segment_logits", "visual_segment_logits")


class AVCANetOnnxConfig:
    """What the answers need from an AV-CANet `config.json`: labels and their polarities (no model code)."""

    def __init__(self, config_dict: dict):
        self.id2label = {int(index): label for index, label in config_dict["id2label"].items()}
        self.label2id = {label: index for index, label in self.id2label.items()}
        self.num_labels = len(self.id2label)
        self.label_polarities = config_dict.get("label_polarities") or {}
        self.image_size = config_dict.get("image_size")
        self.synthetic_demo = config_dict.get("synthetic_demo", False)  # examples/model_notice.py

    @classmethod
    def from_pretrained(cls, folder) -> "AVCANetOnnxConfig":
        return cls(json.loads((Path(folder) / "config.json").read_text()))


class AVCANetOnnxOutput(dict):
    """The session's outputs as torch tensors, by name and as attributes (`outputs.logits`), like the model's."""

    __getattr__ = dict.__getitem__


class AVCANetOnnxModel:
    r"""
    An exported AV-CANet (`model.onnx`, or `model_int8.onnx` with `int8=True`) in an onnxruntime session, with the
    processor saved beside it.

    Args:
        folder: the export folder (`examples/export_onnx.py MODEL OUTPUT_DIR` writes it).
        file_name: the ONNX file in `folder`; default `model.onnx` (`model_int8.onnx` with `int8=True`).
        providers: onnxruntime execution providers, e.g. `["CUDAExecutionProvider", "CPUExecutionProvider"]`;
            default the CPU.
        session_options: an `onnxruntime.SessionOptions` (threads, graph optimisation level).

    `predict(videos, top_k, timeline)` answers as `pipeline("video-classification", ...)` does; `run(inputs)` maps
    processor outputs to numpy outputs; calling the object with processor outputs returns torch tensors, so code
    written for the PyTorch model (`examples/predict.py`) uses it unchanged.
    """

    device = torch.device("cpu")  # where inputs go: onnxruntime takes host arrays, whatever its provider
    input_modalities = ("video", "audio")

    def __init__(self, folder, file_name: str | None = None, int8: bool = False, providers=None, session_options=None):
        if onnxruntime is None:
            raise ImportError("AVCANetOnnxModel needs onnxruntime: pip install onnxruntime (or onnxruntime-gpu).")
        from .processing_avcanet import AVCANetProcessor  # here: the processor's module imports this one

        self.folder = Path(folder)
        path = self.folder / (file_name or ("model_int8.onnx" if int8 else "model.onnx"))
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such ONNX file; write one with examples/export_onnx.py.")
        self.session = onnxruntime.InferenceSession(
            str(path), sess_options=session_options, providers=providers or ["CPUExecutionProvider"]
        )
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.config = AVCANetOnnxConfig.from_pretrained(self.folder)
        self.processor = AVCANetProcessor.from_pretrained(self.folder)

    @classmethod
    def from_pretrained(
        cls, folder: str | os.PathLike, *, file_name=None, int8=False, providers=None, session_options=None, **unused
    ) -> "AVCANetOnnxModel":
        """`unused`: what `AutoModelForVideoClassification.from_pretrained` passes along when an export's
        `config.json` names this class (`config`, `revision`, `trust_remote_code`, `dtype`...): labels come from the
        folder's `config.json`, and an export has one dtype. `folder` may be a Hub repository id: its JSON and code
        files and the one ONNX file are downloaded (`revision`, `token`, `cache_dir` as `from_pretrained` takes them)."""
        if not Path(folder).is_dir():
            from huggingface_hub import snapshot_download

            patterns = ["*.json", "*.py", file_name or ("model_int8.onnx" if int8 else "model.onnx")]
            hub = {name: unused.get(name) for name in ("revision", "token", "cache_dir")}
            folder = snapshot_download(str(folder), allow_patterns=patterns, **hub)
        return cls(folder, file_name, int8, providers, session_options)

    @classmethod
    def register_for_auto_class(cls, auto_class="AutoModelForVideoClassification"):
        """Called by the Auto class that loaded this class as remote code; the export's `config.json` names it."""

    # What transformers' `Pipeline` asks of its model besides `config`, `device` and calling it.
    def eval(self) -> "AVCANetOnnxModel":  # nothing to switch: an export is always in inference mode
        return self

    def to(self, *args, **kwargs) -> "AVCANetOnnxModel":  # the session's providers place it; inputs may be anywhere
        return self

    def can_generate(self) -> bool:
        return False

    def run(self, inputs) -> dict[str, np.ndarray]:
        """The four outputs (`ONNX_OUTPUTS`) of a batch of processor outputs (tensors or arrays; other keys such as
        `segment_time_spans` are ignored; a missing `audio_mask` means every clip has sound)."""
        feed = {}
        for name in self.input_names:
            value = inputs.get(name)
            if value is None and name == "audio_mask":
                value = np.ones(len(inputs["pixel_values_videos"]), dtype=np.int64)
            value = value.numpy(force=True) if isinstance(value, torch.Tensor) else np.asarray(value)  # any device
            feed[name] = value.astype(np.int64 if name == "audio_mask" else np.float32, copy=False)
        return dict(zip(ONNX_OUTPUTS, self.session.run(list(ONNX_OUTPUTS), feed)))

    def __call__(self, **inputs) -> AVCANetOnnxOutput:
        return AVCANetOnnxOutput({name: torch.from_numpy(value) for name, value in self.run(inputs).items()})

    def predict(self, videos, top_k: int = 5, timeline: bool = False, batch_size: int = 1):
        """The pipeline's answer for one video (a path, bytes, a binary file, decoded frames) or a list of them:
        per video its `top_k` `{"label", "score", "polarity", "audio", "truncated"}` dicts, best first, or with
        `timeline=True` `{"labels": ..., "timeline": segment_timeline(...), "audio", "truncated"}` (`video_status`).
        An unreadable video raises `VideoDecodingError`."""
        single = not isinstance(videos, (list, tuple))
        videos = [videos] if single else list(videos)
        answers = []
        for start in range(0, len(videos), batch_size):
            chunk = [as_processor_input(video) for video in videos[start : start + batch_size]]
            inputs = self.processor(videos=chunk, return_time_spans=True, return_video_status=True)
            outputs = self.run(inputs)
            for row in range(len(chunk)):
                answers.append(self._answer(outputs, inputs, row, top_k, timeline))
        return answers[0] if single else answers

    def _answer(self, outputs: dict, inputs, row: int, top_k: int, timeline: bool):
        logits = torch.from_numpy(outputs["logits"][row])
        scores, indices = logits.softmax(dim=-1).topk(min(top_k, self.config.num_labels))
        status = video_status(
            inputs["audio_mask"][row], inputs["video_truncated"][row], inputs["video_decoded_seconds"][row]
        )
        labels = []
        for score, index in zip(scores.tolist(), indices.tolist()):
            label = self.config.id2label[index]
            labels.append({"label": label, "score": score, "polarity": self.config.label_polarities.get(label)})
        if not timeline:
            return [{**entry, **status} for entry in labels]
        entries = segment_timeline(
            *(torch.from_numpy(outputs[name][row]) for name in ONNX_OUTPUTS[1:]),
            inputs["segment_time_spans"][row],
            self.config.id2label,
            has_audio=status["audio"],
        )
        return {"labels": labels, "timeline": entries, **status}


__all__ = ["AVCANetOnnxConfig", "AVCANetOnnxModel", "ONNX_INPUTS", "ONNX_OUTPUTS"]
