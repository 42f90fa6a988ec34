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
    python benchmarks/model.py --batch-size 1 --thp both --models avcanet videomae  # with/without huge pages
    python benchmarks/model.py --device cuda --bf16 --compile --batch-size 16 --find-max-batch
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
THP = "+thp"  # a child started with THP_MEM_ALLOC_ENABLE=1: torch's CPU allocator asks for transparent huge pages
# the first two differ only in the Swin window attention (the fused one runs only without gradients): forward only
FORWARD_ONLY = ("avcanet-torchvision-attention",)


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
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    timer = Timer(device)
    model = build(args.child, args.config).to(device)
    result = {"model": args.child, "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
              "rss_after_build_mib": peak_rss_mib()}  # fmt: skip
    runner = torch.compile(model) if args.compile else model

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

    # training: forward + backward + AdamW at batch_size
    model.train()
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

    if args.child == "avcanet" and args.parts:
        result["train_parts"] = isolated_parts(model, inputs, timer, args)
    if args.find_max_batch and device.type == "cuda":
        result["max_batch"] = find_max_batch(args.child, model, runner, optimizer, device, args)
    return result


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
    parser.add_argument("--batch-size", type=int, help="training batch (default 2, --quick 1)")
    parser.add_argument("--rounds", type=int, help="alternating child runs per model (default 2, --quick 1)")
    parser.add_argument("--repeats", type=int, help="timed steps per child and phase (default 3, --quick 1)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--config", choices=["default", "cpu-demo"], default="default", help="AV-CANet's sizes")
    parser.add_argument(
        "--models",
        nargs="+",
        choices=MODELS,
        help="default: all three (--quick: avcanet videomae); avcanet-torchvision-attention is AV-CANet "
        "with torchvision's own window attention (the code before the fused one), forward only",
    )
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models")
    parser.add_argument("--find-max-batch", action="store_true", help="GPU only: the largest training batch that fits")
    parser.add_argument(
        "--thp",
        choices=["off", "on", "both"],
        default="off",
        help="start the children with THP_MEM_ALLOC_ENABLE=1 (torch's CPU allocator then uses "
        "transparent huge pages: far fewer page faults); both: each model with and without",
    )
    parser.add_argument("--no-parts", dest="parts", action="store_false", help="skip AV-CANet's part breakdown")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--child", choices=MODELS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.batch_size = args.batch_size or (1 if args.quick else 2)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.models = args.models or (["avcanet", "videomae"] if args.quick else list(MODELS))
    if args.quick:
        args.parts = False

    if args.child:
        print(json.dumps(measure(args)))
        return

    print(f"machine: {machine()}; device {args.device}, torch threads {args.threads}, batch {args.batch_size}, "
          f"bf16 {args.bf16}, compile {args.compile}, AV-CANet config {args.config}", flush=True)  # fmt: skip
    passthrough = ["--device", args.device, "--threads", str(args.threads), "--batch-size", str(args.batch_size),
                   "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--config", args.config]  # fmt: skip
    passthrough += ["--bf16"] * args.bf16 + ["--compile"] * args.compile + ["--find-max-batch"] * args.find_max_batch
    passthrough += [] if args.parts else ["--no-parts"]
    variants = [name for name in args.models if args.thp != "on"]
    variants += [name + THP for name in args.models if args.thp != "off" and name not in FORWARD_ONLY]
    runs = {name: [] for name in variants}
    for round_index in range(args.rounds):
        for name in variants:
            start = time.perf_counter()
            command = [sys.executable, __file__, "--child", name.removesuffix(THP)] + passthrough
            if round_index > 0 or (name.endswith(THP) and args.thp == "both"):
                command.append("--no-parts")  # the breakdown once is enough
            env = dict(os.environ, THP_MEM_ALLOC_ENABLE="1") if name.endswith(THP) else None
            completed = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
            if completed.returncode != 0:
                sys.exit(f"{name} failed:\n{completed.stderr[-3000:]}")
            runs[name].append(json.loads(completed.stdout.strip().splitlines()[-1]))
            print(f"round {round_index + 1}: {name} measured in {time.perf_counter() - start:.0f} s", flush=True)

    summary = {name: summarize(child_runs, args.batch_size) for name, child_runs in runs.items()}
    report(summary, args)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "args": vars(args) | {"json": str(args.json)},
                                         "summary": summary, "runs": runs}, indent=2, default=str))  # fmt: skip


