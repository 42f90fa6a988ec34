"""The data set builders on small fixtures with the real layouts, and the synthetic set's need for both modalities."""

import json
import logging
import shutil
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import ClassLabel, Dataset, Features, Value, load_from_disk
from media import make_audio_only, make_video, truncate

from dataset_scripts import (
    LABEL_POLARITIES,
    emotions,
    find_video_problem,
    generate_synthetic,
    load_ekman6,
    load_emotions,
    load_emotions_parquet,
    load_video_emotion8,
    load_video_folder,
    modality_ceilings,
    read_label_polarities,
    save_dataset,
    synthetic,
)
from dataset_scripts.split_lists import read_split_list
from modeling_avcanet import POLARITIES

EMOTIONS = ["Excitation", "Fear", "Neutral", "Relaxation", "Sadness", "Tension"]


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory):
    """One good clip and the kinds of broken files real downloads contain, made once and copied where needed."""
    folder = tmp_path_factory.mktemp("media")
    make_video(folder / "good.mp4", num_frames=8, fps=8, width=32, height=32, audio_rate=16000, audio_channels=1)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "garbage.mp4").write_bytes(b"not a video at all " * 64)
    truncate(folder / "good.mp4", 0.4, folder / "truncated.mp4")
    make_audio_only(folder / "audio_only.mp4", duration_s=0.5, audio_rate=16000)
    return folder


def place(media_dir, kind, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(media_dir / f"{kind}.mp4", path)
    return path


def write_lines(path, lines):
    path.write_text("".join(f"{line}\n" for line in lines))


def skip_warnings(caplog):
    return [record for record in caplog.records if record.levelno == logging.WARNING and "skipping" in record.message]


# ---------------------------------------------------------------------------------------------------------------
# Validity check
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, problem",
    [
        ("good", None),
        ("empty", "cannot be opened"),
        ("garbage", "cannot be opened"),
        ("truncated", ""),  # cut before the index at the end of the file: FFmpeg fails one way or another
        ("audio_only", "no video stream"),
        ("missing", "file not found"),
    ],
)
def test_find_video_problem(media_dir, kind, problem):
    found = find_video_problem(media_dir / f"{kind}.mp4")
    assert found is None if problem is None else found.startswith(problem)


def test_find_video_problem_on_bytes(media_dir):
    assert find_video_problem((media_dir / "good.mp4").read_bytes()) is None
    assert find_video_problem(b"\x00" * 100).startswith("cannot be opened")


# ---------------------------------------------------------------------------------------------------------------
# Class folders + split lists: eMotions (authors' layout), VideoEmotion-8, Ekman-6
# ---------------------------------------------------------------------------------------------------------------


def test_read_split_list_formats(tmp_path):
    list_file = tmp_path / "trainlist01.txt"
    write_lines(list_file, ["Excitation/00011820.mp4", "", "Fear/00000002", "Tension/00000003.avi 6", "Sad\\00000004"])
    assert read_split_list(list_file) == [
        (1, "Excitation/00011820.mp4"),
        (3, "Fear/00000002"),
        (4, "Tension/00000003.avi"),
        (5, "Sad/00000004"),
    ]
    write_lines(list_file, ["Excitation/1.mp4", "no_class_folder.mp4"])
    with pytest.raises(ValueError, match=r"trainlist01.txt:2: expected '<class>/<video>'"):
        read_split_list(list_file)


