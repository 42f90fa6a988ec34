"""A long run survives its data and its machine (docs/long-runs.md): bad rows of every kind are left out and named in
every data source (pre-pass, collator, stream, two DataLoader workers), a broken data set stops the run, SIGTERM
saves a checkpoint that resumes bit-exactly, and a save killed half-way leaves the previous checkpoint in use."""

import json
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch
from media import make_audio_only, make_video, truncate
from safetensors.torch import load_file
from test_data_sources import SPELLED, write_emotions_chunks
from test_training import PARQUET_RUN, REPO, SMALL_RUN, TRAIN, environment, train

from dataset_scripts import load_training_data

sys.path.insert(0, str(REPO / "examples"))
from bad_videos import (  # noqa: E402
    SKIPPED_KEY,
    BadVideoFractionError,
    SkippedVideoLog,
    drop_bad_rows,
)
from safe_checkpoints import CHECKPOINT_COMPLETE, last_complete_checkpoint, resume_checkpoint  # noqa: E402

NUM_GOOD = 12


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    """Twelve good clips (two per eMotions class) then one bad file of each kind: garbage bytes, a download cut
    short (its index is at the end), an empty file, and an mp4 with sound and no video stream."""
    folder = tmp_path_factory.mktemp("clips")
    good = [
        make_video(folder / f"{index:08d}.mp4", num_frames=8, fps=8, width=32, height=32, audio_rate=16000,
                   audio_channels=1, burn_frame_index=False, seed=index)
        for index in range(NUM_GOOD)
    ]  # fmt: skip
    garbage = folder / "garbage.mp4"
    garbage.write_bytes(b"\x00\x01not a video" * 300)
    truncated = truncate(good[0], 0.4, folder / "truncated.mp4")
    empty = folder / "empty.mp4"
    empty.write_bytes(b"")
    audio_only = make_audio_only(folder / "audio_only.mp4", duration_s=1.0, audio_rate=16000)
    return good + [garbage, truncated, empty, audio_only]


BAD_NAMES = {"garbage.mp4", "truncated.mp4", "empty.mp4", "audio_only.mp4"}


@pytest.fixture(scope="module")
def parquet(tmp_path_factory, clips) -> Path:
    """The Hub release's layout (video bytes in `video_data`, `file_name`, `emotion`), the bad rows spread over the
    chunks: 16 rows in 4 files."""
    order = [0, 12, 1, 2, 3, 13, 4, 5, 6, 14, 7, 8, 9, 15, 10, 11]
    labels = [SPELLED[index % 6] for index in order]
    return write_emotions_chunks(tmp_path_factory.mktemp("hub"), [clips[index] for index in order], labels,
                                 per_chunk=4)  # fmt: skip


def skipped_names(output_dir: Path) -> dict[str, str]:
    report = json.loads((output_dir / "skipped_videos.json").read_text())
    assert report["count"] == len(report["videos"])
    return {Path(video["file"]).name: video for video in report["videos"]}


def test_the_collator_leaves_bad_rows_out_of_the_batch_and_names_them(clips):
    from train import ProcessingCollator

    from modeling_avcanet import AVCANetConfig
    from processing import AVCANetProcessor
    from tiny import TINY

    processor = AVCANetProcessor.from_model_config(AVCANetConfig(**TINY))
    collator = ProcessingCollator(processor, training=True, video_column="video_data")
    rows = [
        {"video_data": clip.read_bytes(), "label": index, "file_name": clip.name, "__row__": 10 + index}
        for index, clip in enumerate([clips[0], clips[12], clips[1], clips[13], clips[14], clips[15]])
    ]
    batch = collator(rows)
    assert batch["labels"].tolist() == [0, 2]  # smaller, in order; nothing substituted or repeated
    assert batch["pixel_values_videos"].shape[0] == 2
    skipped = batch[SKIPPED_KEY]
    assert [record["row"] for record in skipped] == [11, 13, 14, 15]
    assert [record["file"] for record in skipped] == ["garbage.mp4", "truncated.mp4", "empty.mp4", "audio_only.mp4"]
    assert skipped[0]["bytes"] == len(clips[12].read_bytes()) and len(skipped[0]["sha1"]) == 12
    assert "no video stream" in skipped[3]["cause"] and "0 bytes" in skipped[2]["cause"]

    clean = collator(rows[:1] + rows[2:3])
    assert clean[SKIPPED_KEY] == [] and clean["labels"].tolist() == [0, 2]
    nothing = collator(rows[1:2])
    assert nothing["labels"].numel() == 0 and "pixel_values_videos" not in nothing


