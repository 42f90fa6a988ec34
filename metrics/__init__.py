"""Offline emotion-recognition metrics: plain functions, a `Trainer` `compute_metrics` factory and, in
`avcanet_emotion.py`, the same metrics as an `evaluate` module loadable by path."""

from .emotion_metrics import (
    accuracy,
    confusion_matrix,
    emotion_metrics,
    macro_f1,
    make_compute_metrics,
    per_class_accuracy,
    polarity_accuracy,
    save_confusion_matrix,
    unweighted_average_recall,
    weighted_f1,
)

__all__ = [
    "accuracy",
    "confusion_matrix",
    "emotion_metrics",
    "macro_f1",
    "make_compute_metrics",
    "per_class_accuracy",
    "polarity_accuracy",
    "save_confusion_matrix",
    "unweighted_average_recall",
    "weighted_f1",
]