@pytest.fixture
def emotions_release(tmp_path, media_dir):
    """The authors' layout: class folders (Sadness spelled "Sad" as on the Hub), split lists, classInd.txt, and a
    few broken or missing videos listed among the good ones."""
    root = tmp_path / "eMotions"
    folders = {name: ("Sad" if name == "Sadness" else name) for name in EMOTIONS}
    train, test = [], []
    for index, name in enumerate(EMOTIONS):
        folder = folders[name]
        place(media_dir, "good", root / folder / f"{index:08d}.mp4")
        place(media_dir, "good", root / folder / f"{index + 100:08d}.mp4")
        train.append(f"{folder}/{index:08d}.mp4")
        test.append(f"{folder}/{index + 100:08d}")  # no extension: as some lists write it
    place(media_dir, "garbage", root / "Fear" / "garbage.mp4")
    place(media_dir, "truncated", root / "Tension" / "truncated.mp4")
    place(media_dir, "empty", root / "Neutral" / "empty.mp4")
    train += ["Fear/garbage.mp4", "Tension/truncated.mp4", "Excitation/missing.mp4"]
    test += ["Neutral/empty.mp4"]
    write_lines(root / "trainlist01.txt", train)
    write_lines(root / "testlist01.txt", test)
    write_lines(root / "classInd.txt", [f"{index + 1} {folders[name]}" for index, name in enumerate(EMOTIONS)])
    return root


def test_emotions_folder_layout(emotions_release, caplog):
    with caplog.at_level(logging.WARNING):
        dataset = load_emotions(emotions_release, num_workers=2)
    assert set(dataset) == {"train", "test"}
    assert dataset["train"].features["label"].names == EMOTIONS == list(LABEL_POLARITIES["emotions"])
    assert dataset["train"].features["video"].decode is False
    assert len(dataset["train"]) == len(dataset["test"]) == 6
    for split in dataset.values():
        names = split.features["label"].int2str(split["label"])
        assert sorted(names) == EMOTIONS
        (sadness,) = [video["path"] for video, name in zip(split["video"], names) if name == "Sadness"]
        assert Path(sadness).parent.name == "Sad" and Path(sadness).suffix == ".mp4"  # label normalised, file kept
    # every bad sample in a single report that names its path and its problem
    (report,) = skip_warnings(caplog)
    assert "skipping 4 unusable video(s)" in report.message
    for bad, problem in [
        ("Fear/garbage.mp4", "cannot be opened"),
        ("Tension/truncated.mp4", ""),
        ("Excitation/missing.mp4", "file not found"),
        ("Neutral/empty.mp4", "cannot be opened"),
    ]:
        assert f"{emotions_release / bad}: {problem}" in report.message


def test_emotions_folder_layout_without_check_still_drops_missing_files(emotions_release):
    dataset = load_emotions(emotions_release, check_videos=False)
    assert len(dataset["train"]) == 8  # 6 good + garbage + truncated; only the missing file is gone
    assert len(dataset["test"]) == 7


def test_unknown_label_in_split_list(emotions_release):
    with open(emotions_release / "testlist01.txt", "a") as list_file:
        list_file.write("Happiness/00000999.mp4\n")
    with pytest.raises(
        ValueError, match=r"testlist01.txt:8: unknown label 'Happiness'; expected one of \['Excitation'"
    ):
        load_emotions(emotions_release)


def test_class_index_of_another_label_set(emotions_release):
    write_lines(emotions_release / "classInd.txt", ["1 Excitation", "2 Anger"])
    with pytest.raises(ValueError, match=r"classInd.txt:2: unknown label 'Anger'"):
        load_emotions(emotions_release)


def test_missing_split_list(emotions_release):
    (emotions_release / "testlist01.txt").unlink()
    with pytest.raises(FileNotFoundError, match="testlist01.txt"):
        load_emotions(emotions_release)


@pytest.mark.parametrize(
    "load, label_set, folder_names",
    [
        (
            load_video_emotion8,
            "ve8",
            ["Anger", "Anticipation", "Disgust", "Fear", "Joy", "Sadness", "Surprise", "Trust"],
        ),
        (load_ekman6, "ekman6", ["Anger", "disgust", "fear", "joy", "sadness", "surprise"]),  # any case matches
    ],
)
def test_public_sets_split_lists(tmp_path, media_dir, load, label_set, folder_names):
    root, lists = tmp_path / "videos", tmp_path / "lists"
    lists.mkdir()
    train, test = [], []
    for index, folder in enumerate(folder_names):
        place(media_dir, "good", root / folder / f"clip{index}.mp4")
        place(media_dir, "good", root / folder / f"clip{index}_b.mp4")
        train.append(f"{folder}/clip{index}.mp4 {index + 1}")  # UCF-101 style, with the class number
        test.append(f"{folder}/clip{index}_b")
    write_lines(lists / "trainlist02.txt", train)
    write_lines(lists / "testlist02.txt", test)
    dataset = load(root, split_number=2, list_dir=lists)
    label_names = list(LABEL_POLARITIES[label_set])
    assert dataset["train"].features["label"].names == label_names
    assert dataset["train"].features["label"].int2str(dataset["train"]["label"]) == label_names
    assert len(dataset["test"]) == len(label_names)
    assert set(LABEL_POLARITIES[label_set].values()) <= set(POLARITIES)


