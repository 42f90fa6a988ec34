"""A tiny AV-CANet saved with its processor, as `save_pretrained` writes a real checkpoint (code included)."""

from pathlib import Path

import torch

from tiny import TINY


def save_tiny_model(folder, seed: int = 0, label_polarities: dict | None = None, logit_scale: float = 1.0) -> Path:
    """Save a randomly initialised tiny model and the processor of its geometry into `folder`. `label_polarities`
    names its labels, in order, with their polarities; `logit_scale` multiplies the classifier's weights (200 spreads
    the logits, so that different clips get clearly different top labels)."""
    from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification, AVCANetProcessor

    torch.manual_seed(seed)
    labels = {}
    if label_polarities is not None:
        labels = dict(label_polarities=label_polarities, id2label=dict(enumerate(label_polarities)),
                      label2id={label: index for index, label in enumerate(label_polarities)})  # fmt: skip
    config = AVCANetConfig(**TINY, **labels)
    model = AVCANetForVideoClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(logit_scale)
    model.save_pretrained(folder)
    AVCANetProcessor.from_model_config(config).save_pretrained(folder)
    return Path(folder)
