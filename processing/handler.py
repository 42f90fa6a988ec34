"""Custom handler for Hugging Face Inference Endpoints (`handler.py` at the root of every saved AV-CANet folder).

The endpoint calls `EndpointHandler(path)(data)` with `data = {"inputs": <video>, "parameters": {...}}`:

    {"inputs": "<base64 of an mp4>", "parameters": {"top_k": 3, "timeline": true}}   # JSON request
    {"inputs": b"<mp4 bytes>"}                                                      # binary request (video/mp4)

and returns the pipeline's answer: `[{"label", "score", "polarity", "audio", "truncated"}, ...]`, or with `timeline`
true `{"labels": [...], "timeline": [{"start", "end", "label", "score", ...}, ...], "audio", "truncated"}`. A request
it cannot serve (not base64, not a video, bad parameters) gets `{"error": "<the cause>", "status": 400}`, never a
traceback.

A folder with `model.onnx` (written by `examples/export_onnx.py`) is served by onnxruntime; any other saved folder by
the PyTorch model through `pipeline("video-classification", trust_remote_code=True)`. This file imports nothing of
its folder directly: Inference Endpoints loads it alone.
"""

import base64
import binascii
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


class EndpointHandler:
    def __init__(self, path: str = ""):
        folder = Path(path or ".")
        if (folder / "model.onnx").is_file():
            from transformers.dynamic_module_utils import get_class_from_dynamic_module

            onnx_model = get_class_from_dynamic_module("onnx_avcanet.AVCANetOnnxModel", str(folder))
            self.model = onnx_model.from_pretrained(folder)
            self.predict = self.model.predict
        else:
            from transformers import pipeline

            self.model = pipeline("video-classification", model=str(folder), trust_remote_code=True)
            self.predict = self.model

    def __call__(self, data: dict):
        try:
            video, top_k, timeline = self.parse(data)
        except ValueError as error:
            return {"error": str(error), "status": 400}
        try:
            return self.predict(video, top_k=top_k, timeline=timeline)
        except (ValueError, OSError) as error:  # the processor's VideoDecodingError names the cause
            return {"error": f"the video could not be read: {error}", "status": 400}
        except Exception as error:  # a decoder failing in an unforeseen way: still an answer, logged with its trace
            logger.exception("AV-CANet handler failed")
            return {"error": f"{type(error).__name__}: {error}", "status": 500}

    @staticmethod
    def parse(data) -> tuple[bytes, int, bool]:
        """The video bytes, `top_k` and `timeline` of a request; a ValueError naming what is wrong otherwise."""
        if not isinstance(data, dict) or "inputs" not in data:
            raise ValueError('the request must be {"inputs": <base64 string or bytes>, "parameters": {...}}')
        video = data["inputs"]
        if isinstance(video, str):
            if video.startswith("data:") and "," in video:  # a data URL: data:video/mp4;base64,....
                video = video.split(",", 1)[1]
            try:
                video = base64.b64decode(video, validate=True)
            except (binascii.Error, ValueError) as error:
                raise ValueError(f"inputs is a string but not base64 ({error})") from None
        elif isinstance(video, (bytearray, memoryview)):
            video = bytes(video)
        if not isinstance(video, bytes):
            raise ValueError(f"inputs must be a base64 string or bytes, got {type(video).__name__}")
        if not video:
            raise ValueError("inputs is empty")
        parameters = data.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ValueError(f"parameters must be an object, got {type(parameters).__name__}")
        unknown = set(parameters) - {"top_k", "timeline"}
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}: use top_k and timeline")
        top_k = parameters.get("top_k", 5)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        timeline = parameters.get("timeline", False)
        if not isinstance(timeline, bool):
            raise ValueError(f"timeline must be true or false, got {timeline!r}")
        return video, top_k, timeline
