"""
Write the model card of a trained AV-CANet folder and upload the folder (weights, processor, code, card, confusion
matrix) to the Hub as one commit. `examples/train.py --push_to_hub --hub_model_id org/name` calls this at the end;
run it alone to push a folder trained earlier:

    python examples/push_to_hub.py outputs/avcanet-demo org/avcanet-demo
"""

import argparse
import json
from pathlib import Path

from huggingface_hub import CommitOperationAdd, EvalResult, HfApi, ModelCard, ModelCardData

CARD_TEMPLATE = """
# {model_name}

AV-CANet (eMotions, Wu et al.) for audio-visual emotion recognition in short videos: a Video Swin branch and a
ResNet audio branch fused by the Local-Global Fusion module, trained with the EP-CE loss. It reads the frames
**and** the sound of a video.
{what_it_is}
## Usage

The model and its processor carry their own code: load them with `trust_remote_code=True`.

```python
from transformers import AutoModelForVideoClassification, AutoProcessor

model = AutoModelForVideoClassification.from_pretrained("{repo_id}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
inputs = processor(videos=["clip.mp4"])  # frames and log-mel audio from the same file
print(model.config.id2label[model(**inputs).logits.argmax(-1).item()])
```

Or in one line with the pipeline the checkpoint carries:

```python
from transformers import pipeline

pipeline("video-classification", model="{repo_id}", trust_remote_code=True)("clip.mp4", top_k=3)
```

Each answer also says `"audio": false` for a video without an audio track (the answer then comes from the picture
alone) and `"truncated": true` for a file whose picture could not be decoded to its end.

## Labels

| id | label | polarity |
|---|---|---|
{label_rows}

## Results on the test split

| metric | value |
|---|---|
{metric_rows}

`without_audio_accuracy` and `without_video_accuracy` are the accuracy with the sound or the picture taken away.

![confusion matrix]({confusion_matrix_file})

## Training

- Data: {training_data}
- Command: `{training_command}`

## Deploy

The repository carries `handler.py`, a custom handler for
[Inference Endpoints](https://huggingface.co/docs/inference-endpoints/guides/custom_handler): create an endpoint
from this repository (task "Custom") and send the video as bytes or as base64 JSON:

```bash
curl $ENDPOINT_URL -H "Authorization: Bearer $HF_TOKEN" -H "Content-Type: video/mp4" --data-binary @clip.mp4
curl $ENDPOINT_URL -H "Authorization: Bearer $HF_TOKEN" -H "Content-Type: application/json" \
  -d '{{"inputs": "'$(base64 -w0 clip.mp4)'", "parameters": {{"top_k": 3, "timeline": true}}}}'
```

The answer is the pipeline's (`[{{"label", "score", "polarity", "audio", "truncated"}}, ...]`, with `timeline` also
the per-segment emotion timeline); an unreadable video gets `{{"error": "<cause>", "status": 400}}`. For a faster CPU
service, export to ONNX (`python examples/export_onnx.py {repo_id} avcanet-onnx --int8` from the AV-CANet repository)
and deploy that folder: the same `handler.py` serves its `model.onnx` with onnxruntime.

## Limitations

{limitations}

## Citation

```bibtex
@inproceedings{{wu2025emotions,
  title={{eMotions: A Large-Scale Dataset and Audio-Visual Fusion Network for Emotion Analysis in Short-form Videos}},
  author={{Wu, Xuecheng and others}},
  booktitle={{ICMR}},
  year={{2025}},
  note={{arXiv:2508.06902}}
}}
```
"""

SYNTHETIC_WHAT_IT_IS = """
**This is the synthetic demo model.** It was trained by `make demo` on generated clips (`dataset_scripts.synthetic`)
whose label is a cue pair: the hue of the picture (warm or cool) and the pitch of a steady tone (high or low). It is
a {image_size}-pixel, {num_labels}-label toy that shows the code works end to end and that the fusion uses both
modalities. It is **not** an emotion model: its confident answers on any real video mean nothing. No checkpoint
trained on real emotion videos is published with this code; train one on eMotions or your own labelled videos.
"""

SYNTHETIC_LIMITATIONS = (
    "Evaluated only on the held-out split of the same generated set (colours and tones, no faces, speech or music). "
    "It has never been evaluated on real videos and must not be used on them."
)

REAL_LIMITATIONS = (
    "Evaluated only on the test split named above. Short-form social-media videos differ from films, interviews and "
    "live streams; the accuracy on other sources, languages, cultures and recording conditions is unknown. Emotion "
    "labels are subjective; do not use the predictions to make decisions about people."
)


