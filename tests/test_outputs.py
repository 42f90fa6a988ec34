"""Honest outputs (issues 24 and 25): every answer says when a video has no audio track or a cut-off picture, the
synthetic demo model is named as such, predict.py's exit codes and model check, train.py's --help and dependent
defaults, `model.save_pretrained` and `pipeline()`, the demo's API, `make demo`'s re-runs and summary, the model
card's Hub metadata."""

import importlib.util
import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from media import make_video, truncate
from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification
from processing import AVCANetProcessor
from processing.pipeline_avcanet import segment_timeline
from tiny import TINY

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))
import demo_summary  # noqa: E402
import predict  # noqa: E402
import push_to_hub  # noqa: E402
import train  # noqa: E402
from model_notice import is_synthetic_demo, synthetic_demo_notice  # noqa: E402
from timeline import save_timeline_plot  # noqa: E402

SYNTHETIC = {"Joy": "positive", "Calm": "neutral", "Tension": "negative", "Sadness": "negative"}
OTHER = {"Happy": "positive", "Sad": "negative", "Angry": "negative"}


def save_model(folder: Path, labels: dict, synthetic_demo: bool | None = None, processor: bool = True) -> Path:
    torch.manual_seed(0)
    config = AVCANetConfig(**TINY, label_polarities=labels)
    if synthetic_demo is not None:
        config.synthetic_demo = synthetic_demo
    AVCANetForVideoClassification(config).eval().save_pretrained(folder)
    if processor:
        AVCANetProcessor.from_model_config(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("outputs_media")
    full = make_video(root / "full.mp4", num_frames=300, fps=30, faststart=True)
    return {
        "sound": make_video(root / "sound.mp4", num_frames=24, fps=12, tone_start_s=0.5),
        "silent": make_video(root / "silent.mp4", num_frames=24, fps=12, with_audio=False),
        "cut": truncate(full, 0.6, root / "cut.mp4"),  # index at the front: opens, its tail does not decode
        "full": full,
    }


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_model(tmp_path_factory.mktemp("outputs_model") / "model", OTHER, synthetic_demo=False)


# ------------------------------------------------------------------------------------------ no audio, cut-off files


def test_processor_reports_a_cut_off_picture(media):
    processor = AVCANetProcessor.from_model_config(AVCANetConfig(**TINY))
    with pytest.warns(UserWarning, match="cut.mp4"):
        status = processor(videos=[str(media["full"]), str(media["cut"])], return_video_status=True)
    assert status["video_truncated"].tolist() == [0, 1]
    full_seconds, cut_seconds = status["video_decoded_seconds"].tolist()
    assert abs(full_seconds - 10.0) < 0.1 and 0.3 < cut_seconds < full_seconds - 1.0
    assert status["audio_mask"].tolist() == [1, 1]
    assert "video_truncated" not in processor(videos=str(media["full"]))  # only on request: the model does not take it


def test_timeline_without_audio_reports_no_audio_share():
    generator = torch.Generator().manual_seed(0)
    audio, visual = torch.randn(4, 3, generator=generator), torch.randn(4, 3, generator=generator)
    spans = torch.tensor([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0], [3.0, 4.0]], dtype=torch.float64)
    id2label = dict(enumerate(OTHER))
    with_audio = segment_timeline(audio + visual, audio, visual, spans, id2label)
    without = segment_timeline(audio + visual, audio, visual, spans, id2label, has_audio=False)
    assert all(isinstance(entry["audio_share"], float) and "audio_baseline" not in entry for entry in with_audio)
    assert all(entry["audio_share"] is None and entry["audio_baseline"] is True for entry in without)
    # the rest is the same: the labels, scores and the two parts
    for entry, plain in zip(without, with_audio):
        assert {k: v for k, v in entry.items() if k.startswith("audio") is False} == {
            k: v for k, v in plain.items() if k.startswith("audio") is False
        }
    assert save_timeline_plot(without, Path(__import__("tempfile").mkdtemp()) / "silent.png").stat().st_size > 5000


