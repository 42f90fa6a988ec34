"""examples/predict.py: decoding in DataLoader workers, bf16, and files split across two gloo processes under
`accelerate launch` with one merged output in the single-process order; unreadable files get their error line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from media import make_video
from saved_model import save_tiny_model

from modeling_avcanet import AVCANetForVideoClassification
from processing import AVCANetProcessor

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))
from predict import predict  # noqa: E402

LABELS = {"Joy": "positive", "Calm": "neutral", "Tension": "negative", "Sadness": "negative"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("model"), label_polarities=LABELS, logit_scale=200)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> list[Path]:
    """Five clips of different content, a garbage file in the middle and an empty one at the end."""
    folder = tmp_path_factory.mktemp("videos")
    paths = [
        make_video(
            folder / f"clip{index}.mp4",
            num_frames=16,
            fps=8,
            width=40,
            height=32,
            audio_rate=16000,
            audio_channels=1,
            burn_frame_index=False,
            seed=index,
        )  # fmt: skip
        for index in range(5)
    ]
    (folder / "garbage.mp4").write_bytes(b"not a video at all " * 64)
    (folder / "empty.mp4").write_bytes(b"")
    return paths[:3] + [folder / "garbage.mp4"] + paths[3:] + [folder / "empty.mp4"]


def check_lines(lines: list[dict], videos: list[Path]) -> None:
    assert [line["path"] for line in lines] == [str(path) for path in videos]
    for line, path in zip(lines, videos):
        if path.stem in ("garbage", "empty"):
            assert set(line) == {"path", "error"} and path.name in line["error"]
        else:
            assert set(line) == {"path", "labels", "polarity", "audio", "truncated"}
            assert line["polarity"] == LABELS[line["labels"][0]["label"]]
            assert line["audio"] is True and line["truncated"] is False  # every clip has sound and decodes whole


def test_two_workers_give_the_lines_of_none_and_bad_files_get_their_error_line(model_dir, videos):
    model = AVCANetForVideoClassification.from_pretrained(model_dir).eval()
    processor = AVCANetProcessor.from_pretrained(model_dir)
    serial = list(predict(model, processor, videos, top_k=2, batch_size=3))
    check_lines(serial, videos)
    for line, path in zip(serial, videos):  # each line is its own file's prediction
        if "labels" in line:
            with torch.no_grad():
                probabilities = model(**processor(videos=str(path))).logits.softmax(-1)[0]
            for entry in line["labels"]:
                assert abs(entry["score"] - probabilities[model.config.label2id[entry["label"]]].item()) < 2e-4
    assert len({json.dumps(line["labels"]) for line in serial if "labels" in line}) == 5
    assert list(predict(model, processor, videos, top_k=2, batch_size=3, num_workers=2)) == serial

    bf16 = list(predict(model, processor, videos, top_k=4, batch_size=3, bf16=True))
    check_lines(bf16, videos)
    full = {line["path"]: line for line in predict(model, processor, videos, top_k=4, batch_size=3)}
    differences = []
    for line in bf16:
        if "labels" in line:
            scores = {entry["label"]: entry["score"] for entry in full[line["path"]]["labels"]}
            differences += [abs(entry["score"] - scores[entry["label"]]) for entry in line["labels"]]
    assert 0 < max(differences) < 0.05  # bfloat16 autocast ran (0.013 here), and stays close to float32


def run(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home"), "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode in (0, 1), result.stderr[-5000:]  # 1: a file could not be read
    return result


@pytest.mark.slow
def test_two_gloo_processes_write_the_merged_output_of_one(model_dir, videos, tmp_path):
    arguments = [str(model_dir), *map(str, videos), "--top_k", "2", "--batch_size", "1", "--num_workers", "1"]
    single = run([sys.executable, str(REPO / "examples" / "predict.py"), *arguments, "--output", str(tmp_path / "one.jsonl")],
                 tmp_path)  # fmt: skip
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
              str(REPO / "examples" / "accelerate" / "cpu_two_processes.yaml")]  # fmt: skip
    merged = run(launch + [str(REPO / "examples" / "predict.py"), *arguments, "--output", str(tmp_path / "two.jsonl")],
                 tmp_path)  # fmt: skip
    lines = [json.loads(line) for line in (tmp_path / "one.jsonl").read_text().splitlines()]
    check_lines(lines, videos)
    assert (tmp_path / "two.jsonl").read_text() == (tmp_path / "one.jsonl").read_text()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hf_home", "one.jsonl", "two.jsonl"]  # parts removed
    assert "Process 0 of 2: 4 file(s)" in merged.stderr and "Process 1 of 2: 3 file(s)" in merged.stderr
    for result in (single, merged):
        assert "2 of 7 file(s) could not be read" in result.stderr
        assert result.returncode == 1  # some files could not be read; their lines were still written
