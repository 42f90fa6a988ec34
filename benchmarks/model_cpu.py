"""Parameter count by part and CPU latency of the default AV-CANet (batch 1): forward, and forward + backward.

    python benchmarks/model_cpu.py [--repeats 3] [--threads 2]
"""

import argparse
import statistics
import time

import torch

from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification


def count(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    config = AVCANetConfig()
    model = AVCANetForVideoClassification(config)
    parts = {
        "visual branch (Video Swin-T + projection)": model.avcanet.visual_branch,
        "audio branch (ResNet-34 + projection)": model.avcanet.audio_branch,
        "local pyramid (4 levels)": model.avcanet.fusion.pyramid,
        "level weighting": model.avcanet.fusion.level_weighting,
        "global cross-attention": model.avcanet.fusion.global_attention,
        "classifier": model.classifier,
    }
    for name, part in parts.items():
        print(f"{name:45s} {count(part) / 1e6:8.2f} M")
    print(f"{'total':45s} {count(model) / 1e6:8.2f} M")

    frames = config.num_segments * config.frames_per_segment
    pixel_values_videos = torch.randn(1, frames, 3, config.image_size, config.image_size)
    input_features = torch.randn(1, config.num_mel_bins, config.num_segments * config.audio_frames_per_segment)
    labels = torch.tensor([0])

    model.eval()
    forward_times = []
    with torch.inference_mode():
        model(pixel_values_videos, input_features)  # warm-up
        for _ in range(args.repeats):
            start = time.perf_counter()
            model(pixel_values_videos, input_features)
            forward_times.append(time.perf_counter() - start)

    model.train()
    step_times = []
    model(pixel_values_videos, input_features, labels=labels).loss.backward()  # warm-up
    for _ in range(args.repeats):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model(pixel_values_videos, input_features, labels=labels).loss.backward()
        step_times.append(time.perf_counter() - start)
    print(f"threads={args.threads} forward (eval, batch 1): median {statistics.median(forward_times):.2f} s")
    print(f"threads={args.threads} forward+backward (train, batch 1): median {statistics.median(step_times):.2f} s")


if __name__ == "__main__":
    main()
