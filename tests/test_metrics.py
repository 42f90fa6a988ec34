"""Emotion metrics against hand-computed values, the Trainer `compute_metrics` and the offline `evaluate` module."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from transformers import EvalPrediction

from metrics import (
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

REPO = Path(__file__).resolve().parents[1]

# Imbalanced: 6 samples of class 0, 2 of class 1, 2 of class 2. Class 0 is always right; one sample of each minority
# class is predicted as class 0.
LABELS = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2]
PREDICTIONS = [0, 0, 0, 0, 0, 0, 0, 1, 0, 2]
NAMES = ["Joy", "Relief", "Fear"]
POLARITY = {"Joy": "positive", "Relief": "positive", "Fear": "negative"}
# By hand: recalls 6/6, 1/2, 1/2; precisions 6/8, 1/1, 1/1; F1 = 2PR/(P+R) = 6/7, 2/3, 2/3.
F1 = [6 / 7, 2 / 3, 2 / 3]


def test_hand_computed_values():
    assert accuracy(LABELS, PREDICTIONS) == pytest.approx(8 / 10)
    assert unweighted_average_recall(LABELS, PREDICTIONS, 3) == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert per_class_accuracy(LABELS, PREDICTIONS, 3) == pytest.approx([1.0, 0.5, 0.5])
    assert macro_f1(LABELS, PREDICTIONS) == pytest.approx(sum(F1) / 3)  # 46/63
    assert weighted_f1(LABELS, PREDICTIONS) == pytest.approx((6 * F1[0] + 2 * F1[1] + 2 * F1[2]) / 10)  # 82/105
    # "Relief" mistaken for "Joy" keeps its polarity; "Fear" mistaken for "Joy" does not
    assert polarity_accuracy(LABELS, PREDICTIONS, ["positive", "positive", "negative"]) == pytest.approx(9 / 10)
    assert confusion_matrix(LABELS, PREDICTIONS, 3).tolist() == [[6, 0, 0], [1, 1, 0], [1, 0, 1]]


def test_uar_is_not_fooled_by_the_majority_class():
    majority = [0] * len(LABELS)
    assert accuracy(LABELS, majority) == pytest.approx(0.6)
    assert unweighted_average_recall(LABELS, majority, 3) == pytest.approx(1 / 3)
    # macro F1 weighs the two minority classes (F1 = 0) as much as the majority class; weighted F1 barely does
    majority_f1 = 2 * 0.6 / 1.6
    assert macro_f1(LABELS, majority) == pytest.approx(majority_f1 / 3)
    assert weighted_f1(LABELS, majority) == pytest.approx(0.6 * majority_f1)


def test_classes_without_samples():
    # a fourth class nobody has: its recall is undefined and left out of UAR, not counted as 0
    assert np.isnan(per_class_accuracy(LABELS, PREDICTIONS, 4)[3])
    assert unweighted_average_recall(LABELS, PREDICTIONS, 4) == pytest.approx(2 / 3)
    assert confusion_matrix(LABELS, PREDICTIONS, 4).shape == (4, 4)


def test_emotion_metrics_keys():
    results = emotion_metrics(LABELS, PREDICTIONS, NAMES + ["Calm"], {**POLARITY, "Calm": "neutral"})
    assert results == pytest.approx(
        {
            "accuracy": 0.8,
            "weighted_f1": 82 / 105,
            "macro_f1": 46 / 63,
            "uar": 2 / 3,
            "polarity_accuracy": 0.9,
            "accuracy_Joy": 1.0,
            "accuracy_Relief": 0.5,
            "accuracy_Fear": 0.5,
        }
    )  # no accuracy_Calm: that class has no samples
    assert "polarity_accuracy" not in emotion_metrics(LABELS, PREDICTIONS, NAMES)


def one_hot_logits(predictions, num_labels=3):
    return np.eye(num_labels, dtype=np.float32)[predictions] * 5.0 - 1.0


def test_trainer_compute_metrics_with_unimodal_heads():
    compute_metrics = make_compute_metrics({0: "Joy", 1: "Relief", 2: "Fear"}, POLARITY)
    audio = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0]  # 6/10 right
    visual = [1, 1, 1, 1, 1, 1, 1, 1, 2, 2]  # 4/10 right
    hidden_states = (np.zeros((10, 4, 8), dtype=np.float32),)  # may follow the logits: not a head
    predictions = (one_hot_logits(PREDICTIONS), one_hot_logits(audio), one_hot_logits(visual), hidden_states)
    results = compute_metrics(EvalPrediction(predictions=predictions, label_ids=np.array(LABELS)))
    assert results["accuracy"] == pytest.approx(0.8)
    assert results["uar"] == pytest.approx(2 / 3)
    assert results["polarity_accuracy"] == pytest.approx(0.9)
    assert results["audio_accuracy"] == pytest.approx(0.6)
    assert results["visual_accuracy"] == pytest.approx(0.4)
    assert all(isinstance(value, float) for value in results.values())  # JSON-serialisable Trainer logs
    json.dumps(results)


def test_trainer_compute_metrics_with_plain_logits_or_class_ids():
    compute_metrics = make_compute_metrics({"0": "Joy", "1": "Relief", "2": "Fear"})  # ids as JSON keys are str
    for predictions in (
        one_hot_logits(PREDICTIONS),
        np.array(PREDICTIONS),
    ):  # class ids: preprocess_logits_for_metrics
        results = compute_metrics(EvalPrediction(predictions=predictions, label_ids=np.array(LABELS)))
        assert results["macro_f1"] == pytest.approx(46 / 63)
        assert "audio_accuracy" not in results and "polarity_accuracy" not in results


def test_save_confusion_matrix(tmp_path):
    path = save_confusion_matrix(confusion_matrix(LABELS, PREDICTIONS, 3), NAMES, tmp_path / "plots" / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    raw = save_confusion_matrix(np.zeros((3, 3)), NAMES, tmp_path / "empty.png", normalize=False)  # no division by 0
    assert raw.stat().st_size > 0


def test_evaluate_module_loads_offline_by_path(tmp_path):
    """`evaluate.load(<path>)` in a fresh process with the network switched off and empty caches."""
    script = f"""
import json, evaluate
metric = evaluate.load({str(REPO / "metrics" / "avcanet_emotion.py")!r}, keep_in_memory=True)
metric.add_batch(predictions={PREDICTIONS[:5]}, references={LABELS[:5]})
metric.add_batch(predictions={PREDICTIONS[5:]}, references={LABELS[5:]})
print(json.dumps(metric.compute(label_names={NAMES}, label_polarities={POLARITY})))
"""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "PYTHONPATH": "",  # the copy in the modules cache must not need the repository on the path
    }
    run = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout.strip().splitlines()[-1])
    assert results["accuracy"] == pytest.approx(0.8)
    assert results["uar"] == pytest.approx(2 / 3)
    assert results["macro_f1"] == pytest.approx(46 / 63)
    assert results["polarity_accuracy"] == pytest.approx(0.9)
    assert results["confusion_matrix"] == [[6, 0, 0], [1, 1, 0], [1, 0, 1]]
    assert list((tmp_path / "modules").rglob("emotion_metrics.py"))  # its sibling was copied along