def test_the_pre_pass_drops_bad_rows_of_every_source_once_and_stops_a_broken_data_set(tmp_path, clips, parquet,
                                                                                     monkeypatch):  # fmt: skip
    cache = tmp_path / "cache"
    data = load_training_data(dataset_name=str(parquet), validation_split_percentage=50, seed=1, cache_dir=str(cache))
    log = SkippedVideoLog(max_bad_video_fraction=0.5)
    kept = [drop_bad_rows(rows, split, "video_data", log, cache_dir=str(cache))
            for rows, split in ((data.train, "train"), (data.eval, "eval"))]  # fmt: skip
    assert sum(len(rows) for rows in kept) == NUM_GOOD
    named = {record["file"]: record for record in log.all_records()}
    assert set(named) == BAD_NAMES
    for record in named.values():  # each named with its split, its row in that split, its size and hash
        original = (data.train if record["split"] == "train" else data.eval)[record["row"]]
        assert original["file_name"] == record["file"] and record["bytes"] == len(original["video_data"])
    assert all(row["file_name"] not in BAD_NAMES for rows in kept for row in rows)
    assert {kept[0][index]["__row__"] for index in range(len(kept[0]))}.isdisjoint(
        {record["row"] for record in log.all_records() if record["split"] == "train"}
    )

    # the second run reads the answer cached under the split's fingerprint: nothing is probed again
    import dataset_scripts.video_check as video_check

    monkeypatch.setattr(video_check, "find_video_problem", lambda video: pytest.fail("probed again"))
    again = load_training_data(dataset_name=str(parquet), validation_split_percentage=50, seed=1,
                               cache_dir=str(cache))  # fmt: skip
    assert len(drop_bad_rows(again.train, "train", "video_data", SkippedVideoLog(0.5), cache_dir=str(cache))) == len(
        kept[0]
    )
    monkeypatch.undo()

    with pytest.raises(BadVideoFractionError, match=r"of split 'train' cannot be decoded.*\n  split 'train', row"):
        drop_bad_rows(data.train, "train", "video_data", SkippedVideoLog(0.01), cache_dir=str(cache))

    # a video folder (paths) and a saved folder go through the same pre-pass
    for label, clip in zip(["happy", "sad"] * 8, clips):
        (tmp_path / "videos" / "train" / label).mkdir(parents=True, exist_ok=True)
        (tmp_path / "videos" / "train" / label / clip.name).write_bytes(clip.read_bytes())
    folder = load_training_data(dataset_name=str(tmp_path / "videos"), label_polarities={"happy": "positive",
                                "sad": "negative"}, validation_split_percentage=50, cache_dir=str(cache))  # fmt: skip
    log = SkippedVideoLog(0.5)
    drop_bad_rows(folder.train, "train", "video", log, cache_dir=str(cache))
    drop_bad_rows(folder.eval, "eval", "video", log, cache_dir=str(cache))
    assert {Path(record["file"]).name for record in log.all_records()} == BAD_NAMES


def run_train(tmp_path, output_dir, *arguments, check=True):
    command = TRAIN + ["--output_dir", str(output_dir), *arguments]
    result = subprocess.run(command, env=environment(tmp_path), capture_output=True, text=True, timeout=900)
    if check:
        assert result.returncode == 0, result.stderr[-5000:]
    return result


BAD_ROWS_RUN = [*PARQUET_RUN, "--dataloader_num_workers", "2", "--max_bad_video_fraction", "0.5",
                "--validation_split_percentage", "50"]  # fmt: skip