def summarize(child_runs: list[dict], batch_size: int) -> dict:
    forward = [t for run in child_runs for t in run["forward_s"]]
    out = {
        "params_m": child_runs[0]["params_m"],
        "forward_s": median(forward),
        "forward_runs_s": forward,
        "peak_inference_mib": max(run["peak_inference_mib"] for run in child_runs),
    }
    if "train_step_s" in child_runs[0]:
        steps = [t for run in child_runs for t in run["train_step_s"]]
        out |= {
            "train_step_s": median(steps),
            "train_step_runs_s": steps,
            "train_videos_per_s": batch_size / median(steps),
            "optimizer_s": median([t for run in child_runs for t in run["optimizer_s"]]),
            "peak_training_mib": max(run["peak_training_mib"] for run in child_runs),
        }
    for key in ("forward_parts", "train_parts", "max_batch"):
        if key in child_runs[0]:
            out[key] = child_runs[0][key]
    return out


def report(summary: dict, args):
    names = {
        "avcanet": f"AV-CANet ({args.config} config)",
        "avcanet-torchvision-attention": f"AV-CANet ({args.config}), torchvision window attention (before)",
        "videomae": "VideoMAE-base (16 x 224^2)",
    }
    names |= {name + THP: f"{title}, THP_MEM_ALLOC_ENABLE=1" for name, title in names.items()}
    memory = "peak GPU memory" if args.device.startswith("cuda") else "peak RSS"
    header = ["model", "params", "forward s/video (batch 1)", f"train step s (batch {args.batch_size})",
              "train videos/s", f"{memory} inference MiB", f"{memory} training MiB"]  # fmt: skip
    rows = []
    for name, result in summary.items():
        trained = "train_step_s" in result
        rows.append([names[name], f"{result['params_m']:.1f} M", f"{result['forward_s']:.2f}",
                     f"{result['train_step_s']:.2f} (AdamW {result['optimizer_s']:.2f})" if trained else "-",
                     f"{result['train_videos_per_s']:.2f}" if trained else "-", f"{result['peak_inference_mib']:.0f}",
                     f"{result['peak_training_mib']:.0f}" if trained else "-"])  # fmt: skip
    print()
    print(markdown_table(header, rows))
    for name, result in summary.items():
        print(f"{names[name]}: forward runs {', '.join(f'{t:.2f}' for t in result['forward_runs_s'])}"
              + (f"; train step runs {', '.join(f'{t:.2f}' for t in result['train_step_runs_s'])}"
                 if "train_step_runs_s" in result else ""))  # fmt: skip
        if "max_batch" in result:
            print(f"{names[name]}: largest training batch that fits: {result['max_batch']}")
    print()
    for suffix in ("", THP):
        if {"avcanet" + suffix, "videomae" + suffix} <= set(summary):
            ours, theirs = summary["avcanet" + suffix], summary["videomae" + suffix]
            print(f"AV-CANet / VideoMAE{suffix}: forward latency x{ours['forward_s'] / theirs['forward_s']:.2f}, "
                  f"training throughput x{ours['train_videos_per_s'] / theirs['train_videos_per_s']:.2f}, "
                  f"peak training memory x{ours['peak_training_mib'] / theirs['peak_training_mib']:.2f}")  # fmt: skip
    for name in ("avcanet", "videomae"):
        if {name, name + THP} <= set(summary):
            off, on = summary[name], summary[name + THP]
            print(f"{names[name]}: THP_MEM_ALLOC_ENABLE=1 forward {off['forward_s']:.2f} -> {on['forward_s']:.2f} s, "
                  f"train step {off['train_step_s']:.2f} -> {on['train_step_s']:.2f} s "
                  f"(x{off['train_step_s'] / on['train_step_s']:.2f} videos/s)")  # fmt: skip
    if {"avcanet", "avcanet-torchvision-attention"} <= set(summary):
        before, after = summary["avcanet-torchvision-attention"]["forward_s"], summary["avcanet"]["forward_s"]
        print(
            f"fused window attention: AV-CANet forward {before:.2f} s -> {after:.2f} s (x{before / after:.2f} faster)"
        )
    ours = summary.get("avcanet") or summary.get("avcanet" + THP, {})
    if "forward_parts" in ours:
        total = ours["forward_s"]
        parts = ours["forward_parts"]
        print("\nAV-CANet eval forward (batch 1), share of the forward (hooks inside the real forward): "
              + ", ".join(f"{name} {seconds:.3f} s ({100 * seconds / sum(parts.values()):.0f} %)"
                          for name, seconds in parts.items()) + f"; forward median {total:.2f} s")  # fmt: skip
    if "train_parts" in ours:
        parts = ours["train_parts"]
        parts_total = sum(parts.values()) + ours["optimizer_s"]
        print(f"AV-CANet training (batch {args.batch_size}), forward + backward of each part alone, and AdamW: "
              + ", ".join(f"{name} {seconds:.2f} s ({100 * seconds / parts_total:.0f} %)" for name, seconds in parts.items())
              + f", AdamW step {ours['optimizer_s']:.2f} s ({100 * ours['optimizer_s'] / parts_total:.0f} %); "
              f"sum {parts_total:.2f} s vs full step {ours['train_step_s']:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