# ---------------------------------------------------------------------------------------------------------------
# eMotions from the Hub's parquet chunks
# ---------------------------------------------------------------------------------------------------------------


def write_chunks(data_dir, rows, columns, rows_per_chunk=7):
    """`rows` as `data/eMotions_chunk_NNN.parquet` files, the Hub release's layout."""
    (data_dir / "data").mkdir(parents=True)
    for chunk, start in enumerate(range(0, len(rows), rows_per_chunk)):
        part = rows[start : start + rows_per_chunk]
        table = pa.table({column: [row[position] for row in part] for position, column in enumerate(columns)})
        pq.write_table(table, data_dir / "data" / f"eMotions_chunk_{chunk:03d}.parquet")


@pytest.fixture
def hub_rows(media_dir):
    """(video bytes, label as the Hub spells it, file name, an unrelated column): two videos per class, then a
    garbage video and a row without bytes."""
    good = (media_dir / "good.mp4").read_bytes()
    spelled = [("Sad" if name == "Sadness" else name) for name in EMOTIONS]
    rows = [(good, label, f"{1000 + index:08d}.mp4", "tiktok") for index, label in enumerate(spelled * 2)]
    rows += [(b"garbage" * 50, "Fear", "00002000.mp4", "douyin"), (None, "Tension", "00002001.mp4", "kuaishou")]
    return rows


def test_emotions_parquet(tmp_path, hub_rows, caplog):
    write_chunks(tmp_path / "hub", hub_rows, ["video_data", "emotion", "file_name", "platform"])
    video_dir = tmp_path / "videos"
    with caplog.at_level(logging.WARNING):
        dataset = load_emotions_parquet(tmp_path / "hub", video_dir=video_dir, test_size=0.5, seed=0)
    assert len(dataset["train"]) == len(dataset["test"]) == 6
    for split in dataset.values():  # stratified: one video of every class per split
        assert sorted(split.features["label"].int2str(split["label"])) == EMOTIONS
    assert (video_dir / "Sadness" / "00001004.mp4").read_bytes() == hub_rows[4][0]
    (report,) = skip_warnings(caplog)
    assert "skipping 2 unusable video(s)" in report.message
    assert f"{video_dir / 'Fear' / '00002000.mp4'}: cannot be opened" in report.message
    assert "no video bytes in eMotions_chunk_001.parquet row 6" in report.message

    # a second build finds the extracted files and does not write them again
    written = (video_dir / "Fear" / "00001001.mp4").stat().st_mtime_ns
    again = load_emotions_parquet(tmp_path / "hub", video_dir=video_dir, test_size=0.5, seed=0)
    assert (video_dir / "Fear" / "00001001.mp4").stat().st_mtime_ns == written
    assert again["test"]["video"] == dataset["test"]["video"]