def test_parquet_with_bad_rows_trains_and_names_every_one(tmp_path, parquet):
    # the pre-pass leaves them out before epoch 1
    checked = run_train(tmp_path, tmp_path / "checked", *BAD_ROWS_RUN, "--dataset_name", str(parquet),
                        "--max_steps", "2")  # fmt: skip
    assert set(skipped_names(tmp_path / "checked")) == BAD_NAMES
    assert "Skipped videos that cannot be decoded: 4" in checked.stderr

    # without it, the collators leave them out as they come, in two DataLoader workers, in training and evaluation
    unchecked = run_train(tmp_path, tmp_path / "unchecked", *BAD_ROWS_RUN, "--dataset_name", str(parquet),
                          "--skip_video_check", "true", "--num_train_epochs", "1", "--eval_strategy", "epoch")  # fmt: skip
    named = skipped_names(tmp_path / "unchecked")
    assert set(named) == BAD_NAMES
    in_eval = sum(video["split"] == "eval" for video in named.values())
    assert f"'eval_skipped_videos': {in_eval}," in unchecked.stdout + unchecked.stderr  # the metrics say how many
    assert "Skipping a video that cannot be decoded: split 'train', row" in unchecked.stderr  # each named once
    assert sum(unchecked.stderr.count(f", {name}, ") for name in BAD_NAMES) == len(BAD_NAMES)
    assert all(video["row"] is not None and video["sha1"] for video in named.values())


def test_a_stream_with_bad_rows_skips_them_as_it_goes(tmp_path, parquet):
    run_train(tmp_path, tmp_path / "stream", *BAD_ROWS_RUN, "--dataset_name", str(parquet), "--streaming", "true",
              "--label_set", "emotions", "--max_steps", "8", "--shuffle_buffer_size", "4")  # fmt: skip
    named = skipped_names(tmp_path / "stream")  # 8 steps of 2 rows: the whole stream once
    assert set(named) == BAD_NAMES and all(video["split"] == "train" for video in named.values())
    assert (tmp_path / "stream" / "model.safetensors").exists()


def test_a_broken_data_set_stops_before_training(tmp_path, parquet):
    from train import main

    with pytest.raises(BadVideoFractionError, match=r"4 of 16 rows|more than --max_bad_video_fraction 0.01") as error:
        main(["--output_dir", str(tmp_path / "broken"), *PARQUET_RUN, "--dataset_name", str(parquet),
              "--validation_split_percentage", "50", "--max_steps", "2", "--cache_dir", str(tmp_path / "cache")])  # fmt: skip
    assert "--max_bad_video_fraction 0.01" in str(error.value) and "split 'train', row" in str(error.value)
    assert not (tmp_path / "broken" / "model.safetensors").exists()


# ---------------------------------------------------------------------------------------------------------------
# Preemption and interrupted saves, on a saved folder of the synthetic set (16 training videos, batch 4: 4 steps an
# epoch; 8 steps cross an epoch), without a test split (no test predictions at the end)
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory) -> Path:
    from dataset_scripts import generate_synthetic, save_dataset
    from dataset_scripts.synthetic import LABEL_POLARITIES

    folder = tmp_path_factory.mktemp("synthetic")
    dataset = generate_synthetic(folder / "videos", videos_per_class={"train": 4, "validation": 1})
    return save_dataset(dataset, folder / "saved", LABEL_POLARITIES)


@pytest.fixture(scope="module")
def resumable(saved_folder) -> list[str]:
    return ["--dataset_dir", str(saved_folder), "--max_steps", "8", "--save_steps", "3", "--save_total_limit", "1",
            "--learning_rate", "5e-4"]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, resumable) -> Path:
    tmp_path = tmp_path_factory.mktemp("uninterrupted")
    train(tmp_path, tmp_path / "run", *resumable)
    return tmp_path / "run"


