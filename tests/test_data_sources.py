"""`dataset_scripts.sources`: the data a training run reads from a Hub-style parquet layout, a glob, a stream, a video
folder or a saved folder; labels matched to the presets; the carved validation split; and the errors."""

import logging
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import IterableDataset, load_from_disk
from media import make_video

from dataset_scripts import LABEL_POLARITIES, load_training_data, node_share, save_dataset, save_dataset_by_reference
from dataset_scripts.common import build_dataset_dict

EMOTIONS = list(LABEL_POLARITIES["emotions"])
SPELLED = ["Sad" if name == "Sadness" else name for name in EMOTIONS]  # as the Hub release writes it


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Twelve small H.264 + AAC clips whose bytes all differ."""
    folder = tmp_path_factory.mktemp("clips")
    return [
        make_video(
            folder / f"{index:08d}.mp4",
            num_frames=8,
            fps=8,
            width=32,
            height=32,
            audio_rate=16000,
            audio_channels=1,
            burn_frame_index=False,
            seed=index,
        )  # fmt: skip
        for index in range(12)
    ]


def load(tmp_path, **kwargs):
    """`load_training_data` with the `datasets` cache in the test's folder."""
    return load_training_data(cache_dir=str(tmp_path / "cache"), **kwargs)


def write_emotions_chunks(root, clips, labels=None, columns=("video_data", "emotion", "file_name"), per_chunk=3):
    """`root/data/eMotions_chunk_NNN.parquet`, the Hub release's layout, two clips per class."""
    labels = labels or SPELLED * 2
    (root / "data").mkdir(parents=True)
    for chunk, start in enumerate(range(0, len(clips), per_chunk)):
        part = range(start, min(start + per_chunk, len(clips)))
        values = [[clips[i].read_bytes() for i in part], [labels[i] for i in part], [clips[i].name for i in part]]
        pq.write_table(pa.table(dict(zip(columns, values))), root / "data" / f"eMotions_chunk_{chunk:03d}.parquet")
    return root


def labelled_bytes(rows, video_column="video_data"):
    return {bytes(row[video_column]): rows.features["label"].int2str(row["label"]) for row in rows}


def test_parquet_chunks_load_with_preset_labels_and_a_carved_stratified_validation_split(tmp_path, clips, caplog):
    root = write_emotions_chunks(tmp_path / "hub", clips)
    with caplog.at_level(logging.INFO, logger="dataset_scripts.sources"):
        data = load(tmp_path, dataset_name=str(root), validation_split_percentage=50, seed=3)
    assert data.label_polarities == LABEL_POLARITIES["emotions"]  # found: every label is the eMotions preset's
    assert data.video_column == "video_data" and data.test is None
    assert data.train.features["label"].names == EMOTIONS
    train, evaluation = labelled_bytes(data.train), labelled_bytes(data.eval)
    expected = {clip.read_bytes(): name for clip, name in zip(clips, EMOTIONS * 2)}  # "Sad" read as "Sadness"
    assert not train.keys() & evaluation.keys() and {**train, **evaluation} == expected
    assert sorted(evaluation.values()) == sorted(train.values()) == EMOTIONS  # stratified: one of each class
    assert "evaluating on 50% of 'train', stratified by label, seed 3" in caplog.text
    assert "testing on nothing" in caplog.text

    again = load(tmp_path, dataset_name=str(root), validation_split_percentage=50, seed=3)
    assert labelled_bytes(again.eval) == evaluation  # seeded
    glob = load(tmp_path, dataset_name=str(root / "data" / "*.parquet"), validation_split_percentage=50, seed=3)
    assert labelled_bytes(glob.eval) == evaluation

    limited = load(tmp_path, dataset_name=str(root), validation_split_percentage=50, max_train_samples=4,
                   max_eval_samples=2)  # fmt: skip
    assert len(limited.train) == 4 and len(limited.eval) == 2


def test_streamed_parquet_is_relabelled_and_each_process_reads_a_disjoint_share(tmp_path, clips, caplog):
    root = write_emotions_chunks(tmp_path / "hub", clips)  # 4 files
    with caplog.at_level(logging.INFO, logger="dataset_scripts.sources"):
        data = load(tmp_path, dataset_name=str(root), streaming=True, label_set="emotions")
    assert isinstance(data.train, IterableDataset) and data.eval is None
    assert "evaluating on none (a stream has no validation split carved" in caplog.text
    expected = {clip.read_bytes(): name for clip, name in zip(clips, EMOTIONS * 2)}
    assert {bytes(row["video_data"]): EMOTIONS[row["label"]] for row in data.train} == expected

    shares = [
        [
            bytes(row["video_data"])
            for row in node_share(data.train, seed=0, shuffle_buffer_size=4, process_index=rank, num_processes=2)
        ]  # fmt: skip
        for rank in range(2)
    ]
    assert len(shares[0]) == len(shares[1]) == 6 and not set(shares[0]) & set(shares[1])
    assert set(shares[0]) | set(shares[1]) == set(expected)
    share = node_share(data.train, seed=0, shuffle_buffer_size=12, process_index=0, num_processes=1)
    orders = []
    for epoch in range(2):
        share.set_epoch(epoch)
        orders.append([bytes(row["video_data"]) for row in share])
    assert sorted(orders[0]) == sorted(orders[1]) and orders[0] != orders[1]  # reshuffled every epoch


