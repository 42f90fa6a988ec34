"""The tiny AV-CANet geometry the tests share: every part of the architecture, small enough for 2 CPU cores."""

import torch

from modeling_avcanet import AVCANetConfig

TINY = dict(
    num_segments=4,
    frames_per_segment=4,
    image_size=32,
    swin_embed_dim=12,
    swin_depths=[1, 1],
    swin_num_heads=[1, 2],
    swin_window_size=[2, 4, 4],
    num_mel_bins=16,
    audio_frames_per_segment=8,
    audio_resnet_layers=[1, 1, 1, 1],
    hidden_size=32,
    num_attention_heads=4,
    intermediate_size=32,
    num_pyramid_levels=2,
    global_num_attention_heads=4,
)


def tiny_config(**overrides) -> AVCANetConfig:
    return AVCANetConfig(**{**TINY, **overrides})


def make_inputs(config: AVCANetConfig, batch_size: int = 2, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    frames = config.num_segments * config.frames_per_segment
    return {
        "pixel_values_videos": torch.randn(
            batch_size, frames, config.num_channels, config.image_size, config.image_size, generator=generator
        ),
        "input_features": torch.randn(
            batch_size, config.num_mel_bins, config.num_segments * config.audio_frames_per_segment, generator=generator
        ),
    }
