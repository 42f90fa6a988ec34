"""Deployment paths of AV-CANet side by side, in one run: latency and throughput of eager fp32, eager bf16 (autocast),
torch.compile (inductor, fullgraph), onnxruntime fp32, onnxruntime int8 (static QDQ calibrated on real clips, and
dynamic) and torch dynamic int8 (Linear layers), at batch 1 and 8; for each, the max |logit diff| and the top-1
agreement with eager fp32 on the synthetic test split (real H.264+AAC clips through the processor); file sizes.

    python benchmarks/deploy.py                                 # CPU: cpu-demo and paper configs, batch 1 and 8
    python benchmarks/deploy.py --configs cpu-demo --cpu_demo_model outputs/avcanet-demo   # a trained demo model
    python benchmarks/deploy.py --device cuda --json gpu.json   # eager fp32/bf16, compile, onnxruntime CUDA/TensorRT

Exports, quantization, compilation and the agreement pass run under a shared `--lock` (default /work/cpu.lock when it
exists); only the timed loops take it exclusively, one config at a time, so nothing else runs beside them. The paper
config has random weights (no trained paper-size checkpoint exists offline): its agreement numbers measure how far
each path moves near-tied logits, a harder test than a trained model's. On a GPU host `pip install onnxruntime-gpu`
(it replaces onnxruntime) for the CUDA and TensorRT execution providers; int8 paths are CPU-only and skipped there.
"""

import argparse
import contextlib
import fcntl
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from common import REPO, machine, markdown_table

sys.path.insert(0, str(REPO / "examples"))
import export_onnx  # noqa: E402
from dataset_scripts.synthetic import generate_synthetic  # noqa: E402
from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification, AVCANetProcessor  # noqa: E402
from processing.onnx_avcanet import ONNX_INPUTS  # noqa: E402

from train import CPU_DEMO_SIZES  # noqa: E402  (the demo model's sizes)

SYNTHETIC_LABELS = ["Joy", "Calm", "Tension", "Sadness"]


@contextlib.contextmanager
def cpu_lock(path: str | None, exclusive: bool):
    """Hold `path` (flock) shared or exclusive for the block; no lock when `path` is None."""
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_model(name: str, trained: str | None):
    if trained:
        return AVCANetForVideoClassification.from_pretrained(trained).eval()
    torch.manual_seed(0)
    sizes = CPU_DEMO_SIZES if name == "cpu-demo" else {}
    labels = dict(enumerate(SYNTHETIC_LABELS))
    config = AVCANetConfig(**sizes, id2label=labels, label2id={v: k for k, v in labels.items()})
    return AVCANetForVideoClassification(config).eval()


def synthetic_inputs(folder: Path, processor, split: str, per_class: int, limit: int | None) -> dict:
    """Processed clips of one split of the synthetic set (generated once into `folder`)."""
    counts = {"train": 4, "validation": 0, "test": 10}
    if not (folder / "test").exists():
        generate_synthetic(folder, videos_per_class=counts, missing_audio_fraction=0.1, seed=0)
    # by file name: the classes interleave, so a prefix of the list holds every class
    videos = sorted((str(path) for path in (folder / split).rglob("*.mp4")), key=lambda path: Path(path).name)
    videos = videos[: per_class * 4][:limit]
    return export_onnx.processor_inputs(processor, videos)


def batches(inputs: dict, size: int):
    total = len(inputs["pixel_values_videos"])
    for start in range(0, total, size):
        yield {name: value[start : start + size] for name, value in inputs.items()}


class TorchRunner:
    def __init__(self, model, device: str, bf16: bool = False):
        self.model, self.device, self.bf16 = model, device, bf16

    def __call__(self, inputs: dict) -> np.ndarray:
        inputs = {name: value.to(self.device) for name, value in inputs.items()}
        with torch.inference_mode(), torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.model(**inputs).logits
        if self.device == "cuda":
            torch.cuda.synchronize()
        return logits.float().cpu().numpy()


class OnnxRunner:
    def __init__(self, path: Path, providers: list, threads: int):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)

    def __call__(self, inputs: dict) -> np.ndarray:
        feed = {name: inputs[name].numpy() for name in ONNX_INPUTS}
        return self.session.run(["logits"], feed)[0]


