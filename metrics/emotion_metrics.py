"""
Emotion-recognition metrics as the video-emotion literature reports them, in plain numpy and scikit-learn.

AV-CANet's authors report top-1 accuracy (weighted average recall), weighted F1, UAR (unweighted average recall,
the mean of the per-class recalls), per-class accuracy and a confusion matrix; the audio-only and visual-only heads
are scored with accuracy. Macro F1 and polarity accuracy (is the predicted emotion on the right side of
positive / neutral / negative?) complete the set. Everything here works offline: the Hub's `evaluate` metrics
cannot be downloaded on air-gapped machines.

This file imports only numpy, scikit-learn and (lazily) matplotlib, because `avcanet_emotion.py` - the `evaluate`
module - ships it alongside itself into the `evaluate` modules cache.
"""

from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score


def accuracy(labels, predictions) -> float:
    """Fraction of samples whose predicted class is the true one (top-1 accuracy, a.k.a. WAR)."""
    return float(accuracy_score(labels, predictions))


def weighted_f1(labels, predictions) -> float:
    """Per-class F1 averaged with the class frequencies as weights: the F1 AV-CANet's code reports."""
    return float(f1_score(labels, predictions, average="weighted", zero_division=0))


def macro_f1(labels, predictions) -> float:
    """Per-class F1 averaged with equal weights over the classes that occur in the labels or the predictions,
    so that rare classes count as much as frequent ones."""
    return float(f1_score(labels, predictions, average="macro", zero_division=0))


def confusion_matrix(labels, predictions, num_labels: int) -> np.ndarray:
    """`(num_labels, num_labels)` counts: row = true class, column = predicted class."""
    labels, predictions = _as_class_ids(labels), _as_class_ids(predictions)
    matrix = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def per_class_accuracy(labels, predictions, num_labels: int) -> np.ndarray:
    """`(num_labels,)` recall of every class: the accuracy on its own samples; NaN for a class without samples."""
    matrix = confusion_matrix(labels, predictions, num_labels)
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / support, np.nan)


def unweighted_average_recall(labels, predictions, num_labels: int) -> float:
    """UAR: the mean of the per-class recalls over the classes that have samples. Unlike accuracy it is not
    inflated by always predicting the majority class, which matters on imbalanced emotion data."""
    return float(np.nanmean(per_class_accuracy(labels, predictions, num_labels)))


def polarity_accuracy(labels, predictions, class_polarities: Sequence[str]) -> float:
    """Accuracy after mapping every class to its polarity: `class_polarities[i]` is the polarity of class `i`.
    A wrong emotion of the right polarity counts as correct; this is the error EP-CE penalises less."""
    polarity_of_class = np.asarray(class_polarities)
    return accuracy(polarity_of_class[_as_class_ids(labels)], polarity_of_class[_as_class_ids(predictions)])


def emotion_metrics(
    labels,
    predictions,
    label_names: Sequence[str],
    label_polarities: Mapping[str, str] | None = None,
) -> dict[str, float]:
    """
    All scalar metrics of one set of predictions, keyed as `Trainer` logs them (it adds the `eval_` prefix):
    `accuracy`, `weighted_f1`, `macro_f1`, `uar`, `polarity_accuracy` (when `label_polarities` is given) and
    `accuracy_<label>` for every class that has samples.

    Args:
        labels, predictions: class ids, `(num_samples,)`.
        label_names: name of every class id, in id order.
        label_polarities: polarity of every label name.
    """
    num_labels = len(label_names)
    results = {
        "accuracy": accuracy(labels, predictions),
        "weighted_f1": weighted_f1(labels, predictions),
        "macro_f1": macro_f1(labels, predictions),
        "uar": unweighted_average_recall(labels, predictions, num_labels),
    }
    if label_polarities is not None:
        class_polarities = [label_polarities[name] for name in label_names]
        results["polarity_accuracy"] = polarity_accuracy(labels, predictions, class_polarities)
    for name, class_accuracy in zip(label_names, per_class_accuracy(labels, predictions, num_labels)):
        if not np.isnan(class_accuracy):
            results[f"accuracy_{name}"] = float(class_accuracy)
    return results


def make_compute_metrics(
    id2label: Mapping[int, str], label_polarities: Mapping[str, str] | None = None
) -> Callable[..., dict[str, float]]:
    """
    A `compute_metrics` function for `transformers.Trainer`.

    `EvalPrediction.predictions` is AV-CANet's `(logits, audio_logits, visual_logits)` tuple (Trainer drops the loss
    and the `None` fields), a single logits array, or class ids when `preprocess_logits_for_metrics` already took the
    argmax. The fused logits give every metric of `emotion_metrics`; the unimodal heads, when present, add
    `audio_accuracy` and `visual_accuracy`, which show whether fusion beats each branch alone.
    """
    names_by_id = {int(index): name for index, name in id2label.items()}  # JSON configs give str keys
    label_names = [names_by_id[index] for index in range(len(names_by_id))]

    def compute_metrics(eval_prediction) -> dict[str, float]:
        outputs = eval_prediction.predictions
        outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
        labels = _as_class_ids(eval_prediction.label_ids)
        fused = np.asarray(outputs[0])
        results = emotion_metrics(labels, _predicted_classes(fused), label_names, label_polarities)
        for name, head in zip(("audio", "visual"), outputs[1:3]):
            # hidden states can follow the logits in the tuple: only arrays shaped like the fused output are heads
            if isinstance(head, np.ndarray) and head.shape == fused.shape:
                results[f"{name}_accuracy"] = accuracy(labels, _predicted_classes(head))
        return results

    return compute_metrics


def save_confusion_matrix(
    matrix: np.ndarray,
    label_names: Sequence[str],
    path: str | PathLike,
    normalize: bool = True,
    title: str = "Confusion matrix",
) -> Path:
    """
    Save a confusion matrix as a PNG heat map with labelled axes and the value of every cell.

    normalize: show each row as fractions of its class (the row-normalised matrix AV-CANet's code reports), so
        that rare and frequent classes are equally readable; the cells of an empty row stay 0.
    """
    # the object-oriented API on an Agg canvas: no pyplot state, no display, whatever backend the caller uses
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(matrix, dtype=np.float64)
    if normalize:
        row_sums = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)
    num_labels = len(label_names)
    side = 1.5 + 0.6 * num_labels
    figure = Figure(figsize=(side + 1.0, side), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else max(matrix.max(), 1.0))
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    axes.set_xticks(range(num_labels), labels=label_names, rotation=45, ha="right")
    axes.set_yticks(range(num_labels), labels=label_names)
    axes.set_xlabel("Predicted emotion")
    axes.set_ylabel("True emotion")
    axes.set_title(title)
    threshold = 0.5 * (1.0 if normalize else matrix.max())
    for row in range(num_labels):
        for column in range(num_labels):
            value = matrix[row, column]
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            color = "white" if value > threshold else "black"
            axes.text(column, row, text, ha="center", va="center", color=color, fontsize=8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path


def _as_class_ids(values) -> np.ndarray:
    return np.asarray(values).reshape(-1).astype(np.int64)


def _predicted_classes(scores: np.ndarray) -> np.ndarray:
    """Class ids from `(num_samples, num_labels)` scores, or the ids themselves when already reduced."""
    return _as_class_ids(scores.argmax(axis=-1) if scores.ndim > 1 else scores)


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
