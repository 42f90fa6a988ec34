"""
Write the model card of a trained AV-CANet folder and upload the folder (weights, processor, code, card, confusion
matrix) to the Hub as one commit. `examples/train.py --push_to_hub --hub_model_id org/name` calls this at the end;
run it alone to push a folder trained earlier:

    python examples/push_to_hub.py outputs/avcanet-demo org/avcanet-demo
"""

import argparse
import json
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, ModelCardData

CARD_TEMPLATE = """
# {model_name}

AV-CANet (eMotions, Wu et al.) for audio-visual emotion recognition in short videos: a Video Swin branch and a
ResNet audio branch fused by the Local-Global Fusion module, trained with the EP-CE loss.

```python
from transformers import AutoModelForVideoClassification, AutoProcessor

model = AutoModelForVideoClassification.from_pretrained("{repo_id}", trust_remote_code=True)
processor = AutoProcessor.from_pretrained("{repo_id}", trust_remote_code=True)
inputs = processor(videos=["clip.mp4"])  # frames and log-mel audio from the same file
print(model.config.id2label[model(**inputs).logits.argmax(-1).item()])
```

## Labels

| id | label | polarity |
|---|---|---|
{label_rows}

## Results on the test split

| metric | value |
|---|---|
{metric_rows}

![confusion matrix]({confusion_matrix_file})

## Deploy

The repository carries `handler.py`, a custom handler for
[Inference Endpoints](https://huggingface.co/docs/inference-endpoints/guides/custom_handler): create an endpoint
from this repository (task "Custom") and send the video as bytes or as base64 JSON:

```bash
curl $ENDPOINT_URL -H "Authorization: Bearer $HF_TOKEN" -H "Content-Type: video/mp4" --data-binary @clip.mp4
curl $ENDPOINT_URL -H "Authorization: Bearer $HF_TOKEN" -H "Content-Type: application/json" \
  -d '{{"inputs": "'$(base64 -w0 clip.mp4)'", "parameters": {{"top_k": 3, "timeline": true}}}}'
```

The answer is the pipeline's (`[{{"label", "score", "polarity"}}, ...]`, with `timeline` also the per-segment emotion
timeline); an unreadable video gets `{{"error": "<cause>", "status": 400}}`. For a faster CPU service, export to ONNX
(`python examples/export_onnx.py {repo_id} avcanet-onnx --int8` from the AV-CANet repository) and deploy that
folder: the same `handler.py` serves its `model.onnx` with onnxruntime.
"""


def write_model_card(output_dir, config, metrics: dict, confusion_matrix_file: str, repo_id: str | None = None) -> Path:
    """`README.md` in `output_dir`: pipeline tag, label set with polarities, metrics table and confusion matrix."""
    output_dir = Path(output_dir)
    repo_id = repo_id or output_dir.name
    polarities = config.label_polarities or {}
    label_rows = "\n".join(
        f"| {index} | {label} | {polarities.get(label, '-')} |" for index, label in sorted(config.id2label.items())
    )
    metric_rows = "\n".join(
        f"| {name.removeprefix('test_')} | {value:.4f} |" for name, value in metrics.items() if isinstance(value, float)
    )
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag="video-classification",
        tags=["avcanet", "emotion-recognition", "audio-visual", "video-classification", "custom_code"],
        metrics=["accuracy", "f1", "recall"],
    )
    content = f"---\n{card_data.to_yaml()}\n---\n" + CARD_TEMPLATE.format(
        model_name=repo_id,
        repo_id=repo_id,
        label_rows=label_rows,
        metric_rows=metric_rows,
        confusion_matrix_file=confusion_matrix_file,
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
    results = folder / "test_results.json"
    metrics = json.loads(results.read_text()) if results.exists() else {}
    write_model_card(folder, config, metrics, "confusion_matrix.png", repo_id=args.repo_id)
    print(push_folder_to_hub(folder, args.repo_id, args.token, args.private))


if __name__ == "__main__":
    main()
