"""examples/train.py end to end on the synthetic set: learning, resuming after a kill, remote-code reload, predict,
two gloo processes, and pushing to the Hub with the client patched."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, str(REPO / "examples" / "train.py")]
SMALL_RUN = [
    "--synthetic_train_per_class", "4",  # 16 training videos: 4 steps per epoch at batch 4
    "--synthetic_eval_per_class", "1",
    "--synthetic_test_per_class", "2",
    "--per_device_train_batch_size", "4",
    "--per_device_eval_batch_size", "8",
    "--eval_strategy", "no",
    "--load_best_model_at_end", "false",
    "--save_strategy", "steps",
    "--logging_steps", "1",
    "--dataloader_num_workers", "0",
    "--use_cpu", "true",
]  # fmt: skip


def environment(tmp_path: Path) -> dict:
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "PYTHONPATH": str(REPO),
        "TOKENIZERS_PARALLELISM": "false",
    }


def train(tmp_path: Path, output_dir: Path, *arguments: str) -> subprocess.CompletedProcess:
    command = TRAIN + ["--output_dir", str(output_dir), *SMALL_RUN, *arguments]
    result = subprocess.run(command, env=environment(tmp_path), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    return result


def training_losses(folder: Path) -> list[float]:
    state = json.loads((folder / "trainer_state.json").read_text())
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("trained")
    output_dir = tmp_path / "run"
    train(tmp_path, output_dir, "--max_steps", "30", "--save_steps", "30", "--learning_rate", "1e-3", "--warmup_steps", "2",
          "--synthetic_train_per_class", "8", "--per_device_train_batch_size", "8", "--dataloader_num_workers", "1")  # fmt: skip
    return output_dir


def test_training_lowers_the_loss_and_saves_a_complete_folder(trained):
    losses = training_losses(trained / "checkpoint-30")
    assert len(losses) == 30
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3, losses
    saved = {path.name for path in trained.iterdir()}
    expected = {
        "config.json",
        "model.safetensors",
        "processor_config.json",
        "configuration_avcanet.py",
        "modeling_avcanet.py",
        "processing_avcanet.py",
        "handler.py",  # the Inference Endpoints handler, in the final folder and every checkpoint
        "README.md",
        "confusion_matrix.png",
        "test_results.json",
    }
    assert expected <= saved, expected - saved
    assert (trained / "checkpoint-30" / "handler.py").is_file()
    results = json.loads((trained / "test_results.json").read_text())
    for key in ("test_accuracy", "test_macro_f1", "test_uar", "test_polarity_accuracy", "test_audio_accuracy",
                "test_without_audio_accuracy", "test_without_video_accuracy"):  # fmt: skip
        assert 0.0 <= results[key] <= 1.0, key
    card = (trained / "README.md").read_text()
    assert "pipeline_tag: video-classification" in card
    assert all(label in card for label in ("Joy", "Calm", "Tension", "Sadness"))
    # the Trainer path's card: usage, the run's metrics, data and command, and what the synthetic demo model is
    from huggingface_hub import ModelCard

    loaded = ModelCard.load(trained / "README.md")
    assert loaded.data.library_name == "transformers" and loaded.data.eval_results[0].metric_type == "accuracy"
    assert loaded.data.eval_results[0].metric_value == round(results["test_accuracy"], 4)
    assert "trust_remote_code=True" in card and "## Limitations" in card
    assert "**This is the synthetic demo model.**" in card
    assert f"| accuracy | {results['test_accuracy']:.4f} |" in card
    run = json.loads((trained / "training_run.json").read_text())
    assert run["command"].startswith("python examples/train.py --output_dir") and f"Command: `{run['command']}`" in card
    assert json.loads((trained / "config.json").read_text())["synthetic_demo"] is True
    # every checkpoint runs on raw videos by itself: it has the processor too
    assert (trained / "checkpoint-30" / "processor_config.json").exists()


RELOAD_AND_PREDICT = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoModelForVideoClassification, AutoProcessor
    folder, video = sys.argv[1], sys.argv[2]
    model = AutoModelForVideoClassification.from_pretrained(folder, trust_remote_code=True).eval()
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    with torch.no_grad():
        logits = model(**processor(videos=video)).logits
    print(json.dumps({
        "logits": logits[0].tolist(),
        "module": type(model).__module__,
        "package_imported": any(name.split(".")[0] in ("modeling_avcanet", "processing") for name in sys.modules),
    }))
    """
)