def assert_same_weights(expected_folder: Path, actual_folder: Path):
    expected, actual = load_file(expected_folder / "model.safetensors"), load_file(actual_folder / "model.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(actual[name], expected[name]), name  # bit-exact on the CPU


def test_sigterm_saves_a_checkpoint_exits_0_and_the_resumed_run_ends_bit_exactly_where_an_uninterrupted_one_does(
    tmp_path, uninterrupted, resumable
):
    output_dir = tmp_path / "preempted"
    command = TRAIN + ["--output_dir", str(output_dir), *SMALL_RUN, *resumable]
    process = subprocess.Popen(command, env=environment(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)  # fmt: skip
    lines, steps_logged = [], threading.Event()

    def read():
        for line in process.stdout:
            lines.append(line)
            if sum("'loss'" in seen for seen in lines) >= 4:  # in step 5, in epoch 2
                steps_logged.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert steps_logged.wait(600), "".join(lines)[-3000:]
    process.send_signal(signal.SIGTERM)
    assert process.wait(300) == 0, "".join(lines)[-3000:]
    reader.join(10)
    log = "".join(lines)
    assert "Stopped by SIGTERM" in log and "--resume_from_checkpoint last" in log
    saved = last_complete_checkpoint(output_dir)
    step = int(saved.name.split("-")[1])
    assert 5 <= step < 8, saved  # saved at the step under way, not at a --save_steps one before
    assert (saved / "optimizer.pt").exists() and (saved / "rng_state.pth").exists()
    assert (saved / "processor_config.json").exists()
    assert not (output_dir / "model.safetensors").exists()

    resumed = train(tmp_path, output_dir, *resumable, "--resume_from_checkpoint", "last")
    assert f"Resuming from {saved}" in resumed.stderr
    assert_same_weights(uninterrupted, output_dir)


KILLED_WHILE_SAVING = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, os.path.join(os.environ["PYTHONPATH"], "examples"))
    import train

    save = train.AVCANetTrainer._save_optimizer_and_scheduler
    def killed_at_step_6(self, output_dir):
        if self.state.global_step == 6:  # the weights of checkpoint-6 are written, its optimizer is not
            os.kill(os.getpid(), signal.SIGKILL)
        return save(self, output_dir)
    train.AVCANetTrainer._save_optimizer_and_scheduler = killed_at_step_6
    train.main(sys.argv[1:])
    """
)


def test_a_run_killed_while_saving_resumes_from_the_previous_checkpoint(tmp_path, uninterrupted, resumable):
    script = tmp_path / "killed_while_saving.py"
    script.write_text(KILLED_WHILE_SAVING)
    output_dir = tmp_path / "killed"
    command = [sys.executable, str(script), "--output_dir", str(output_dir), *SMALL_RUN, *resumable]
    killed = subprocess.run(command, env=environment(tmp_path), capture_output=True, text=True, timeout=900)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert (output_dir / "checkpoint-6" / "model.safetensors").exists()
    assert not (output_dir / "checkpoint-6" / CHECKPOINT_COMPLETE).exists()
    # --save_total_limit 1: the previous checkpoint is still there, its rotation waits for the new one to be complete
    assert (output_dir / "checkpoint-3" / CHECKPOINT_COMPLETE).exists()
    assert last_complete_checkpoint(output_dir) == output_dir / "checkpoint-3"

    resumed = train(tmp_path, output_dir, *resumable)  # the same command again: resumes by itself
    assert f"Resuming from {output_dir / 'checkpoint-3'}" in resumed.stderr
    assert "Removing" in resumed.stderr and "checkpoint-6: its save was interrupted" in resumed.stderr
    assert_same_weights(uninterrupted, output_dir)
    assert [path.name for path in output_dir.glob("checkpoint-*")] == ["checkpoint-8"]


def test_resume_from_checkpoint_refuses_what_cannot_resume(tmp_path):
    with pytest.raises(ValueError, match="has no complete checkpoint"):
        resume_checkpoint("last", tmp_path)
    assert resume_checkpoint(None, tmp_path) is None
    (tmp_path / "checkpoint-3").mkdir()
    with pytest.raises(ValueError, match="incomplete"):
        resume_checkpoint(str(tmp_path / "checkpoint-3"), tmp_path)
