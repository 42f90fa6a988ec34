"""
Export a saved AV-CANet (folder or Hub id) to ONNX, check it in onnxruntime against the PyTorch model on real encoded
clips, and optionally write an int8 copy:

    python examples/export_onnx.py outputs/avcanet-demo outputs/avcanet-onnx
    python examples/export_onnx.py outputs/avcanet-demo outputs/avcanet-onnx --int8
    python examples/predict.py --onnx outputs/avcanet-onnx clip.mp4 --timeline

OUTPUT_DIR receives `model.onnx` (PyTorch's dynamo exporter, dynamic batch axis; inputs `pixel_values_videos`,
`input_features`, `audio_mask` as the processor names them; outputs `logits`, `segment_logits`,
`audio_segment_logits`, `visual_segment_logits`), the model's `config.json` and the processor's files (with their code,
`handler.py` included), so the folder is served as it is by `processing.onnx_avcanet.AVCANetOnnxModel`, by
`pipeline("video-classification", model=OUTPUT_DIR, trust_remote_code=True)` (its `config.json` names
`AVCANetOnnxModel` as the model class), by `predict.py --onnx` and by an Inference Endpoint. The check runs a batch of generated H.264+AAC clips (one without
sound) through the processor, then both models, and fails (exit status 1) when any output differs by more than
`--tolerance` (1e-4). With `--int8`, `model_int8.onnx` is onnxruntime's static QDQ quantization calibrated on such clips
or its dynamic quantization (`--int8_method`): `auto` tries both and keeps the fastest that agrees with the fp32 top-1
on at least 98 % of the clips.
"""

import argparse
import inspect
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForVideoClassification

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere: the repo's packages
from dataset_scripts.synthetic import generate_synthetic  # noqa: E402
from processing import AVCANetProcessor  # noqa: E402
from processing.onnx_avcanet import ONNX_INPUTS, ONNX_OUTPUTS  # noqa: E402

AGREEMENT_TARGET = 0.98


