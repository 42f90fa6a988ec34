"""AV-CANet (default config) vs transformers' VideoMAE (base, random weights) on the same device, in one run.

Each model is measured in a child process of its own, so that each peak-memory figure (`ru_maxrss`, the resident-set
high-water mark; `torch.cuda.max_memory_allocated` on a GPU) belongs to one model only; the children alternate
(AV-CANet, VideoMAE, AV-CANet, ...) for `--rounds` rounds so that a slow stretch of a noisy machine hits both, and the
medians pool every timed step of every round. Per model:

- forward latency per video: batch 1, `model.eval()`, `torch.inference_mode()`;
- training step: forward + backward + AdamW step at `--batch-size` (default 2), in videos/s;
- peak memory after the inference phase and after the training phase;
- AV-CANet only: the share of each part: in the eval forward (forward hooks timing the visual branch, the audio
  branch, the fusion module and classifier + loss inside the real forward), and in training (forward + backward of
  each part alone on inputs of its real shape, next to the full step).

Inputs: AV-CANet 16 x 8 frames at 112 px + 128 mel bins x 16 x 64 frames (the processor's output); VideoMAE-base
16 frames at 224 px (its Kinetics setting, 1568 tokens).

    python benchmarks/model.py                   # 2 rounds, 3 timed steps each (~6 min on 2 CPU cores)
    python benchmarks/model.py --quick           # 1 round, batch 1, 1 timed step, no part breakdown (< 1 min)
    python benchmarks/model.py --batch-size 1 --allocator default thp --models avcanet videomae  # huge pages or not
    python benchmarks/model.py --models avcanet videomae --allocator default keep-freed --no-inference --no-parts
    python benchmarks/model.py --device cuda --bf16 --compile --batch-size 16 --find-max-batch
    # the training-step matrix of issue 21: batches 1/2/4, fp32 and bf16, with and without gradient checkpointing
    python benchmarks/model.py --models avcanet videomae --batch-size 1 2 4 --precision both --checkpointing both \
        --no-inference --rounds 1 --repeats 2 --no-parts
    python benchmarks/model.py --models avcanet avcanet-torchvision-attention --batch-size 2 --no-inference \
        --rounds 1 --repeats 0 --largest-tensors 8 --no-parts     # the largest tensors a step keeps, after / before

`avcanet-torchvision-attention` is AV-CANet with torchvision's own window attention, which is what its training step
ran before the fused attention with a bias gradient (issue 21): the "before" of the training comparisons.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import machine, markdown_table, median, peak_rss_mib

MODELS = ("avcanet", "avcanet-torchvision-attention", "videomae")
# How a child's host memory is allocated (`--allocator`), and the suffix of its variant's name: glibc's malloc as it
# comes; "thp": started with THP_MEM_ALLOC_ENABLE=1 (torch's CPU allocator asks for transparent huge pages);
# "keep-freed": examples/host_memory.py `keep_freed_memory()` first, as examples/train.py does
ALLOCATORS = {"default": "", "thp": "+thp", "keep-freed": "+keep-freed"}
ALLOCATOR_TITLES = {"+thp": ", THP_MEM_ALLOC_ENABLE=1", "+keep-freed": ", freed memory kept (train.py)"}
FORWARD_ONLY = ()  # models measured without a training step (none since the fused attention has a training path)


# --------------------------------------------------------------------------------------------------------------
# models and inputs
# --------------------------------------------------------------------------------------------------------------


def build(name: str, config_name: str):
    if name.startswith("avcanet"):
        from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification

        sizes = {}
        if config_name == "cpu-demo":
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
            from train import CPU_DEMO_SIZES

            sizes = CPU_DEMO_SIZES
        model = AVCANetForVideoClassification(AVCANetConfig(**sizes))
        if name == "avcanet-torchvision-attention":  # the code before the fused window attention, for comparison
            from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d

            for module in model.modules():
                if isinstance(module, ShiftedWindowAttention3d):
                    module.__class__ = ShiftedWindowAttention3d
        return model
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    return VideoMAEForVideoClassification(VideoMAEConfig(num_labels=8))


def make_inputs(name: str, model, batch_size: int, device) -> dict:
    config = model.config
    labels = torch.arange(batch_size, device=device) % config.num_labels
    if name.startswith("avcanet"):
        frames = config.num_segments * config.frames_per_segment
        return {
            "pixel_values_videos": torch.randn(
                batch_size, frames, 3, config.image_size, config.image_size, device=device
            ),
            "input_features": torch.randn(
                batch_size, config.num_mel_bins, config.num_segments * config.audio_frames_per_segment, device=device
            ),
            "audio_mask": torch.ones(batch_size, dtype=torch.long, device=device),
            "labels": labels,
        }
    size = config.image_size
    return {"pixel_values": torch.randn(batch_size, config.num_frames, 3, size, size, device=device), "labels": labels}


def without_labels(inputs: dict) -> dict:
    return {key: value for key, value in inputs.items() if key != "labels"}


class Timer:
    """Wall-clock seconds of a block, synchronising the GPU around it."""

    def __init__(self, device):
        self.cuda = torch.device(device).type == "cuda"

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()


def autocast(device, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def peak_memory_mib(device) -> float:
    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mib()


# --------------------------------------------------------------------------------------------------------------
# the child: one model
# --------------------------------------------------------------------------------------------------------------


def measure(args) -> dict:
    if args.keep_freed_memory:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
        from host_memory import keep_freed_memory

        assert keep_freed_memory(), "--allocator keep-freed needs glibc"
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    timer = Timer(device)
    model = build(args.child, args.config).to(device)
    result = {"model": args.child, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
              "rss_after_build_mib": peak_rss_mib()}  # fmt: skip
    runner = torch.compile(model) if args.compile else model

    if args.no_inference:
        result |= {"forward_s": [], "peak_inference_mib": float("nan")}
        return train_phase(model, runner, result, timer, device, args)

    # inference: batch 1
    model.eval()
    inputs = without_labels(make_inputs(args.child, model, 1, device))
    hooks = PartTimer(model, timer) if args.child.startswith("avcanet") and not args.compile else None
    forward_s = []
    with torch.inference_mode(), autocast(device, args.bf16):
        for step in range(args.warmup + args.repeats):
            if hooks:
                hooks.reset()
            start = timer.now()
            runner(**inputs)
            if step >= args.warmup:
                forward_s.append(timer.now() - start)
                if hooks:
                    hooks.collect(forward_s[-1])
    result["forward_s"] = forward_s
    result["peak_inference_mib"] = peak_memory_mib(device)
    if hooks:
        result["forward_parts"] = hooks.shares()
        hooks.remove()
    if args.child in FORWARD_ONLY:
        return result
    return train_phase(model, runner, result, timer, device, args)


def train_phase(model, runner, result: dict, timer, device, args) -> dict:
    # training: forward + backward + AdamW at batch_size
    model.train()
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    inputs = make_inputs(args.child, model, args.batch_size, device)
    step_s, optimizer_s = [], []
    for step in range(args.warmup + args.repeats):
        start = timer.now()
        with autocast(device, args.bf16):
            loss = runner(**inputs).loss
        loss.backward()
        middle = timer.now()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        end = timer.now()
        if step >= args.warmup:
            step_s.append(end - start)
            optimizer_s.append(end - middle)
    result["train_step_s"] = step_s
    result["optimizer_s"] = optimizer_s
    result["peak_training_mib"] = peak_memory_mib(device)
    if args.largest_tensors:
        result["largest_tensors"] = largest_saved_tensors(model, runner, inputs, device, args)

    if args.child == "avcanet" and args.parts:
        result["train_parts"] = isolated_parts(model, inputs, timer, args)
    if args.find_max_batch and device.type == "cuda":
        result["max_batch"] = find_max_batch(args.child, model, runner, optimizer, device, args)
    return result


def largest_saved_tensors(model, runner, inputs: dict, device, args) -> dict:
    """The tensors autograd keeps from the forward for the backward pass of one training step, largest first (one
    entry per storage, with the innermost module whose forward saved it), and their total. Parameters (leaves that
    require a gradient) are there anyway and are not counted."""
    storages, modules = {}, []

    def leave(module, inputs, output):
        modules.pop()  # returns None: a forward hook's return value would replace the output

    handles = []
    for name, module in model.named_modules():
        handles.append(module.register_forward_pre_hook(lambda module, inputs, name=name: modules.append(name) or None))
        handles.append(module.register_forward_hook(leave))

    def pack(tensor):
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in storages and not (tensor.is_leaf and tensor.requires_grad):
            storages[key] = (storage.nbytes(), tuple(tensor.shape), str(tensor.dtype).removeprefix("torch."),
                             modules[-1] if modules else "(outside modules)")  # fmt: skip
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), autocast(device, args.bf16):
        loss = runner(**inputs).loss
    loss.backward()
    for handle in handles:
        handle.remove()
    ranked = sorted(storages.values(), reverse=True)
    return {
        "total_mib": sum(entry[0] for entry in ranked) / 2**20,
        "count": len(ranked),
        "largest": [{"mib": size / 2**20, "shape": shape, "dtype": dtype, "saved_in": module}
                    for size, shape, dtype, module in ranked[: args.largest_tensors]],  # fmt: skip
    }


class PartTimer:
    """Seconds spent in the visual branch, audio branch, fusion and classifier + loss during real forwards."""

    def __init__(self, model, timer: Timer):
        self.timer = timer
        self.parts = {
            "visual branch": model.avcanet.visual_branch,
            "audio branch": model.avcanet.audio_branch,
            "fusion (LGF)": model.avcanet.fusion,
            "classifier + loss": model.classifier,
        }
        self.handles, self.starts, self.current, self.totals = [], {}, {}, {name: [] for name in self.parts}
        self.totals["rest"] = []
        for name, module in self.parts.items():
            self.handles.append(module.register_forward_pre_hook(self._pre(name)))
            self.handles.append(module.register_forward_hook(self._post(name)))

    def _pre(self, name):
        def hook(module, inputs):
            self.starts[name] = self.timer.now()

        return hook

    def _post(self, name):
        def hook(module, inputs, output):
            self.current[name] = self.current.get(name, 0.0) + self.timer.now() - self.starts[name]

        return hook

    def reset(self):
        self.current = {}

    def collect(self, total: float):
        for name in self.parts:
            self.totals[name].append(self.current.get(name, 0.0))
        self.totals["rest"].append(total - sum(self.current.values()))

    def shares(self) -> dict:
        return {name: median(values) for name, values in self.totals.items()}

    def remove(self):
        for handle in self.handles:
            handle.remove()


def isolated_parts(model, inputs: dict, timer: Timer, args) -> dict:
    """Forward + backward seconds of each part of AV-CANet alone (train mode), on inputs of its real shape."""
    device = inputs["labels"].device
    batch_size = inputs["labels"].shape[0]
    config = model.config
    avcanet = model.avcanet

    def embeds():
        return torch.randn(batch_size, config.num_segments, config.hidden_size, device=device, requires_grad=True)

    def visual():
        return avcanet.visual_branch(inputs["pixel_values_videos"]).sum()

    def audio():
        return avcanet.audio_branch(inputs["input_features"]).sum()

    def fusion():
        visual_embeds, audio_embeds, *_ = avcanet.fusion(embeds(), embeds())
        return visual_embeds.sum() + audio_embeds.sum()

    def classifier_and_loss():
        audio_embeds = torch.randn(batch_size, config.hidden_size, device=device, requires_grad=True)
        visual_embeds = torch.randn(batch_size, config.hidden_size, device=device, requires_grad=True)
        audio_logits, visual_logits = model.classifier(audio_embeds, visual_embeds)
        logits = audio_logits + visual_logits
        return model.loss(logits, audio_logits, visual_logits, inputs["labels"], inputs["audio_mask"])

    out = {}
    for name, part in {"visual branch": visual, "audio branch": audio, "fusion (LGF)": fusion,
                       "classifier + loss": classifier_and_loss}.items():  # fmt: skip
        times = []
        for step in range(args.warmup + args.repeats):
            start = timer.now()
            with autocast(device, args.bf16):
                value = part()
            value.backward()
            if step >= args.warmup:
                times.append(timer.now() - start)
        model.zero_grad(set_to_none=True)
        out[name] = median(times)
    return out


def find_max_batch(name, model, runner, optimizer, device, args) -> int:
    """The largest training batch (doubling, then halving the gap) whose step fits in GPU memory."""

    def fits(batch_size: int) -> bool:
        try:
            inputs = make_inputs(name, model, batch_size, device)
            with autocast(device, args.bf16):
                loss = runner(**inputs).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return True
        except torch.OutOfMemoryError:
            optimizer.zero_grad(set_to_none=True)
            return False
        finally:
            torch.cuda.empty_cache()

    low, high = 0, args.batch_size
    while fits(high) and high < 4096:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


# --------------------------------------------------------------------------------------------------------------
# the parent: alternate the children, report
# --------------------------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 round, batch 1, 1 warm-up + 1 timed step, no parts")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (the machine's 2 cores)")
    parser.add_argument("--batch-size", type=int, nargs="+", help="training batch(es), one child each (default 2, --quick 1)")
    parser.add_argument("--rounds", type=int, help="alternating child runs per model (default 2, --quick 1)")
    parser.add_argument("--repeats", type=int, help="timed steps per child and phase (default 3, --quick 1)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--config", choices=["default", "cpu-demo"], default="default", help="AV-CANet's sizes")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=MODELS,
        help="default: all three (--quick: avcanet videomae); avcanet-torchvision-attention is AV-CANet "
        "with torchvision's own window attention (the code before the fused one, in training too)",
    )
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (same as --precision bf16)")
    parser.add_argument("--precision", choices=["fp32", "bf16", "both"], help="default fp32 (bf16 with --bf16)")
    parser.add_argument("--checkpointing", choices=["off", "on", "both"], default="off",
                        help="gradient_checkpointing_enable() (non-reentrant) in the training step")  # fmt: skip
    parser.add_argument("--no-inference", action="store_true", help="training step only (no eval forward)")
    parser.add_argument("--largest-tensors", type=int, default=0, metavar="K",
                        help="list the K largest tensors a training step keeps for its backward pass")  # fmt: skip
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument("--find-max-batch", action="store_true", help="GPU only: the largest training batch that fits")
    parser.add_argument(
        "--allocator",
        nargs="+",
        choices=list(ALLOCATORS),
        default=["default"],
        help="host memory of the children, one child each: glibc's malloc as it comes (default), thp (torch's CPU "
        "allocator asks for transparent huge pages), keep-freed (glibc keeps freed memory, as examples/train.py sets)",
    )
    parser.add_argument("--no-parts", dest="parts", action="store_false", help="skip AV-CANet's part breakdown")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", choices=MODELS, help=argparse.SUPPRESS)
    parser.add_argument("--gradient-checkpointing", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--keep-freed-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.batch_size = (args.batch_size or [2])[0]
        args.repeats = 3 if args.repeats is None else args.repeats
        print(json.dumps(measure(args)))
        return

    args.batch_size = args.batch_size or [1 if args.quick else 2]
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.repeats = (1 if args.quick else 3) if args.repeats is None else args.repeats
    args.models = args.models or (["avcanet", "videomae"] if args.quick else list(MODELS))
    args.precision = args.precision or ("bf16" if args.bf16 else "fp32")
    if args.quick:
        args.parts = False
    print(f"machine: {machine()}; device {args.device}, torch threads {args.threads}, batch {args.batch_size}, "
          f"precision {args.precision}, checkpointing {args.checkpointing}, compile {args.compile}, "
          f"AV-CANet config {args.config}", flush=True)  # fmt: skip

    variants = []  # (key, child arguments, environment)
    for batch_size in args.batch_size:
        for precision in ("fp32", "bf16") if args.precision == "both" else (args.precision,):
            for checkpointing in (False, True) if args.checkpointing == "both" else (args.checkpointing == "on",):
                for allocator in args.allocator:
                    for name in args.models:
                        key = variant_key(name + ALLOCATORS[allocator], batch_size, precision, checkpointing)
                        variants.append((key, name, batch_size, precision, checkpointing, allocator))
    runs = {variant[0]: [] for variant in variants}
    first = True
    for round_index in range(args.rounds):
        for key, name, batch_size, precision, checkpointing, allocator in variants:
            start = time.perf_counter()
            command = [sys.executable, __file__, "--child", name, "--device", args.device, "--threads",
                       str(args.threads), "--batch-size", str(batch_size), "--repeats", str(args.repeats),
                       "--warmup", str(args.warmup), "--config", args.config,
                       "--largest-tensors", str(args.largest_tensors)]  # fmt: skip
            command += ["--bf16"] * (precision == "bf16") + ["--gradient-checkpointing"] * checkpointing
            command += ["--compile"] * args.compile + ["--find-max-batch"] * args.find_max_batch
            command += ["--no-inference"] * args.no_inference
            if not (args.parts and first and name == "avcanet"):
                command.append("--no-parts")  # the breakdown once is enough
            first = first and not (args.parts and name == "avcanet")
            command += ["--keep-freed-memory"] * (allocator == "keep-freed")
            env = dict(os.environ, THP_MEM_ALLOC_ENABLE="1") if allocator == "thp" else None
            completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if completed.returncode != 0:
                sys.exit(f"{key} failed:\n{completed.stderr[-3000:]}")
            runs[key].append(json.loads(completed.stdout.strip().splitlines()[-1]))
            print(f"round {round_index + 1}: {key} measured in {time.perf_counter() - start:.0f} s", flush=True)

    summary = {key: summarize(child_runs, int(key.split("|")[1].removeprefix("batch "))) for key, child_runs in runs.items()}
    report(summary, args)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "args": vars(args) | {"json": str(args.json)},
                                         "summary": summary, "runs": runs}, indent=2, default=str))  # fmt: skip


def variant_key(name: str, batch_size: int, precision: str, checkpointing: bool) -> str:
    return f"{name}|batch {batch_size}|{precision}|{'checkpointing' if checkpointing else 'no checkpointing'}"


def summarize(child_runs: list[dict], batch_size: int) -> dict:
    forward = [t for run in child_runs for t in run["forward_s"]]
    out = {
        "params_m": child_runs[0]["params_m"],
        "forward_s": median(forward) if forward else float("nan"),
        "forward_runs_s": forward,
        "peak_inference_mib": max(run["peak_inference_mib"] for run in child_runs),
    }
    if "train_step_s" in child_runs[0]:
        steps = [t for run in child_runs for t in run["train_step_s"]]
        out |= {
            "train_step_s": median(steps) if steps else float("nan"),
            "train_step_runs_s": steps,
            "train_videos_per_s": batch_size / median(steps) if steps else float("nan"),
            "optimizer_s": median([t for run in child_runs for t in run["optimizer_s"]]) if steps else float("nan"),
            "peak_training_mib": max(run["peak_training_mib"] for run in child_runs),
        }
    for key in ("forward_parts", "train_parts", "max_batch", "largest_tensors"):
        if key in child_runs[0]:
            out[key] = child_runs[0][key]
    return out


NAMES = {
    "avcanet": "AV-CANet",
    "avcanet-torchvision-attention": "AV-CANet, torchvision window attention (before)",
    "videomae": "VideoMAE-base (16 x 224^2)",
}


def report(summary: dict, args):
    memory = "peak GPU memory" if args.device.startswith("cuda") else "peak RSS"
    header = ["model", "batch", "precision", "checkpointing", "params", "forward s/video (batch 1)", "train step s",
              "train videos/s", f"{memory} inference MiB", f"{memory} training MiB"]  # fmt: skip
    rows = []
    for key, result in summary.items():
        name, batch, precision, checkpointing = key.split("|")
        model, suffix = name.split("+")[0], name[len(name.split("+")[0]) :]
        title = NAMES[model] + ALLOCATOR_TITLES.get(suffix, "")
        trained = "train_step_s" in result
        rows.append([title, batch.removeprefix("batch "), precision, "yes" if checkpointing == "checkpointing" else "no",
                     f"{result['params_m']:.1f} M", f"{result['forward_s']:.2f}",
                     f"{result['train_step_s']:.2f} (AdamW {result['optimizer_s']:.2f})" if trained else "-",
                     f"{result['train_videos_per_s']:.3f}" if trained else "-", f"{result['peak_inference_mib']:.0f}",
                     f"{result['peak_training_mib']:.0f}" if trained else "-"])  # fmt: skip
    print()
    print(markdown_table(header, rows))
    for key, result in summary.items():
        if result["forward_runs_s"] or result.get("train_step_runs_s"):
            print(f"{key}: forward runs {', '.join(f'{t:.2f}' for t in result['forward_runs_s'])}"
                  + (f"; train step runs {', '.join(f'{t:.2f}' for t in result['train_step_runs_s'])}"
                     if "train_step_runs_s" in result else ""))  # fmt: skip
        if "max_batch" in result:
            print(f"{key}: largest training batch that fits: {result['max_batch']}")
    print()
    for line in ratio_lines(summary):
        print(line)
    for key, result in summary.items():
        if "largest_tensors" in result:
            saved = result["largest_tensors"]
            print(f"\n{key}: the backward pass keeps {saved['count']} tensors, {saved['total_mib']:.0f} MiB "
                  "(parameters not counted); the largest:")  # fmt: skip
            print(markdown_table(["MiB", "shape", "dtype", "saved in (module)"],
                                 [[f"{t['mib']:.1f}", "x".join(map(str, t["shape"])), t["dtype"], t["saved_in"]]
                                  for t in saved["largest"]]))  # fmt: skip
    ours = next((result for key, result in summary.items() if key.startswith("avcanet|")), {})
    if "forward_parts" in ours:
        parts = ours["forward_parts"]
        print("\nAV-CANet eval forward (batch 1), share of the forward (hooks inside the real forward): "
              + ", ".join(f"{name} {seconds:.3f} s ({100 * seconds / sum(parts.values()):.0f} %)"
                          for name, seconds in parts.items()) + f"; forward median {ours['forward_s']:.2f} s")  # fmt: skip
    if "train_parts" in ours:
        parts = ours["train_parts"]
        parts_total = sum(parts.values()) + ours["optimizer_s"]
        print("AV-CANet training, forward + backward of each part alone, and AdamW: "
              + ", ".join(f"{name} {seconds:.2f} s ({100 * seconds / parts_total:.0f} %)" for name, seconds in parts.items())
              + f", AdamW step {ours['optimizer_s']:.2f} s ({100 * ours['optimizer_s'] / parts_total:.0f} %); "
              f"sum {parts_total:.2f} s vs full step {ours['train_step_s']:.2f} s")  # fmt: skip


def ratio_lines(summary: dict) -> list[str]:
    """The ratios the targets are stated in, for every pair of variants this run measured."""

    def get(name, batch, precision, checkpointing, field):
        result = summary.get(variant_key(name, batch, precision, checkpointing))
        return None if result is None or field not in result else result[field]

    lines = []
    keys = [key.split("|") for key in summary]
    batches = sorted({int(batch.removeprefix("batch ")) for _, batch, _, _ in keys})
    for batch in batches:
        for precision in ("fp32", "bf16"):
            for checkpointing in (False, True):
                for ours in ("avcanet", "avcanet-torchvision-attention"):
                    mine = [get(ours, batch, precision, checkpointing, f) for f in ("train_videos_per_s", "peak_training_mib", "forward_s")]
                    theirs = [get("videomae", batch, precision, checkpointing, f) for f in ("train_videos_per_s", "peak_training_mib", "forward_s")]
                    plain = get("videomae", batch, precision, False, "peak_training_mib")
                    if None not in mine and None not in theirs:
                        lines.append(f"{NAMES[ours]} / VideoMAE, batch {batch} {precision}"
                                     f"{', both checkpointed' if checkpointing else ''}: training throughput "
                                     f"x{mine[0] / theirs[0]:.2f}, peak training memory x{mine[1] / theirs[1]:.2f}"
                                     + (f" (x{mine[1] / plain:.2f} VideoMAE's without checkpointing)" if checkpointing and plain else "")
                                     + (f", forward latency x{mine[2] / theirs[2]:.2f}" if mine[2] == mine[2] and theirs[2] == theirs[2] else ""))  # fmt: skip
    for name in NAMES:
        for precision in ("fp32", "bf16"):
            for checkpointing in (False, True):
                one = get(name, 1, precision, checkpointing, "train_step_s")
                for batch in batches[1:]:
                    step = get(name, batch, precision, checkpointing, "train_step_s")
                    if one and step:
                        lines.append(f"{NAMES[name]}, {precision}{', checkpointing' if checkpointing else ''}: "
                                     f"batch-{batch} step / batch-1 step x{step / one:.2f}")  # fmt: skip
        for batch in batches:
            for checkpointing in (False, True):
                fp32, bf16 = (get(name, batch, p, checkpointing, "train_videos_per_s") for p in ("fp32", "bf16"))
                if fp32 and bf16:
                    lines.append(f"{NAMES[name]}, batch {batch}{', checkpointing' if checkpointing else ''}: "
                                 f"bf16 / fp32 training throughput x{bf16 / fp32:.2f}")  # fmt: skip
            for precision in ("fp32", "bf16"):
                off, on = (get(name, batch, precision, c, "peak_training_mib") for c in (False, True))
                off_s, on_s = (get(name, batch, precision, c, "train_step_s") for c in (False, True))
                if off and on:
                    lines.append(f"{NAMES[name]}, batch {batch} {precision}: checkpointing peak x{on / off:.2f}"
                                 + (f", step time x{on_s / off_s:.2f}" if off_s and on_s else ""))  # fmt: skip
    for batch in batches:
        for precision in ("fp32", "bf16"):
            for checkpointing in (False, True):
                after = [get("avcanet", batch, precision, checkpointing, f) for f in ("train_step_s", "peak_training_mib")]
                before = [get("avcanet-torchvision-attention", batch, precision, checkpointing, f)
                          for f in ("train_step_s", "peak_training_mib")]  # fmt: skip
                if None not in after + before:
                    lines.append(f"fused training attention, batch {batch} {precision}"
                                 f"{', checkpointing' if checkpointing else ''}: step {before[0]:.2f} -> {after[0]:.2f} s, "
                                 f"peak {before[1]:.0f} -> {after[1]:.0f} MiB")  # fmt: skip
    for suffix in ALLOCATORS.values():
        for batch in batches:
            for precision in ("fp32", "bf16"):
                for checkpointing in (False, True):
                    ours, theirs = (get(name + suffix, batch, precision, checkpointing, "train_step_s")
                                    for name in ("avcanet", "videomae"))  # fmt: skip
                    ours_before, theirs_before = (get(name, batch, precision, checkpointing, "train_step_s")
                                                  for name in ("avcanet", "videomae"))  # fmt: skip
                    if suffix and ours and ours_before:
                        line = (f"allocator {suffix[1:]}, batch {batch} {precision}"
                                f"{', checkpointing' if checkpointing else ''}: AV-CANet step x{ours / ours_before:.2f}")
                        if theirs and theirs_before:
                            line += (f", VideoMAE step x{theirs / theirs_before:.2f}; AV-CANet / VideoMAE training "
                                     f"throughput x{theirs / ours:.2f} (both {suffix[1:]}), x{theirs_before / ours:.2f} "
                                     "(VideoMAE as it comes)")
                        lines.append(line)  # fmt: skip
    return lines


if __name__ == "__main__":
    main()