def test_saved_folder_reloads_through_remote_code_and_predicts_the_same(trained, tmp_path):
    from modeling_avcanet import AVCANetForVideoClassification
    from processing import AVCANetProcessor

    video = next((trained / "data" / "videos" / "test").rglob("*.mp4"))
    env = {**environment(tmp_path), "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", RELOAD_AND_PREDICT, str(trained), str(video)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert remote["module"].startswith("transformers_modules.") and not remote["package_imported"]

    model = AVCANetForVideoClassification.from_pretrained(trained).eval()
    processor = AVCANetProcessor.from_pretrained(trained)
    with torch.no_grad():
        local = model(**processor(videos=str(video))).logits[0]
    torch.testing.assert_close(torch.tensor(remote["logits"]), local)


def test_predict_writes_one_json_line_per_video_and_reports_unreadable_files(trained, tmp_path):
    test_videos = trained / "data" / "videos" / "test"
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    command = [sys.executable, str(REPO / "examples" / "predict.py"), str(trained), str(test_videos), str(broken),
               "--top_k", "2"]  # fmt: skip
    result = subprocess.run(command, env=environment(tmp_path), capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-3000:]  # a file could not be read; every line is still written
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    videos = sorted(test_videos.rglob("*.mp4"))
    assert [line["path"] for line in lines] == [str(path) for path in videos] + [str(broken)]
    for line in lines[:-1]:
        assert len(line["labels"]) == 2 and line["polarity"] in ("positive", "neutral", "negative")
        assert line["labels"][0]["score"] >= line["labels"][1]["score"]
    assert "broken.mp4" in lines[-1]["error"]
    assert "1 of" in result.stderr and "could not be read" in result.stderr
    assert result.stderr.count("synthetic demo model") == 1 and "pin_memory" not in result.stderr


def test_push_to_hub_uploads_weights_code_processor_and_card(trained, monkeypatch):
    from huggingface_hub import HfApi

    sys.path.insert(0, str(REPO / "examples"))
    from push_to_hub import push_folder_to_hub

    uploaded = []

    class Repo:
        repo_id = "me/avcanet-test"

    def create_commit(self, repo_id, operations, **kwargs):
        uploaded.extend(operation.path_in_repo for operation in operations)

    monkeypatch.setattr(HfApi, "create_repo", lambda self, repo_id, **kwargs: Repo())
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    assert push_folder_to_hub(trained, "me/avcanet-test") == "me/avcanet-test"

    expected = {
        "config.json", "model.safetensors", "processor_config.json", "README.md", "confusion_matrix.png",
        "configuration_avcanet.py", "modeling_avcanet.py", "loss_avcanet.py", "processing_avcanet.py",
        "video_processing_avcanet.py", "feature_extraction_avcanet.py", "frame_sampling.py", "handler.py",
    }  # fmt: skip
    assert expected <= set(uploaded), expected - set(uploaded)
    assert not [path for path in uploaded if path.startswith(("checkpoint-", "data/"))]


def test_a_killed_run_resumes_from_its_checkpoint_and_ends_where_an_uninterrupted_one_does(tmp_path):
    # a checkpoint at every epoch end (16 videos, batch 4), and enough steps left that the kill comes before the end
    steps = ["--max_steps", "24", "--save_steps", "4", "--learning_rate", "5e-4"]
    uninterrupted = tmp_path / "uninterrupted"
    train(tmp_path, uninterrupted, *steps)

    killed = tmp_path / "killed"
    command = TRAIN + ["--output_dir", str(killed), *SMALL_RUN, *steps]
    process = subprocess.Popen(command, env=environment(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not (killed / "checkpoint-4" / "checkpoint_complete").exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # the marker is the last file of a checkpoint (examples/safe_checkpoints.py)
    process.wait()
    assert not (killed / "model.safetensors").exists(), "the run finished before it could be killed"

    resumed = train(tmp_path, killed, *steps)
    assert "Resuming from" in resumed.stderr
    assert (killed / "checkpoint-24").exists()
    expected, actual = load_file(uninterrupted / "model.safetensors"), load_file(killed / "model.safetensors")
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], msg=name)


@pytest.mark.slow
def test_two_gloo_processes_under_accelerate_launch(tmp_path):
    output_dir = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "examples" / "accelerate" / "cpu_two_processes.yaml"),
        str(REPO / "examples" / "train.py"),
        "--output_dir", str(output_dir), *SMALL_RUN, "--max_steps", "2", "--save_steps", "2",
    ]  # fmt: skip
    result = subprocess.run(command, env=environment(tmp_path), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    log = result.stdout + result.stderr
    assert "Process 0 of 2" in log and "Process 1 of 2" in log, log[-3000:]
    assert (output_dir / "model.safetensors").exists()


# ---------------------------------------------------------------------------------------------------------------
# Data sources (`dataset_scripts.sources`) and loader defaults, through examples/train.py
# ---------------------------------------------------------------------------------------------------------------


def test_gpu_loader_defaults_apply_only_with_an_accelerator_and_never_over_a_flag_given(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "examples"))
    from train import parse_arguments

    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)

    def loader(args):
        return args.dataloader_num_workers, args.dataloader_prefetch_factor, args.dataloader_persistent_workers

    base = ["--output_dir", str(tmp_path)]
    assert loader(parse_arguments(base, has_accelerator=False)[2]) == (0, None, False)

    gpu = parse_arguments(base, has_accelerator=True)[2]
    assert gpu.dataloader_num_workers == 8  # 16 cores shared by 2 processes on this machine
    assert gpu.dataloader_prefetch_factor == 4 and gpu.dataloader_persistent_workers and gpu.dataloader_pin_memory

    given = parse_arguments(base + ["--dataloader_num_workers", "3", "--dataloader_prefetch_factor", "2"], True)[2]
    assert (given.dataloader_num_workers, given.dataloader_prefetch_factor) == (3, 2)
    assert given.dataloader_persistent_workers
    assert loader(parse_arguments(base + ["--dataloader_num_workers=0"], has_accelerator=True)[2]) == (0, None, False)
    assert parse_arguments(base + ["--use_cpu", "true"], has_accelerator=True)[2].dataloader_num_workers == 0