def test_a_video_folder_keeps_referencing_its_files(tmp_path, clips):
    for split, part in (("train", clips[:6]), ("test", clips[6:])):
        for clip, label in zip(part, ["happy", "sad", "calm"] * 2):
            (tmp_path / "videos" / split / label).mkdir(parents=True, exist_ok=True)
            (tmp_path / "videos" / split / label / clip.name).write_bytes(clip.read_bytes())
    polarities = {"happy": "positive", "calm": "neutral", "sad": "negative"}  # not the folders' sorted order
    data = load(tmp_path, dataset_name=str(tmp_path / "videos"), label_polarities=polarities,
                validation_split_percentage=50)  # fmt: skip
    assert data.train.features["label"].names == ["happy", "calm", "sad"]
    assert data.video_column == "video"
    for rows in (data.train, data.eval, data.test):
        for row in rows:
            video = row["video"]
            assert video["bytes"] is None and video["path"].startswith(str(tmp_path / "videos"))
            assert f"/{rows.features['label'].int2str(row['label'])}/" in video["path"]
    assert len(data.test) == 6 and len(data.train) + len(data.eval) == 6


def test_a_saved_folder_still_loads_with_its_polarities(tmp_path, clips):
    names = list(LABEL_POLARITIES["synthetic"])
    splits = {"train": [(str(clip), names[i % 4]) for i, clip in enumerate(clips[:8])],
              "validation": [(str(clips[8]), names[0])], "test": [(str(clips[9]), names[1])]}  # fmt: skip
    save_dataset(build_dataset_dict(splits, names), tmp_path / "saved", LABEL_POLARITIES["synthetic"])
    data = load(tmp_path, dataset_dir=tmp_path / "saved")
    assert data.label_polarities == LABEL_POLARITIES["synthetic"]
    assert len(data.train) == 8 and len(data.eval) == 1 and len(data.test) == 1
    assert data.train[:] == load_from_disk(str(tmp_path / "saved"))["train"][:]

    # the same data set saved by reference: the paths, not the bytes, and the same rows read back
    save_dataset_by_reference(build_dataset_dict(splits, names), tmp_path / "referenced", LABEL_POLARITIES["synthetic"])
    size = sum(path.stat().st_size for path in (tmp_path / "referenced").rglob("*"))
    assert size < sum(clip.stat().st_size for clip in clips[:10]) / 4
    referenced = load(tmp_path, dataset_dir=tmp_path / "referenced")
    assert referenced.video_column == "video" and referenced.train["video"] == [path for path, _ in splits["train"]]
    assert referenced.train["label"] == data.train["label"] and referenced.label_polarities == data.label_polarities
    embedded = load_from_disk(str(tmp_path / "saved"))
    with pytest.raises(ValueError, match=r"Split 'train' holds video bytes, not files"):
        save_dataset_by_reference(embedded, tmp_path / "again", LABEL_POLARITIES["synthetic"])


def test_clear_errors_name_the_data_set_and_the_column(tmp_path, clips):
    no_video = write_emotions_chunks(tmp_path / "no_video", clips[:3], columns=("clip", "emotion", "file_name"))
    with pytest.raises(ValueError, match=rf"Data set {no_video} has no video column: none of its columns "
                                         r"\['clip', 'emotion', 'file_name'\].*--video_column"):  # fmt: skip
        load(tmp_path, dataset_name=str(no_video))
    with pytest.raises(ValueError, match=r"has no column 'movie' \(--video_column\)"):
        load(tmp_path, dataset_name=str(no_video), video_column="movie")

    no_label = write_emotions_chunks(tmp_path / "no_label", clips[:3], columns=("video_data", "mood", "file_name"))
    with pytest.raises(ValueError, match=rf"Data set {no_label} has no label column.*'mood'.*--label_column"):
        load(tmp_path, dataset_name=str(no_label))

    unknown = write_emotions_chunks(tmp_path / "unknown", clips[:6], labels=SPELLED[:5] + ["Happy"])
    with pytest.raises(ValueError, match=rf"data set {unknown}, split 'train', column 'emotion', row 5: "
                                         r"unknown label 'Happy'; expected one of \['Excitation'"):  # fmt: skip
        load(tmp_path, dataset_name=str(unknown), label_set="emotions")
    with pytest.raises(ValueError, match=r"labels of column 'emotion' .*'Happy'.* not those of a preset.*--label_set"):
        load(tmp_path, dataset_name=str(unknown))
    streamed = load(tmp_path, dataset_name=str(unknown), label_set="emotions", streaming=True)
    with pytest.raises(ValueError, match=r"column 'emotion', an example: unknown label 'Happy'"):
        list(streamed.train)

    good = write_emotions_chunks(tmp_path / "good", clips[:6], labels=SPELLED)
    with pytest.raises(ValueError, match=rf"Data set {good} has no split 'validation' \(--eval_split\); its splits: "
                                         r"\['train'\]"):  # fmt: skip
        load(tmp_path, dataset_name=str(good), eval_split="validation")
    with pytest.raises(ValueError, match=r"has no split 'training' \(--train_split\)"):
        load(tmp_path, dataset_name=str(good), train_split="training")
    with pytest.raises(ValueError, match=r"cannot carve 10% of split 'train' as a validation split"):
        load(tmp_path, dataset_name=str(good))  # one video per class cannot be stratified


def test_labels_are_counted_per_class_in_the_preset_order(tmp_path, clips):
    root = write_emotions_chunks(tmp_path / "hub", clips)
    data = load(tmp_path, dataset_name=str(root), eval_split=None, validation_split_percentage=50)
    counts = Counter(data.train["label"]) + Counter(data.eval["label"])
    assert counts == {index: 2 for index in range(len(EMOTIONS))}