def test_emotions_parquet_with_authors_split_lists(tmp_path, hub_rows):
    write_chunks(tmp_path / "hub", hub_rows[:12], ["video_data", "label", "file_name", "platform"])
    lists = tmp_path / "lists"
    lists.mkdir()
    spelled = [("Sad" if name == "Sadness" else name) for name in EMOTIONS]
    write_lines(lists / "trainlist01.txt", [f"{label}/{1000 + i:08d}.mp4" for i, label in enumerate(spelled)])
    write_lines(lists / "testlist01.txt", [f"{label}/{1006 + i:08d}" for i, label in enumerate(spelled[:4])])
    dataset = load_emotions_parquet(tmp_path / "hub", video_dir=tmp_path / "videos", split_lists_dir=lists)
    assert len(dataset["train"]) == 6 and len(dataset["test"]) == 4  # two listed in neither list
    assert [video["path"].rsplit("/", 1)[1] for video in dataset["test"]["video"]] == [
        f"{1006 + i:08d}.mp4" for i in range(4)
    ]


def test_emotions_parquet_label_columns(tmp_path, hub_rows):
    write_chunks(tmp_path / "odd", hub_rows[:12], ["video_data", "mood", "file_name", "platform"])
    with pytest.raises(ValueError, match=r"none of the columns .*'mood'.* is a label column.*pass label_column"):
        load_emotions_parquet(tmp_path / "odd", video_dir=tmp_path / "videos")
    with pytest.raises(ValueError, match=r"label_column='moods' is not a column"):
        load_emotions_parquet(tmp_path / "odd", video_dir=tmp_path / "videos", label_column="moods")
    dataset = load_emotions_parquet(
        tmp_path / "odd", video_dir=tmp_path / "videos", label_column="mood", test_size=0.5
    )
    assert len(dataset["train"]) + len(dataset["test"]) == 12


def test_emotions_parquet_integer_labels_from_datasets_metadata(tmp_path, hub_rows):
    """A parquet written by `datasets` stores a ClassLabel as integers and its names in the file's metadata."""
    spelled = [("Sad" if name == "Sadness" else name) for name in EMOTIONS]
    features = Features({"video_data": Value("binary"), "label": ClassLabel(names=spelled)})
    rows = Dataset.from_dict({"video_data": [row[0] for row in hub_rows[:12]], "label": list(range(6)) * 2}, features)
    (tmp_path / "hub" / "data").mkdir(parents=True)
    rows.to_parquet(str(tmp_path / "hub" / "data" / "eMotions_chunk_000.parquet"))
    dataset = load_emotions_parquet(tmp_path / "hub", test_size=0.5)
    assert sorted(dataset["test"].features["label"].int2str(dataset["test"]["label"])) == EMOTIONS
    # no file-name column: the videos are named after their chunk and row
    assert (tmp_path / "hub" / "videos" / "Sadness" / "eMotions_chunk_000_00004.mp4").is_file()


def test_emotions_parquet_unknown_label(tmp_path, hub_rows):
    rows = hub_rows[:3] + [(hub_rows[0][0], "Happy", "00009999.mp4", "tiktok")]
    write_chunks(tmp_path / "hub", rows, ["video_data", "category", "file_name", "platform"], rows_per_chunk=2)
    with pytest.raises(ValueError, match=r"eMotions_chunk_001.parquet row 1: unknown label 'Happy'"):
        load_emotions_parquet(tmp_path / "hub", video_dir=tmp_path / "videos")


def test_emotions_command_line_detects_the_hub_layout(tmp_path, hub_rows, capsys):
    write_chunks(tmp_path / "hub", hub_rows[:12], ["video_data", "label", "file_name", "platform"])
    emotions.main([str(tmp_path / "hub"), "--test_size", "0.5", "--output", str(tmp_path / "saved")])
    assert "test: 6 videos" in capsys.readouterr().out
    assert read_label_polarities(tmp_path / "saved") == LABEL_POLARITIES["emotions"]
    assert len(load_from_disk(str(tmp_path / "saved"))["train"]) == 6


# ---------------------------------------------------------------------------------------------------------------
# Generic video folders, saving
# ---------------------------------------------------------------------------------------------------------------


@pytest.fixture
def video_folder(tmp_path, media_dir):
    root = tmp_path / "folder"
    for split, count in [("train", 2), ("test", 1)]:
        for label in ["happy", "sad"]:
            for index in range(count):
                place(media_dir, "good", root / split / label / f"{label}{index}.mp4")
    place(media_dir, "garbage", root / "train" / "happy" / "broken.mp4")
    return root