def latencies_ms(runner, inputs: dict, repeats: int) -> list[float]:
    """`repeats` timed calls; the caller has warmed the runner at this batch size (torch.compile compiled it)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        runner(inputs)
        times.append((time.perf_counter() - start) * 1e3)
    return times


def file_mib(path: Path) -> float:
    return path.stat().st_size / 2**20


def bench_config(name: str, args, work: Path) -> dict:
    """Prepare every path of one config (shared lock), measure agreement, then time them (exclusive lock)."""
    results = {"config": name, "paths": {}}
    with cpu_lock(args.lock, exclusive=False):
        model = build_model(name, args.cpu_demo_model if name == "cpu-demo" else None)
        processor = AVCANetProcessor.from_model_config(model.config)
        data = work / "synthetic"
        test = synthetic_inputs(data, processor, "test", 10, args.test_clips.get(name))
        calibration = synthetic_inputs(data, processor, "train", 4, args.calibration_clips)
        results["test_clips"] = len(test["pixel_values_videos"])
        folder = work / name
        folder.mkdir(exist_ok=True)
        model.save_pretrained(folder / "pytorch")
        sizes = {"safetensors fp32": file_mib(folder / "pytorch" / "model.safetensors")}

        start = time.perf_counter()
        onnx_path = export_onnx.export(model, {key: value[:2] for key, value in test.items()}, folder / "model.onnx")
        results["export_s"] = time.perf_counter() - start
        sizes["onnx fp32"] = file_mib(onnx_path)
        model.to(args.device)
        runners = {"eager fp32": TorchRunner(model, args.device), "eager bf16": TorchRunner(model, args.device, True)}
        if not args.skip_compile:
            runners["torch.compile"] = TorchRunner(torch.compile(model, fullgraph=True), args.device)
        if args.device == "cpu":
            runners["onnxruntime fp32"] = OnnxRunner(onnx_path, ["CPUExecutionProvider"], args.threads)
            for method in ("static", "dynamic"):
                start = time.perf_counter()
                path = export_onnx.quantize(onnx_path, folder / f"model_int8_{method}.onnx", method, calibration)
                results[f"quantize_{method}_s"] = time.perf_counter() - start
                sizes[f"onnx int8 {method}"] = file_mib(path)
                runners[f"onnxruntime int8 {method}"] = OnnxRunner(path, ["CPUExecutionProvider"], args.threads)
            quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
            torch.save(quantized.state_dict(), folder / "torch_int8.pt")
            sizes["torch dynamic int8 (state_dict)"] = file_mib(folder / "torch_int8.pt")
            runners["torch dynamic int8"] = TorchRunner(quantized, "cpu")
        else:
            import onnxruntime

            available = onnxruntime.get_available_providers()
            for provider in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
                if provider in available:
                    label = f"onnxruntime {provider.removesuffix('ExecutionProvider')}"
                    try:  # listed is not loadable: TensorRT needs its own libraries
                        runners[label] = OnnxRunner(onnx_path, [provider], args.threads)
                    except Exception as error:  # noqa: BLE001 - report and go on with the other paths
                        print(f"skipping {label}: {error}", file=sys.stderr)
        results["sizes_mib"] = sizes

        # agreement with eager fp32 on the test split (torch.compile compiles its batch sizes here)
        logits = {label: np.concatenate([runner(batch) for batch in batches(test, args.agreement_batch_size)])
                  for label, runner in runners.items()}  # fmt: skip
        reference = logits["eager fp32"]
        for label, values in logits.items():
            results["paths"][label] = {
                "max_diff": float(np.abs(values - reference).max()),
                "agreement": float((values.argmax(-1) == reference.argmax(-1)).mean()),
            }
        print(json.dumps({key: value for key, value in results.items()}), flush=True)  # before the lock wait
        for batch_size in args.batch_sizes:  # warm every path at each timed size before the exclusive part
            for runner in runners.values():
                runner({key: value[:batch_size] for key, value in test.items()})

    repeats = args.repeats.get(name, 3)
    # one exclusive hold for every batch size: on a busy machine a waiting writer can starve for an hour (new readers
    # keep being let in), so it is taken once
    with cpu_lock(args.lock, exclusive=True):
        for batch_size in args.batch_sizes:
            inputs = {key: value[:batch_size] for key, value in test.items()}
            for label, runner in runners.items():
                times = latencies_ms(runner, inputs, repeats)
                results["paths"][label][f"batch{batch_size}_ms"] = times
                print(f"{name} batch {batch_size} {label}: {statistics.median(times):.1f} ms", flush=True)
    return results


def report(all_results: list[dict], batch_sizes: list[int]) -> str:
    lines = []
    for results in all_results:
        paths = results["paths"]
        eager = {size: statistics.median(paths["eager fp32"][f"batch{size}_ms"]) for size in batch_sizes}
        header = ["path"]
        for size in batch_sizes:
            header += [f"batch {size} ms", f"x eager (b{size})", f"videos/s (b{size})"]
        header += ["max abs logit diff", "top-1 agreement"]
        rows = []
        for label, values in paths.items():
            row = [label]
            for size in batch_sizes:
                ms = statistics.median(values[f"batch{size}_ms"])
                row += [f"{ms:.1f}", f"{ms / eager[size]:.2f}", f"{size / ms * 1e3:.1f}"]
            row += [f"{values['max_diff']:.1e}", f"{values['agreement']:.1%}"]
            rows.append(row)
        sizes = ", ".join(f"{key} {value:.1f} MiB" for key, value in results["sizes_mib"].items())
        timings = ", ".join(f"{key} {value:.0f} s" for key, value in results.items() if key.endswith("_s"))
        lines += [f"### {results['config']} ({results['test_clips']} test clips)", "", markdown_table(header, rows), "",
                  f"File sizes: {sizes}.", f"One-off costs: {timings}.", ""]  # fmt: skip
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["cpu-demo", "paper"], choices=["cpu-demo", "paper"])
    parser.add_argument("--cpu_demo_model",
                        help="a trained cpu-demo folder (examples/train.py); default: random weights")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=json.loads, default={"cpu-demo": 10, "paper": 2},
                        help='timed runs per path and batch size, per config (JSON)')  # fmt: skip
    parser.add_argument("--test_clips", type=json.loads, default={"paper": 16},
                        help="clips of the 40-clip test split used for agreement, per config (JSON; default all)")
    parser.add_argument("--agreement_batch_size", type=int, default=4,
                        help="batch of the agreement pass (the paper config at 8 with every path loaded and inductor "
                        "compiling took 15.8 GB: killed on a 24 GB machine shared with other jobs)")
    parser.add_argument("--calibration_clips", type=int, default=16, help="train-split clips for static int8")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--skip_compile", action="store_true")
    parser.add_argument("--lock", default="/work/cpu.lock" if os.path.exists("/work/cpu.lock") else None)
    parser.add_argument("--json", help="write the raw numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(machine(), f"| torch threads {args.threads} | device {args.device}", flush=True)
    with tempfile.TemporaryDirectory(prefix="avcanet-deploy-") as work:
        all_results = [bench_config(name, args, Path(work)) for name in args.configs]
    print(report(all_results, args.batch_sizes))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine(), "results": all_results}, indent=1))


if __name__ == "__main__":
    main()