def card_metadata(metrics: dict, datasets: list[str] | None, dataset_name: str, model_name: str) -> ModelCardData:
    """The Hub's model-card metadata: what it indexes (pipeline tag, library, data sets, metrics and results)."""
    eval_results = [
        EvalResult(
            task_type="video-classification",
            dataset_type=(datasets or ["synthetic"])[0],
            dataset_name=dataset_name,
            dataset_split="test",
            metric_type=name,
            metric_value=round(float(metrics[f"test_{name}"]), 4),
        )
        for name in ("accuracy", "macro_f1", "uar")
        if isinstance(metrics.get(f"test_{name}"), (int, float))
    ]
    return ModelCardData(
        library_name="transformers",
        pipeline_tag="video-classification",
        tags=["avcanet", "emotion-recognition", "audio-visual", "video-classification", "custom_code"],
        datasets=datasets or None,
        metrics=["accuracy", "f1", "recall"],
        model_name=model_name,
        eval_results=eval_results or None,
    )


def write_model_card(
    output_dir,
    config,
    metrics: dict,
    confusion_matrix_file: str,
    repo_id: str | None = None,
    training: dict | None = None,
) -> Path:
    """`README.md` in `output_dir`: the Hub metadata (`card_metadata`), usage with `trust_remote_code` and with
    `pipeline()`, the label set with polarities, the metrics table and confusion matrix, the training data and
    command (`training`: `{"data": ..., "command": ..., "datasets": [Hub ids]}`, as `examples/train.py` writes it to
    `training_run.json`), the limitations and the citation. A model trained on the synthetic set
    (`config.synthetic_demo`) says what it is and is not."""
    output_dir = Path(output_dir)
    repo_id = repo_id or output_dir.name
    training = training or {}
    synthetic = bool(getattr(config, "synthetic_demo", False))
    polarities = config.label_polarities or {}
    label_rows = "\n".join(
        f"| {index} | {label} | {polarities.get(label, '-')} |" for index, label in sorted(config.id2label.items())
    )
    metric_rows = "\n".join(
        f"| {name.removeprefix('test_')} | {value:.4f} |" for name, value in metrics.items() if isinstance(value, float)
    ) or "| (no test split was evaluated) | - |"
    data = training.get("data") or ("the synthetic audio-visual set (`dataset_scripts.synthetic`)" if synthetic
                                    else "not recorded")  # fmt: skip
    card_data = card_metadata(metrics, training.get("datasets"), data.split(" (")[0].strip("`"), repo_id)
    what_it_is = ""
    if synthetic:
        what_it_is = SYNTHETIC_WHAT_IT_IS.format(image_size=config.image_size, num_labels=config.num_labels)
    content = f"---\n{card_data.to_yaml()}\n---\n" + CARD_TEMPLATE.format(
        model_name=repo_id,
        repo_id=repo_id,
        what_it_is=what_it_is,
        label_rows=label_rows,
        metric_rows=metric_rows,
        confusion_matrix_file=confusion_matrix_file,
        training_data=data,
        training_command=training.get("command") or "not recorded",
        limitations=SYNTHETIC_LIMITATIONS if synthetic else REAL_LIMITATIONS,
    )
    path = output_dir / "README.md"
    ModelCard(content).save(path)
    return path


def files_to_upload(output_dir) -> list[Path]:
    """What a user of the model needs: weights, config, code (`handler.py`, the Inference Endpoints handler, included),
    processor, card, results; not checkpoints or data."""
    output_dir = Path(output_dir)
    left_local = ("checkpoint-", "data", "runs")
    return sorted(
        path
        for path in output_dir.rglob("*")
        if path.is_file()
        and not path.relative_to(output_dir).parts[0].startswith(left_local)
        and path.suffix not in (".pt", ".bin")
    )


def push_folder_to_hub(output_dir, repo_id: str, token: str | None = None, private: bool | None = None) -> str:
    """Upload the trained folder's files (`files_to_upload`) to `repo_id` in one commit; returns the repository id."""
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    operations = [
        CommitOperationAdd(path_in_repo=path.relative_to(output_dir).as_posix(), path_or_fileobj=str(path))
        for path in files_to_upload(output_dir)
    ]
    api.create_commit(repo_id=repo_id, operations=operations, commit_message="Upload AV-CANet")
    return repo_id


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", help="a folder saved by examples/train.py")
    parser.add_argument("repo_id", help="the Hub repository, e.g. org/avcanet-emotions")
    parser.add_argument("--token", default=None)
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args()

    from modeling_avcanet import AVCANetConfig

    folder = Path(args.folder)
    config = AVCANetConfig.from_pretrained(folder)
    results, run = folder / "test_results.json", folder / "training_run.json"
    metrics = json.loads(results.read_text()) if results.exists() else {}
    training = json.loads(run.read_text()) if run.exists() else None
    write_model_card(folder, config, metrics, "confusion_matrix.png", repo_id=args.repo_id, training=training)
    print(push_folder_to_hub(folder, args.repo_id, args.token, args.private))


if __name__ == "__main__":
    main()