def test_video_folder(video_folder, tmp_path, caplog):
    polarities = {"happy": "positive", "sad": "negative", "angry": "negative"}  # extra names are fine
    with caplog.at_level(logging.WARNING):
        dataset = load_video_folder(video_folder, polarities, cache_dir=tmp_path / "cache")
    assert {split: len(rows) for split, rows in dataset.items()} == {"train": 4, "test": 2}
    assert dataset["train"].features["label"].names == ["happy", "sad"]
    assert dataset["train"].features["video"].decode is False
    assert all("broken" not in video["path"] for video in dataset["train"]["video"])
    (report,) = skip_warnings(caplog)
    assert "train/happy/broken.mp4: cannot be opened" in report.message

    saved = save_dataset(dataset, tmp_path / "saved", polarities)
    assert read_label_polarities(saved) == {"happy": "positive", "sad": "negative"}
    reloaded = load_from_disk(str(saved))["test"]
    assert reloaded["label"] == dataset["test"]["label"]
    for video, original in zip(reloaded["video"], dataset["test"]["video"]):  # save_to_disk embeds the files
        assert video["bytes"] == Path(original["path"]).read_bytes()


def test_video_folder_needs_every_polarity(video_folder, tmp_path):
    with pytest.raises(ValueError, match=r"No polarity given for label\(s\) \['sad'\]"):
        load_video_folder(video_folder, {"happy": "positive"}, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match=r"Unknown polarity for \{'sad': 'bad'\}"):
        load_video_folder(video_folder, {"happy": "positive", "sad": "bad"}, cache_dir=tmp_path / "cache")


# ---------------------------------------------------------------------------------------------------------------
# Synthetic audio-visual set
# ---------------------------------------------------------------------------------------------------------------

SMALL = {"train": 2, "validation": 1, "test": 1}


def probe(path):
    """(codec of each stream, number of frames, frame size, fps, mean RGB of the frames, dominant audio frequency)."""
    with av.open(str(path)) as container:
        codecs = sorted(stream.codec_context.name for stream in container.streams)
        stream = container.streams.video[0]
        fps = float(stream.average_rate)
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    peak = None
    if "aac" in codecs:
        with av.open(str(path)) as container:
            rate = container.streams.audio[0].sample_rate
            samples = np.concatenate([frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)])
        peak = np.argmax(np.abs(np.fft.rfft(samples))) * rate / len(samples)
    return codecs, len(frames), frames.shape[1:3], fps, frames.reshape(-1, 3).mean(axis=0), peak


def test_synthetic_files_are_h264_aac_and_carry_their_cues(tmp_path):
    dataset = generate_synthetic(tmp_path, videos_per_class=SMALL, num_frames=12, fps=6, size=32, seed=3)
    assert {split: len(rows) for split, rows in dataset.items()} == {"train": 8, "validation": 4, "test": 4}
    assert dataset["train"].features["label"].names == list(synthetic.LABEL_POLARITIES)
    clips = {clip.relative_path: clip for clip in synthetic.plan_clips(SMALL, seed=3)}
    for split in dataset.values():
        for video, label in zip(split["video"], split.features["label"].int2str(split["label"])):
            codecs, num_frames, size, fps, mean_rgb, peak = probe(video["path"])
            clip = clips[Path(video["path"]).relative_to(tmp_path.resolve())]
            assert codecs == ["aac", "h264"] and num_frames == 12 and size == (32, 32) and fps == 6
            assert clip.label == label == synthetic.CUE_LABELS[clip.visual_cue, clip.audio_cue]
            assert ("warm" if mean_rgb[0] > mean_rgb[2] else "cool") == clip.visual_cue
            assert peak == pytest.approx(synthetic.TONE_FREQUENCIES_HZ[clip.audio_cue], abs=10)


