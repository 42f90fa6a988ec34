"""A tiny AV-CANet saved with its processor, as `save_pretrained` writes a real checkpoint (code included)."""

from pathlib import Path

import torch

from tiny import TINY


def save_tiny_model(folder, seed: int = 0) -> Path:
    """Save a randomly initialised tiny model and the processor of its geometry into `folder`."""
    from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification, AVCANetProcessor

    torch.manual_seed(seed)
    config = AVCANetConfig(**TINY)
    AVCANetForVideoClassification(config).eval().save_pretrained(folder)
    AVCANetProcessor.from_model_config(config).save_pretrained(folder)
    return Path(folder)
