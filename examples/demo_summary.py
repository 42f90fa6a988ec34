"""
The few lines `make demo` ends with: the test accuracy of the model it trained, the two ablations, where the model
and the predictions are, and what to run next.

    python examples/demo_summary.py outputs/avcanet-demo [--predictions outputs/avcanet-demo/predictions.jsonl]
"""

import argparse
import json
import sys
from pathlib import Path


def prediction_counts(predictions: Path) -> tuple[int, int, int]:
    """(clips, clips whose top label is their folder's name, unreadable files) of a predict.py output."""
    clips = correct = unreadable = 0
    for line in predictions.read_text().splitlines():
        result = json.loads(line)
        clips += 1
        if "error" in result:
            unreadable += 1
        elif result["labels"][0]["label"] == Path(result["path"]).parent.name:  # the synthetic set's <split>/<label>/
            correct += 1
    return clips, correct, unreadable


def summary(model_dir, predictions=None, python: str = ".venv/bin/python") -> str:
    model_dir = Path(model_dir)
    predictions = Path(predictions) if predictions else model_dir / "predictions.jsonl"
    results_file = model_dir / "test_results.json"
    if not results_file.exists():
        raise FileNotFoundError(f"{results_file} is missing: examples/train.py did not finish its test evaluation")
    results = json.loads(results_file.read_text())
    config_file = model_dir / "config.json"
    synthetic = json.loads(config_file.read_text()).get("synthetic_demo", True) if config_file.exists() else True
    lines = [
        f"Model: {model_dir}" + (" (the synthetic demo model: its answers on real videos mean nothing)" * synthetic),
        f"Test accuracy: {results['test_accuracy']:.2f}; without the audio: "
        f"{results.get('test_without_audio_accuracy', float('nan')):.2f}, without the picture: "
        f"{results.get('test_without_video_accuracy', float('nan')):.2f} (either cue alone: at most 0.50)",
    ]
    if predictions.exists():
        clips, correct, unreadable = prediction_counts(predictions)
        unread = f", {unreadable} unreadable" if unreadable else ""
        lines.append(f"Predictions: {predictions} ({clips} held-out clips, {correct} with the right top label{unread})")
    model_flag = "" if model_dir == Path("outputs/avcanet-demo") else f" --model {model_dir}"
    next_steps = [
        (f"{python} examples/predict.py {model_dir} YOUR_CLIP.mp4 --timeline", "any video, one JSON line each"),
        (f"{python} examples/demo/app.py{model_flag}", "the web page, http://127.0.0.1:7860"),
        ("make clean-demo", "delete the demo model and its clips (.venv stays)"),
    ]
    width = max(len(command) for command, _ in next_steps)
    lines += ["Next:"] + [f"  {command.ljust(width)}  # {why}" for command, why in next_steps]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="the folder examples/train.py saved")
    parser.add_argument("--predictions", help="predict.py's output (default: MODEL_DIR/predictions.jsonl)")
    args = parser.parse_args(argv)
    print(summary(args.model_dir, args.predictions))
    return 0


if __name__ == "__main__":
    sys.exit(main())