def test_synthetic_is_deterministic(tmp_path):
    def file_bytes(folder, seed):
        dataset = generate_synthetic(folder, videos_per_class={"test": 1}, num_frames=8, size=32, seed=seed)
        return [Path(video["path"]).read_bytes() for video in dataset["test"]["video"]]

    first = file_bytes(tmp_path / "a", seed=0)
    assert file_bytes(tmp_path / "b", seed=0) == first
    assert file_bytes(tmp_path / "c", seed=1) != first


def test_synthetic_missing_audio(tmp_path):
    dataset = generate_synthetic(
        tmp_path, videos_per_class={"train": 2}, num_frames=8, size=32, missing_audio_fraction=0.25
    )
    codecs = [probe(video["path"])[0] for video in dataset["train"]["video"]]
    assert codecs.count(["h264"]) == 2 and codecs.count(["aac", "h264"]) == 6


def best_accuracy(cues, labels):
    """Accuracy of the best classifier that sees only `cues`: the majority label of every cue value."""
    cues, labels = np.asarray(cues), np.asarray(labels)
    return sum(np.unique(labels[cues == value], return_counts=True)[1].max() for value in np.unique(cues)) / len(
        labels
    )


def test_synthetic_label_needs_both_modalities():
    assert modality_ceilings() == {"visual": 0.5, "audio": 0.5, "fused": 1.0, "chance": 0.25}
    # the planned clips themselves: each cue alone predicts at most half of the labels, both together all of them
    clips = synthetic.plan_clips({"train": 50}, seed=0)
    labels = [clip.label for clip in clips]
    visual = [clip.visual_cue for clip in clips]
    audio = [clip.audio_cue for clip in clips]
    assert best_accuracy(visual, labels) == best_accuracy(audio, labels) == 0.5
    assert best_accuracy([f"{v}+{a}" for v, a in zip(visual, audio)], labels) == 1.0
    # the label distribution the generator samples from, marginalised by hand
    for cue in synthetic.VISUAL_CUES:
        p_label = np.mean([synthetic.label_distribution(cue, audio_cue) for audio_cue in synthetic.AUDIO_CUES], axis=0)
        assert p_label.max() == 0.5
    assert set(synthetic.LABEL_POLARITIES.values()) == set(POLARITIES)


def test_synthetic_ceilings_with_label_noise_and_silent_clips():
    noise, silent = 0.3, 0.25
    ceilings = modality_ceilings(label_noise=noise, missing_audio_fraction=silent)
    assert ceilings["visual"] == pytest.approx(0.5 - noise / 3)  # (1 - p)/2 + p/6
    assert ceilings["fused"] == pytest.approx((1 - silent) * (1 - noise) + silent * (0.5 - noise / 3))
    assert ceilings["audio"] == pytest.approx((1 - silent) * (0.5 - noise / 3) + silent * 0.25)
    clips = synthetic.plan_clips({"train": 500}, label_noise=noise, missing_audio_fraction=silent, seed=0)
    labels = [clip.label for clip in clips]
    assert best_accuracy([clip.visual_cue for clip in clips], labels) == pytest.approx(ceilings["visual"], abs=0.03)
    assert sum(not clip.has_audio for clip in clips) == 500


def test_synthetic_command_line(tmp_path, capsys):
    synthetic.main(
        ["--output", str(tmp_path / "saved"), "--train_per_class", "1", "--validation_per_class", "0",
         "--test_per_class", "1", "--num_frames", "4", "--size", "16"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "train: 4 videos" in printed and "Best achievable accuracy: visual 0.500" in printed
    assert sorted(path.name for path in (tmp_path / "saved").iterdir()) == [
        "dataset_dict.json", "label_polarities.json", "test", "train"
    ]  # fmt: skip
    saved = load_from_disk(str(tmp_path / "saved"))
    assert read_label_polarities(tmp_path / "saved") == synthetic.LABEL_POLARITIES
    assert json.loads((tmp_path / "saved" / "label_polarities.json").read_text())["Calm"] == "neutral"
    assert find_video_problem(saved["test"]["video"][0]["bytes"]) is None  # the videos travel inside