def test_predict_lines_say_no_audio_and_truncated(model_dir, media):
    model = AVCANetForVideoClassification.from_pretrained(model_dir).eval()
    processor = AVCANetProcessor.from_pretrained(model_dir)
    videos = [media["sound"], media["silent"], media["cut"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cut-off file's warning
        results = predict.predict(model, processor, videos, 2, 3, timeline=True)
        lines = {Path(line["path"]).stem: line for line in results}
    assert lines["sound"]["audio"] is True and lines["sound"]["truncated"] is False
    assert "decoded_seconds" not in lines["sound"]
    assert lines["silent"]["audio"] is False and lines["silent"]["truncated"] is False
    assert all(entry["audio_share"] is None for entry in lines["silent"]["timeline"])
    assert all(entry["audio_share"] is not None for entry in lines["sound"]["timeline"])
    assert lines["cut"]["truncated"] is True and 0.3 < lines["cut"]["decoded_seconds"] < 9.0
    assert max(entry["end"] for entry in lines["cut"]["timeline"]) <= lines["cut"]["decoded_seconds"] + 1e-3


def test_pipeline_answers_say_no_audio_and_truncated(model_dir, media):
    from transformers import pipeline

    classifier = pipeline("video-classification", model=str(model_dir), trust_remote_code=True)
    plain = classifier(str(media["silent"]), top_k=2)
    assert len(plain) == 2 and all(entry["audio"] is False and entry["truncated"] is False for entry in plain)
    assert all(entry["audio"] is True for entry in classifier(str(media["sound"]), top_k=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        answer = classifier(str(media["cut"]), timeline=True)
    assert answer["truncated"] is True and answer["audio"] is True and 0.3 < answer["decoded_seconds"] < 9.0
    silent = classifier(str(media["silent"]), timeline=True)
    assert silent["audio"] is False and all(entry["audio_share"] is None for entry in silent["timeline"])
    batched = classifier([str(media["sound"]), str(media["silent"])], batch_size=2, top_k=1)
    assert [answer[0]["audio"] for answer in batched] == [True, False]


# ------------------------------------------------------------------------------------------------ synthetic notice


def test_the_synthetic_demo_model_is_recognised():
    assert is_synthetic_demo(AVCANetConfig(**TINY, label_polarities=SYNTHETIC))  # older demo models: their labels
    marked = AVCANetConfig(**TINY, label_polarities=SYNTHETIC)
    marked.synthetic_demo = False  # trained on real videos that happen to use these labels
    assert not is_synthetic_demo(marked) and synthetic_demo_notice(marked) is None
    other = AVCANetConfig(**TINY, label_polarities=OTHER)
    assert not is_synthetic_demo(other)
    other.synthetic_demo = True
    notice = synthetic_demo_notice(other)
    assert "synthetic demo model" in notice and "32-pixel" in notice and "\n" not in notice


# --------------------------------------------------------------------------------------------- predict.py CLI edges


def test_predict_exit_codes_and_notice(tmp_path, media, model_dir, capsys, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no videos here")
    assert predict.main([str(model_dir), str(empty)]) == 2
    assert "no video files in" in capsys.readouterr().err

    def no_loading(*args, **kwargs):
        raise AssertionError("the model must not be loaded (no network call) for a missing folder")

    monkeypatch.setattr(predict.AutoModelForVideoClassification, "from_pretrained", no_loading)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").mkdir()
    for missing in ("outputs/nope", str(tmp_path / "nope"), "./nope", "not a repo id!"):
        assert predict.main([missing, str(media["sound"])]) == 2
        assert f"no such folder or Hub repository: {missing}" in capsys.readouterr().err
    assert predict.model_location_problem("org/avcanet-emotions") is None  # a Hub id is left to from_pretrained
    assert "no config.json" in predict.model_location_problem(str(empty))
    monkeypatch.undo()

    synthetic = save_model(tmp_path / "synthetic", SYNTHETIC, synthetic_demo=True)
    output = tmp_path / "lines.jsonl"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = predict.main([str(synthetic), str(media["sound"]), str(broken), "--output", str(output)])
    assert code == 1
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [("error" in line) for line in lines] == [False, True]  # the lines are still written
    err = capsys.readouterr().err
    assert "1 of 2 file(s) could not be read" in err
    assert sum("synthetic demo model" in line for line in err.splitlines()) == 1
    assert not [w for w in caught if "pin_memory" in str(w.message)]

    assert predict.main([str(model_dir), str(media["sound"]), "--output", str(output)]) == 0
    assert "synthetic demo model" not in capsys.readouterr().err
    help_text = predict.__doc__
    assert "Exit status: 0" in help_text and "1 when any file could not be read" in help_text


# ------------------------------------------------------------------------------------------------------ train.py


def test_train_help_starts_with_a_description_and_shows_the_project_defaults():
    text = train.build_parser().format_help()
    head = text.splitlines()[:12]
    assert head[0].startswith("usage: python examples/train.py") and len(head[0]) < 120
    assert any(line.startswith("Fine-tune AV-CANet") for line in head[:4])
    assert any("python examples/train.py --output_dir" in line for line in head)
    flat = " ".join(text.split())
    assert "(default: outputs/avcanet-demo)" in flat  # the project's default, not transformers' None
    assert "--load_best_model_at_end" in flat and "(default: True)" in flat
    for arguments in (train.DataArguments, train.ModelArguments):
        for field in arguments.__dataclass_fields__.values():
            assert field.metadata.get("help"), f"--{field.name} has no help text"


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--save_strategy", "steps"], ("steps", "steps", True)),
        (["--save_strategy=steps", "--save_steps", "7"], ("steps", "steps", True)),
        (["--eval_strategy", "steps", "--eval_steps", "4"], ("steps", "steps", True)),
        (["--eval_strategy", "no"], ("epoch", "no", False)),
        (["--save_strategy", "no"], ("no", "epoch", False)),
        ([], ("epoch", "epoch", True)),
    ],
)
def test_one_trainer_flag_alone_never_fails(argv, expected):
    _, _, args = train.parse_arguments(argv, has_accelerator=False)
    assert (args.save_strategy.value, args.eval_strategy.value, args.load_best_model_at_end) == expected
    if args.save_strategy.value == "steps":
        assert args.save_steps % args.eval_steps == 0


def test_conflicting_flags_name_the_project_defaults():
    with pytest.raises(ValueError, match="defaults include --eval_strategy epoch --save_strategy epoch"):
        train.parse_arguments(["--save_strategy", "steps", "--eval_strategy", "epoch"], has_accelerator=False)


def test_no_pinned_memory_without_an_accelerator():
    assert train.parse_arguments([], has_accelerator=False)[2].dataloader_pin_memory is False
    assert train.parse_arguments([], has_accelerator=True)[2].dataloader_pin_memory is True
    given = ["--dataloader_pin_memory", "true"]
    assert train.parse_arguments(given, has_accelerator=False)[2].dataloader_pin_memory is True


def test_resuming_a_finished_run_says_so(tmp_path, caplog):
    checkpoint = tmp_path / "checkpoint-60"
    checkpoint.mkdir()
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 60, "max_steps": 60}))
    with caplog.at_level(logging.WARNING, logger="avcanet.train"):
        train.warn_if_finished(checkpoint)
    assert "already finished training (step 60 of 60)" in caplog.text
    caplog.clear()
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 30, "max_steps": 60}))
    with caplog.at_level(logging.WARNING, logger="avcanet.train"):
        train.warn_if_finished(checkpoint)
    assert caplog.text == ""


