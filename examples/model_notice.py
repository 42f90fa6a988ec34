"""Whether a loaded model is the synthetic demo model, and the one-line notice `predict.py` and the demo page show.

`examples/train.py` writes `synthetic_demo` into the config of every model it trains (true when it trained on the
generated set of `dataset_scripts.synthetic`, false otherwise); a model saved before that field existed counts as the
demo model when its labels are exactly the synthetic set's.
"""

SYNTHETIC_LABELS = ("Joy", "Calm", "Tension", "Sadness")  # dataset_scripts.synthetic.LABEL_NAMES, in its order

SYNTHETIC_DEMO_NOTICE = (
    "Notice: this is the synthetic demo model (trained on generated clips whose label is a colour plus a tone, "
    "4 labels, {size}-pixel frames): its answers on real videos mean nothing."
)


def is_synthetic_demo(config) -> bool:
    """True for a model trained on the synthetic set (the `synthetic_demo` config field, else its label set)."""
    marker = getattr(config, "synthetic_demo", None)
    if marker is not None:
        return bool(marker)
    labels = tuple(config.id2label[index] for index in sorted(config.id2label))
    return labels == SYNTHETIC_LABELS


def synthetic_demo_notice(config) -> str | None:
    """The notice for the synthetic demo model, or None for any other model."""
    if not is_synthetic_demo(config):
        return None
    return SYNTHETIC_DEMO_NOTICE.format(size=getattr(config, "image_size", "?"))


__all__ = ["SYNTHETIC_DEMO_NOTICE", "is_synthetic_demo", "synthetic_demo_notice"]