class AVCANetExportWrapper(torch.nn.Module):
    """The model with named tensor inputs and a tuple of the four outputs, as an ONNX graph has them."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values_videos, input_features, audio_mask):
        outputs = self.model(pixel_values_videos=pixel_values_videos, input_features=input_features,
                             audio_mask=audio_mask, return_dict=True)  # fmt: skip
        return tuple(outputs[name] for name in ONNX_OUTPUTS)


def write_config(config, output_dir: Path) -> None:
    """The model's `config.json`, with its code, whose `auto_map` names `AVCANetOnnxModel` as the folder's
    `AutoModelForVideoClassification`: `pipeline("video-classification", model=output_dir, trust_remote_code=True)`
    then runs the export, its pipeline class still the one `custom_pipelines` names (no PyTorch model code here)."""
    config.to_json_file(output_dir / "config.json")
    saved = json.loads((output_dir / "config.json").read_text())
    saved["auto_map"] = {"AutoConfig": saved["auto_map"]["AutoConfig"],
                         "AutoModelForVideoClassification": "onnx_avcanet.AVCANetOnnxModel"}  # fmt: skip
    (output_dir / "config.json").write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    shutil.copy(inspect.getfile(type(config)), output_dir)  # configuration_avcanet.py: AutoConfig's remote code


def make_clips(folder, per_class: int = 1, missing_audio_fraction: float = 0.25, seed: int = 1234) -> list[str]:
    """Real encoded clips (the synthetic set's H.264 + AAC mp4 files, some without an audio track) to check and
    calibrate with: `per_class` clips of each of its 4 classes."""
    generate_synthetic(folder, videos_per_class={"test": per_class}, missing_audio_fraction=missing_audio_fraction,
                       seed=seed)  # fmt: skip
    return [str(path) for path in sorted(Path(folder).rglob("*.mp4"))]


def processor_inputs(processor, videos) -> dict[str, torch.Tensor]:
    inputs = processor(videos=list(videos))
    inputs.setdefault("audio_mask", torch.ones(len(videos), dtype=torch.long))
    return {name: inputs[name] for name in ONNX_INPUTS}


def export(model, example_inputs: dict, path, opset: int | None = None) -> Path:
    """`model` to the ONNX file `path` with PyTorch's dynamo exporter; the batch axis of every input and output is
    dynamic (export with a batch of 2 or more: a batch of 1 would be specialised)."""
    path = Path(path)
    batch = torch.export.Dim("batch")
    with torch.no_grad():
        torch.onnx.export(
            AVCANetExportWrapper(model).eval(),
            (),
            str(path),
            kwargs=example_inputs,
            dynamo=True,
            input_names=list(ONNX_INPUTS),
            output_names=list(ONNX_OUTPUTS),
            dynamic_shapes={name: {0: batch} for name in ONNX_INPUTS},
            opset_version=opset,
            external_data=False,  # one self-contained file (the paper-size model is ~240 MB, far below 2 GB)
        )
    return path


def session(path, threads: int | None = None):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def run_session(onnx_session, inputs: dict) -> dict[str, np.ndarray]:
    feed = {name: inputs[name].numpy() for name in ONNX_INPUTS}
    return dict(zip(ONNX_OUTPUTS, onnx_session.run(list(ONNX_OUTPUTS), feed)))


def max_differences(model, onnx_session, inputs: dict) -> dict[str, float]:
    """Max |onnxruntime - eager| of each output on one batch."""
    with torch.no_grad():
        eager = AVCANetExportWrapper(model).eval()(**inputs)
    onnx = run_session(onnx_session, inputs)
    return {name: float(np.abs(onnx[name] - value.numpy()).max()) for name, value in zip(ONNX_OUTPUTS, eager)}


class ClipCalibrationReader:
    """onnxruntime's `CalibrationDataReader` protocol over processed clips, one clip per batch."""

    def __init__(self, inputs: dict):
        self.rows = [{name: inputs[name][row : row + 1].numpy() for name in ONNX_INPUTS}
                     for row in range(len(inputs["pixel_values_videos"]))]  # fmt: skip
        self.position = 0

    def get_next(self):
        if self.position >= len(self.rows):
            return None
        self.position += 1
        return self.rows[self.position - 1]

    def rewind(self):
        self.position = 0


def quantize(fp32_path, int8_path, method: str, calibration_inputs: dict | None = None) -> Path:
    """An int8 copy of `fp32_path`: `dynamic` (weights int8, activations quantized per call: MatMul/Gemm and
    attention) or `static` (QDQ, the convolutions and the MatMul/Gemm with weights, per channel, activation ranges
    calibrated on `calibration_inputs`)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # per-channel quantization warns once per 1-d norm weight
    try:
        with tempfile.TemporaryDirectory() as scratch:
            prepared = Path(scratch) / "prepared.onnx"
            quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)  # folded, shape-annotated
            if method == "dynamic":
                quantize_dynamic(str(prepared), str(int8_path), weight_type=QuantType.QInt8)
            elif method == "static":
                # only the weight GEMMs and convolutions: attention's activation x activation products stay float
                # (quantizing both operands costs Q/DQ pairs and the most accuracy; docs/performance.md, issue 22)
                quantize_static(str(prepared), str(int8_path), ClipCalibrationReader(calibration_inputs),
                                quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                                weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "MatMul", "Gemm"],
                                extra_options={"MatMulConstBOnly": True})  # fmt: skip
            else:
                raise ValueError(f"unknown int8 method {method!r}: static or dynamic")
    finally:
        root.setLevel(level)
    return Path(int8_path)


def latency_ms(onnx_session, inputs: dict, repeats: int = 3) -> float:
    run_session(onnx_session, inputs)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_session(onnx_session, inputs)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def compare_int8(fp32_session, fp32_path, int8_path, inputs: dict) -> dict:
    """Top-1 agreement, max |logit diff| and latency of an int8 file against the fp32 session on `inputs`."""
    int8_session = session(int8_path)
    reference, quantized = run_session(fp32_session, inputs), run_session(int8_session, inputs)
    return {
        "agreement": float((reference["logits"].argmax(-1) == quantized["logits"].argmax(-1)).mean()),
        "max_diff": float(np.abs(reference["logits"] - quantized["logits"]).max()),
        "int8_ms": latency_ms(int8_session, inputs),
        "fp32_ms": latency_ms(fp32_session, inputs),
        "size_ratio": Path(int8_path).stat().st_size / Path(fp32_path).stat().st_size,
    }


def write_int8(output_dir: Path, fp32_session, calibration_inputs: dict, check_inputs: dict, method: str) -> dict:
    """`output_dir/model_int8.onnx` by `method` (`auto`: the fastest of static and dynamic that keeps the agreement
    target, else the most agreeing); returns the chosen method's comparison."""
    fp32_path = output_dir / "model.onnx"
    results = {}
    for candidate in ("static", "dynamic") if method == "auto" else (method,):
        path = output_dir / f"model_int8_{candidate}.onnx"
        quantize(fp32_path, path, candidate, calibration_inputs)
        result = results[candidate] = compare_int8(fp32_session, fp32_path, path, check_inputs)
        print(f"int8 {candidate}: top-1 agreement {result['agreement']:.1%}, "
              f"max |logit diff| {result['max_diff']:.2e}, {result['int8_ms']:.1f} ms vs fp32 "
              f"{result['fp32_ms']:.1f} ms, {result['size_ratio']:.2f}x the fp32 size")
    keeping = [name for name in results if results[name]["agreement"] >= AGREEMENT_TARGET]
    chosen = (min(keeping, key=lambda name: results[name]["int8_ms"]) if keeping
              else max(results, key=lambda name: results[name]["agreement"]))  # fmt: skip
    for candidate in results:
        path = output_dir / f"model_int8_{candidate}.onnx"
        path.replace(output_dir / "model_int8.onnx") if candidate == chosen else path.unlink()
    if not keeping:
        print(f"WARNING: no int8 method keeps {AGREEMENT_TARGET:.0%} top-1 agreement; kept {chosen}", file=sys.stderr)
    return {"method": chosen, **results[chosen]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a saved AV-CANet folder or Hub repository")
    parser.add_argument("output_dir", type=Path)
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--int8", action="store_true", help="also write model_int8.onnx")
    parser.add_argument("--int8_method", choices=["auto", "static", "dynamic"], default="auto")
    parser.add_argument("--calibration_clips", type=int, default=4, help="generated clips per class to calibrate on")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |onnxruntime - eager|")
    args = parser.parse_args(argv)

    model = AutoModelForVideoClassification.from_pretrained(args.model, trust_remote_code=True).eval()
    # this package's processor class, so the folder gets this package's code: the `onnx_avcanet.AVCANetOnnxModel`
    # its config names, `handler.py`, the pipeline (a folder saved by an older version may lack or predate them)
    processor = AVCANetProcessor.from_pretrained(args.model)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="avcanet-export-"))
    try:
        check_inputs = processor_inputs(processor, make_clips(scratch / "check", per_class=1))  # 4 clips, 1 silent
        path = export(model, check_inputs, args.output_dir / "model.onnx", args.opset)
        write_config(model.config, args.output_dir)
        processor.save_pretrained(args.output_dir)  # its files and code (handler.py, onnx_avcanet.py) beside the model
        print(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB)")

        fp32_session = session(path)
        differences = max_differences(model, fp32_session, check_inputs)
        for rows in (1, 3):  # the batch axis is dynamic: other batch sizes than the export's
            subset = {name: value[:rows] for name, value in check_inputs.items()}
            for name, value in max_differences(model, fp32_session, subset).items():
                differences[name] = max(differences[name], value)
        print("max |onnxruntime - eager| on real clips: " + ", ".join(f"{k} {v:.2e}" for k, v in differences.items()))
        if max(differences.values()) > args.tolerance:
            print(f"ERROR: the export differs from the eager model by more than {args.tolerance:g}", file=sys.stderr)
            return 1
        if args.int8:
            clips = make_clips(scratch / "calibration", args.calibration_clips, seed=7)
            calibration = processor_inputs(processor, clips)
            chosen = write_int8(args.output_dir, fp32_session, calibration, check_inputs, args.int8_method)
            print(f"wrote {args.output_dir / 'model_int8.onnx'} ({chosen['method']}): top-1 agreement "
                  f"{chosen['agreement']:.1%}, {chosen['int8_ms'] / chosen['fp32_ms']:.2f}x the fp32 time, "
                  f"{chosen['size_ratio']:.2f}x its size")  # fmt: skip
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
