"""
The emotion metrics of `emotion_metrics.py` as an `evaluate` module, loadable offline from the repository:

    metric = evaluate.load("metrics/avcanet_emotion.py")
    metric.add_batch(predictions=[0, 2], references=[0, 1])
    metric.compute(label_names=["Joy", "Calm", "Fear"], label_polarities={"Joy": "positive", ...})

Load it by its path: given a bare name, `evaluate` looks for the module on the Hub. `evaluate` copies this
script and its relative import `.emotion_metrics` into its modules cache, so only installed libraries may be
imported besides that sibling, one per line (its dependency scanner misreads `import a, b`).
"""

import datasets
import evaluate

from .emotion_metrics import confusion_matrix, emotion_metrics

_DESCRIPTION = """
Video emotion recognition metrics: accuracy (WAR), weighted F1, macro F1, UAR (mean per-class recall), polarity
accuracy (positive / neutral / negative), per-class accuracy and the confusion matrix.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted class ids.
    references (`list[int]`): true class ids.
    label_names (`list[str]`, *optional*): name of every class id, in id order; defaults to the ids as strings,
        covering the largest id seen.
    label_polarities (`dict[str, str]`, *optional*): polarity of every label name; adds `polarity_accuracy`.
Returns:
    `accuracy`, `weighted_f1`, `macro_f1`, `uar`, `polarity_accuracy` (with `label_polarities`), `accuracy_<label>`
    for every class with samples, and `confusion_matrix` (rows: true class, columns: predicted class).
Example:
    >>> metric = evaluate.load("metrics/avcanet_emotion.py")
    >>> metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], label_names=["Joy", "Sadness"])["uar"]
    0.75
"""

_CITATION = """
@inproceedings{wu2025emotions,
  title={eMotions: A Large-Scale Dataset and Audio-Visual Fusion Network for Emotion Analysis in Short-form Videos},
  author={Wu, Xuecheng and others},
  booktitle={ICMR},
  year={2025}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class AvcanetEmotion(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
            reference_urls=["https://arxiv.org/abs/2508.06902"],
        )

    def _compute(self, predictions, references, label_names=None, label_polarities=None):
        if label_names is None:
            label_names = [str(index) for index in range(max(max(predictions), max(references)) + 1)]
        results = emotion_metrics(references, predictions, label_names, label_polarities)
        results["confusion_matrix"] = confusion_matrix(references, predictions, len(label_names)).tolist()
        return results