def test_video_cells_of_every_kind_reach_the_processor(tmp_path):
    sys.path.insert(0, str(REPO / "examples"))
    from collator import video_source

    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"some video bytes")
    assert video_source({"bytes": b"embedded", "path": "clip.mp4"}) == b"embedded"
    assert video_source({"bytes": None, "path": str(clip)}) == str(clip) == video_source(str(clip))
    assert video_source(b"raw") == b"raw"
    assert video_source({"bytes": None, "path": clip.as_uri()}) == b"some video bytes"  # remote: read into memory


def test_the_collator_decodes_unfinished_batches_that_the_trainer_finishes_into_the_processors_inputs(tmp_path):
    sys.path.insert(0, str(REPO / "examples"))
    from media import make_video
    from tiny import tiny_config
    from train import AVCANetTrainer, ProcessingCollator
    from transformers import TrainingArguments

    from modeling_avcanet import AVCANetForVideoClassification
    from processing import AVCANetProcessor

    model = AVCANetForVideoClassification(tiny_config())
    processor = AVCANetProcessor.from_model_config(model.config)
    clips = [str(make_video(tmp_path / f"{index}.mp4", num_frames=30, seed=index)) for index in range(2)]
    rows = [{"video": {"bytes": None, "path": clip}, "label": index} for index, clip in enumerate(clips)]
    training_collator, eval_collator = ProcessingCollator(processor, training=True), ProcessingCollator(processor, False)
    arguments = TrainingArguments(str(tmp_path / "run"), use_cpu=True, report_to=[], remove_unused_columns=False,
                                  per_device_eval_batch_size=2)  # fmt: skip
    trainer = AVCANetTrainer(model=model, args=arguments, train_dataset=rows, data_collator=training_collator,
                             eval_data_collator=eval_collator, processor=processor)  # fmt: skip
    expected = processor(videos=clips)

    loader = trainer.get_test_dataloader(rows)
    assert loader.collate_fn is eval_collator and trainer.data_collator is training_collator
    (batch,) = list(loader)
    assert batch["pixel_values_videos"].dtype == torch.uint8  # a quarter of the bytes through the loader
    assert "audio_windows" in batch and "input_features" not in batch  # the log-mel is left to the model's device
    prepared = trainer._prepare_inputs(batch)
    for key in expected:
        assert torch.equal(prepared[key], expected[key]), key
    assert prepared["labels"].tolist() == [0, 1]
    prepared_again = trainer._prepare_inputs(prepared)
    for key in expected:
        assert torch.equal(prepared_again[key], expected[key]), key  # finished once

    training_batch = next(iter(trainer.get_train_dataloader()))
    assert training_batch["pixel_values_videos"].dtype == torch.uint8
    assert training_batch["pixel_values_videos"].shape == expected["pixel_values_videos"].shape

    grey = trainer._prepare_inputs(ProcessingCollator(processor, False, without="video")(rows))
    torch.testing.assert_close(grey["pixel_values_videos"], torch.zeros_like(expected["pixel_values_videos"]),
                               atol=1e-6, rtol=0)  # the mean grey: 0 once normalised, to float rounding  # fmt: skip
    assert torch.equal(grey["input_features"], expected["input_features"])
    silent = ProcessingCollator(processor, False, without="audio")(rows)
    assert silent["audio_mask"].tolist() == [0, 0] and expected["audio_mask"].tolist() == [1, 1]