# ---------------------------------------------------------------------------------- save_pretrained and pipeline()


def test_a_model_saved_alone_gets_an_error_that_says_to_save_the_processor(tmp_path):
    from transformers import pipeline

    folder = save_model(tmp_path / "model_only", OTHER, processor=False)
    assert (folder / "pipeline_avcanet.py").exists() and (folder / "errors.py").exists()
    with pytest.raises(ValueError, match=r"processor\.save_pretrained\(folder\)"):
        pipeline("video-classification", model=str(folder), trust_remote_code=True)
    AVCANetProcessor.from_model_config(AVCANetConfig(**TINY)).save_pretrained(folder)
    assert pipeline("video-classification", model=str(folder), trust_remote_code=True) is not None


# ----------------------------------------------------------------------------------------------------- the demo


def load_app():
    spec = importlib.util.spec_from_file_location("avcanet_demo_app_outputs", REPO / "examples" / "demo" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    return app


def test_demo_api_notice_and_status(tmp_path, media):
    app = load_app()
    synthetic = save_model(tmp_path / "synthetic", SYNTHETIC, synthetic_demo=True)
    demo = app.build_demo(str(synthetic))
    info = demo.get_api_info()
    endpoints = info["named_endpoints"]
    assert list(endpoints) == ["/analyse"], list(endpoints)
    assert [output["label"] for output in endpoints["/analyse"]["returns"]] == ["labels", "summary", "timeline"]
    assert not info.get("unnamed_endpoints")
    shown = " ".join(str(getattr(block, "value", "")) for block in demo.blocks.values())
    assert "synthetic demo model" in shown

    other = app.EmotionDemo(str(save_model(tmp_path / "other", OTHER, synthetic_demo=False)))
    assert other.notice is None
    _, status, plot = other.analyse(str(media["silent"]))
    assert "No audio track" in status and Path(plot).exists()
    _, status, _ = other.analyse(str(media["sound"]))
    assert "No audio track" not in status and "Truncated" not in status
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, status, _ = other.analyse(str(media["cut"]))
    assert "Truncated file" in status


# -------------------------------------------------------------------------------------------------- make demo


def test_make_demo_trains_from_scratch_sums_up_and_clean_demo_keeps_the_venv(tmp_path):
    recipe = subprocess.run(["make", "-n", "-C", str(REPO), "demo", "VENV=/nonexistent"], capture_output=True,
                            text=True, check=True).stdout  # fmt: skip
    steps = [line for line in recipe.splitlines() if "avcanet-demo" in line]
    assert "rm -rf outputs/avcanet-demo/checkpoint-*" in steps[0]  # before training: a second run trains again
    assert "examples/train.py" in steps[1] and "--output outputs/avcanet-demo/predictions.jsonl" in recipe
    assert "examples/demo_summary.py outputs/avcanet-demo" in steps[-1]

    demo_dir, venv = tmp_path / "outputs" / "demo", tmp_path / "venv"
    (demo_dir / "checkpoint-5").mkdir(parents=True)
    (venv / "bin").mkdir(parents=True)
    subprocess.run(["make", "-C", str(REPO), "clean-demo", f"DEMO_DIR={demo_dir}", f"VENV={venv}"], check=True,
                   capture_output=True)  # fmt: skip
    assert not demo_dir.exists() and (venv / "bin").is_dir()


def test_demo_summary(tmp_path):
    results = {"test_accuracy": 1.0, "test_without_audio_accuracy": 0.5, "test_without_video_accuracy": 0.475}
    (tmp_path / "test_results.json").write_text(json.dumps(results))
    lines = [
        {"path": "x/test/Joy/a.mp4", "labels": [{"label": "Joy", "score": 0.9}]},
        {"path": "x/test/Calm/b.mp4", "labels": [{"label": "Joy", "score": 0.6}]},
        {"path": "x/test/Calm/c.mp4", "error": "unreadable"},
    ]
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    text = demo_summary.summary(tmp_path)
    assert "Test accuracy: 1.00; without the audio: 0.50, without the picture: 0.47" in text
    predictions = tmp_path / "predictions.jsonl"
    assert f"Predictions: {predictions} (3 held-out clips, 1 with the right top label, 1 unreadable)" in text
    assert "examples/predict.py" in text and "examples/demo/app.py" in text and "make clean-demo" in text
    assert len(text.splitlines()) <= 8


# ---------------------------------------------------------------------------------------------------- model card


def test_model_card_has_usage_metadata_and_limitations(tmp_path):
    from huggingface_hub import ModelCard, metadata_load
    from huggingface_hub.repocard_data import model_index_to_eval_results

    metrics = {"test_accuracy": 0.8125, "test_macro_f1": 0.75, "test_uar": 0.8, "test_without_audio_accuracy": 0.5}
    config = AVCANetConfig(**TINY, label_polarities=OTHER)
    config.synthetic_demo = False
    training = {"data": "`Conna/eMotions`", "datasets": ["Conna/eMotions"],
                "command": "python examples/train.py --dataset_name Conna/eMotions"}  # fmt: skip
    path = push_to_hub.write_model_card(tmp_path, config, metrics, "confusion_matrix.png", "org/avcanet-x", training)
    card = ModelCard.load(path)
    data = card.data
    assert data.pipeline_tag == "video-classification" and data.library_name == "transformers"
    assert data.datasets == ["Conna/eMotions"] and "accuracy" in data.metrics
    assert metadata_load(path)["pipeline_tag"] == "video-classification"
    name, results = model_index_to_eval_results(data.to_dict()["model-index"])
    assert name == "org/avcanet-x"
    indexed = {(result.metric_type, result.metric_value, result.dataset_type) for result in results}
    assert ("accuracy", 0.8125, "Conna/eMotions") in indexed
    text = card.text
    assert 'from_pretrained("org/avcanet-x", trust_remote_code=True)' in text
    assert 'pipeline("video-classification", model="org/avcanet-x", trust_remote_code=True)' in text
    assert "| 0 | Happy | positive |" in text and "| 2 | Angry | negative |" in text
    assert "| accuracy | 0.8125 |" in text and "| without_audio_accuracy | 0.5000 |" in text
    assert "python examples/train.py --dataset_name Conna/eMotions" in text
    assert "## Limitations" in text and "@inproceedings{wu2025emotions" in text
    assert "synthetic demo model" not in text

    config.synthetic_demo = True
    demo = ModelCard.load(push_to_hub.write_model_card(tmp_path, config, metrics, "confusion_matrix.png", "demo"))
    assert "**This is the synthetic demo model.**" in demo.text and "is **not** an emotion model" in demo.text
    assert "never been evaluated on real videos" in demo.text and demo.data.datasets is None