EMOTIONS = ["Excitation", "Fear", "Neutral", "Relaxation", "Sadness", "Tension"]


@pytest.fixture(scope="module")
def emotions_parquet(tmp_path_factory) -> Path:
    """Twelve distinct clips, two per eMotions class ("Sad" spelled as the Hub does), in the Hub release's layout:
    `data/eMotions_chunk_NNN.parquet`, 3 rows each, the bytes in `video_data`."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from media import make_video

    root = tmp_path_factory.mktemp("emotions_hub")
    (root / "data").mkdir()
    labels = [("Sad" if name == "Sadness" else name) for name in EMOTIONS] * 2
    clips = [
        make_video(root / f"{index}.mp4", num_frames=16, fps=8, width=40, height=32, audio_rate=16000,
                   audio_channels=1, burn_frame_index=False, seed=index).read_bytes()
        for index in range(12)
    ]  # fmt: skip
    for chunk in range(4):
        rows = range(3 * chunk, 3 * chunk + 3)
        table = pa.table({"video_data": [clips[i] for i in rows], "emotion": [labels[i] for i in rows],
                          "file_name": [f"{i:08d}.mp4" for i in rows]})  # fmt: skip
        pq.write_table(table, root / "data" / f"eMotions_chunk_{chunk:03d}.parquet")
    for index in range(12):
        (root / f"{index}.mp4").unlink()
    return root


PARQUET_RUN = [
    "--per_device_train_batch_size", "2",
    "--per_device_eval_batch_size", "4",
    "--eval_strategy", "no",
    "--load_best_model_at_end", "false",
    "--save_strategy", "no",
    "--logging_steps", "1",
    "--dataloader_num_workers", "0",
    "--use_cpu", "true",
]  # fmt: skip


def test_training_on_parquet_chunks_carves_and_evaluates_a_validation_split(tmp_path, emotions_parquet):
    output_dir = tmp_path / "run"
    command = TRAIN + ["--output_dir", str(output_dir), *PARQUET_RUN, "--dataset_name", str(emotions_parquet),
                       "--validation_split_percentage", "50", "--max_steps", "2", "--eval_strategy", "steps",
                       "--eval_steps", "2"]  # fmt: skip
    result = subprocess.run(command, env=environment(tmp_path), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    assert "evaluating on 50% of 'train', stratified by label, seed 1" in result.stderr
    config = json.loads((output_dir / "config.json").read_text())
    assert [config["id2label"][str(index)] for index in range(6)] == EMOTIONS
    assert "'eval_accuracy'" in result.stdout + result.stderr  # evaluated on the carved split
    assert not list(output_dir.rglob("*.arrow")), "nothing of the data set is written into the run"


# Records, per process, the videos the processor decodes in training mode, then runs examples/train.py.
RECORDING_TRAIN = textwrap.dedent(
    """
    import hashlib, json, os, sys
    sys.path.insert(0, os.path.join(os.environ["PYTHONPATH"], "examples"))
    import train
    from processing import AVCANetProcessor

    seen, call = [], AVCANetProcessor.__call__
    def recording(self, videos=None, training=False, **kwargs):
        if training:
            seen.extend(hashlib.sha1(video).hexdigest() for video in videos)
        return call(self, videos=videos, training=training, **kwargs)
    AVCANetProcessor.__call__ = recording
    train.main(sys.argv[2:])
    with open(os.path.join(sys.argv[1], "seen-%s.json" % os.environ.get("RANK", "0")), "w") as file:
        json.dump(seen, file)
    """
)


@pytest.mark.slow
def test_streaming_under_two_gloo_processes_gives_each_a_disjoint_share(tmp_path, emotions_parquet):
    import hashlib

    import pyarrow.parquet as pq

    script = tmp_path / "recording_train.py"
    script.write_text(RECORDING_TRAIN)
    output_dir = tmp_path / "stream"
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(REPO / "examples" / "accelerate" / "cpu_two_processes.yaml"),
        str(script), str(tmp_path), "--output_dir", str(output_dir), *PARQUET_RUN,
        "--dataset_name", str(emotions_parquet), "--streaming", "true", "--label_set", "emotions",
        "--max_steps", "3", "--shuffle_buffer_size", "4",
    ]  # fmt: skip
    result = subprocess.run(command, env=environment(tmp_path), capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    assert "Process 1 of 2" in result.stdout + result.stderr
    assert (output_dir / "model.safetensors").exists()
    # 3 steps of 2 videos: each process reads exactly its share (2 of the 4 files), no video twice, none of the other's
    seen = [json.loads((tmp_path / f"seen-{rank}.json").read_text()) for rank in range(2)]
    everything = {hashlib.sha1(video).hexdigest() for chunk in sorted((emotions_parquet / "data").glob("*.parquet"))
                  for video in pq.read_table(chunk)["video_data"].to_pylist()}  # fmt: skip
    assert len(seen[0]) == len(set(seen[0])) == 6 and len(seen[1]) == len(set(seen[1])) == 6
    assert set(seen[0]) | set(seen[1]) == everything


def test_streaming_needs_max_steps(tmp_path, emotions_parquet):
    sys.path.insert(0, str(REPO / "examples"))
    from train import main

    with pytest.raises(ValueError, match="--streaming needs --max_steps"):
        main(["--output_dir", str(tmp_path / "run"), *PARQUET_RUN, "--dataset_name", str(emotions_parquet),
              "--streaming", "true"])  # fmt: skip
