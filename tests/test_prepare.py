"""The training-ready copy (`dataset_scripts.prepare`): a saved data set of generated H.264/AAC media (one bad file,
one without audio, one at a variable frame rate) prepared, resumed after a kill, split into shares, refused for
settings it cannot serve, and read by the processor like the originals: the same frame indices (burned into the
pixels) and audio windows, pixels equal up to the resampling and the re-encode."""

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import av
import pytest
import torch
from datasets import load_from_disk

import dataset_scripts.prepare as prepare
from dataset_scripts import check_prepared_dataset, prepare_dataset, read_label_polarities, save_dataset
from dataset_scripts.common import build_dataset_dict
from media import make_video, read_frame_index, truncate
from modeling_avcanet import AVCANetConfig
from processing import AVCANetFeatureExtractor, AVCANetProcessor, PreparedVideoMismatchError
from processing import video_decoding
from processing.prepared_copies import PREPARED_PIXEL_FORMATS
from processing.video_decoding import open_video
from tiny import TINY

REPO = Path(__file__).resolve().parent.parent

LABELS = {"Happy": "positive", "Calm": "neutral", "Sad": "negative"}
# image_size 48 (not the shared 32): the 12 bands of the burned frame index stay 4 px tall after the crops
SIZES = {**TINY, "image_size": 48}
# Tolerances, original vs prepared copy (measured on these files: pixels mean 0.004, max 0.11; features 0 but for
# windows that hold the tone's onset, up to 0.1):
PIXEL_MEAN_TOLERANCE = 0.01  # mean |difference| of normalised pixels (range 1): the re-encode at CRF 16
PIXEL_MAX_TOLERANCE = 0.15  # any pixel (38 / 255): H.264 ringing at the sharp band edges
# log-mel (natural log): the original's per-window resampling grid lies up to half a 16 kHz sample off the copy's
# whole-track grid, which only shows around a click such as the tone's onset
FEATURE_MEAN_TOLERANCE = 0.005
FEATURE_MAX_TOLERANCE = 0.2
RECIPES = {
    "tone": dict(num_frames=60, fps=24, width=96, height=72, tone_start_s=0.8),
    "vfr": dict(num_frames=50, fps=24, width=96, height=72, tone_start_s=0.5, frame_durations=[1, 7, 3, 4, 4, 2]),
    "no_audio": dict(num_frames=40, fps=30, width=80, height=64, with_audio=False),
    "short": dict(num_frames=9, fps=24, width=96, height=72, tone_start_s=0.1),  # loop-padded
    "long": dict(num_frames=120, fps=30, width=96, height=72, tone_start_s=2.0),
    "rotated": dict(num_frames=40, fps=24, width=96, height=72, tone_start_s=0.5, display_rotation=90),
}


@pytest.fixture(scope="module")
def processor():
    return AVCANetProcessor.from_model_config(AVCANetConfig(**SIZES))


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory):
    """A saved data set (`save_dataset`): 4 train videos incl. a garbage file, 3 validation videos."""
    root = tmp_path_factory.mktemp("source")
    paths = {name: str(make_video(root / f"{name}.mp4", **recipe)) for name, recipe in RECIPES.items()}
    bad = root / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 50)
    splits = {
        "train": [(paths["tone"], "Happy"), (str(bad), "Sad"), (paths["vfr"], "Calm"), (paths["no_audio"], "Sad")],
        "validation": [(paths["short"], "Calm"), (paths["long"], "Happy"), (paths["rotated"], "Sad")],
    }
    return save_dataset(build_dataset_dict(splits, list(LABELS)), root / "saved", LABELS)


@pytest.fixture(scope="module")
def prepared_dir(source_dir, processor, tmp_path_factory):
    return prepare_dataset(source_dir, tmp_path_factory.mktemp("prepared") / "copy", processor, num_proc=2)


def cell_source(cell):
    return cell["bytes"] if cell.get("bytes") else cell["path"]


def test_prepared_copy_has_the_source_rows_without_the_bad_video(source_dir, prepared_dir):
    source, prepared = load_from_disk(str(source_dir)), load_from_disk(str(prepared_dir))
    assert list(prepared) == list(source)
    assert prepared["train"].features == source["train"].features
    assert prepared["train"]["label"] == [0, 1, 2]  # Happy, Calm, Sad: the garbage "Sad" row is left out
    assert prepared["validation"]["label"] == source["validation"]["label"]
    assert read_label_polarities(prepared_dir) == LABELS
    record = json.loads((prepared_dir / "prepared.json").read_text())
    assert record["settings"]["short_side"] == 48 and record["settings"]["sampling_rate"] == 16000
    assert list(record["left_out"]) == ["train[1] bad.mp4"]
    assert not (prepared_dir / ".work").exists()


def test_each_prepared_file_keeps_frames_and_timestamps_at_the_needed_size(source_dir, prepared_dir):
    source, prepared = load_from_disk(str(source_dir)), load_from_disk(str(prepared_dir))
    originals = [cell for index, cell in enumerate(source["train"]["video"]) if index != 1]
    originals += list(source["validation"]["video"])
    copies = list(prepared["train"]["video"]) + list(prepared["validation"]["video"])
    for original, copy in zip(originals, copies):
        with open_video(cell_source(original)) as before, open_video(cell_source(copy)) as after:
            assert after.prepared is not None and before.prepared is None
            assert after.num_frames == before.num_frames
            assert min(after.height, after.width) == 48
            assert abs(after.width / after.height - before.width / before.height) < 0.03
            assert after.has_audio == before.has_audio
            assert after.clip_duration == pytest.approx(before.clip_duration, abs=1e-6)
            everything = list(range(before.num_frames))
            first, second = before.get_frames(everything), after.get_frames(everything)
            torch.testing.assert_close(second.timestamps, first.timestamps, atol=1e-6, rtol=0)
            torch.testing.assert_close(second.durations, first.durations, atol=1e-6, rtol=0)


def test_processor_reads_prepared_copy_like_the_original(source_dir, prepared_dir, processor):
    source, prepared = load_from_disk(str(source_dir)), load_from_disk(str(prepared_dir))
    pairs = [(cell, copy) for cell, copy in zip(source["validation"]["video"], prepared["validation"]["video"])]
    kept_train = [cell for index, cell in enumerate(source["train"]["video"]) if index != 1]
    pairs += list(zip(kept_train, prepared["train"]["video"]))  # short, long, rotated; tone, vfr, no_audio
    mean = processor.video_processor.image_mean[0]
    for original, copy in pairs:
        for training in (False, True):
            for seed in range(3 if training else 1):
                outputs = [
                    processor(videos=cell_source(cell), training=training, generator=torch.Generator().manual_seed(s))
                    for cell, s in ((original, seed), (copy, seed))
                ]
                before, after = (output["pixel_values_videos"][0] for output in outputs)  # (S * T, C, H, W)
                indices_before = [read_frame_index(frame + mean) for frame in before.numpy()]
                indices_after = [read_frame_index(frame + mean) for frame in after.numpy()]
                assert indices_after == indices_before, (original["path"], training, seed)
                difference = (after - before).abs()
                assert difference.mean() < PIXEL_MEAN_TOLERANCE, (original["path"], training, seed)
                assert difference.max() < PIXEL_MAX_TOLERANCE, (original["path"], training, seed)
                assert outputs[1]["audio_mask"].item() == outputs[0]["audio_mask"].item()
                features = (outputs[1]["input_features"] - outputs[0]["input_features"]).abs()
                assert features.mean() < FEATURE_MEAN_TOLERANCE and features.max() < FEATURE_MAX_TOLERANCE


@pytest.mark.parametrize("kind", ["cut_off", "full_range"])
def test_unusual_videos_are_copied_like_the_processor_reads_them(kind, tmp_path, processor, monkeypatch):
    """A download cut short (index at the front, tail missing) keeps the frames that decode; full-range YUV (phones'
    `yuvj420p`) is not fit for the PyAV fast path and goes through the processor's own reader."""
    if kind == "cut_off":
        full = make_video(tmp_path / "full.mp4", num_frames=120, width=96, height=72, faststart=True, tone_start_s=1)
        source = truncate(full, 0.6, tmp_path / "cut.mp4")
    else:
        source = make_video(tmp_path / "full_range.mp4", num_frames=40, width=96, height=72, pix_fmt="yuvj420p")
    paths = []
    frames_by_reader = prepare._frames_by_reader
    monkeypatch.setattr(prepare, "_frames_by_reader", lambda *a, **k: (paths.append(1), frames_by_reader(*a, **k))[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cut-off original warns about its tail on every read
        prepare.prepare_video(source, tmp_path / "copy.mp4", prepare.prepared_settings_for(processor))
        assert bool(paths) == (kind == "full_range")
        mean = processor.video_processor.image_mean[0]
        for training in (False, True):
            before, after = (
                processor(videos=str(path), training=training, generator=torch.Generator().manual_seed(0))
                for path in (source, tmp_path / "copy.mp4")
            )
            pixels = [output["pixel_values_videos"][0] for output in (before, after)]
            indices = [[read_frame_index(frame + mean) for frame in clip.numpy()] for clip in pixels]
            assert indices[1] == indices[0] and max(indices[0]) < 120
            assert (pixels[1] - pixels[0]).abs().mean() < PIXEL_MEAN_TOLERANCE


def test_subsampled_copy_is_read_at_its_odd_size_with_the_same_frames(tmp_path, processor):
    """`pixel_format="yuv420p"`: coded at even sides (4:2:0 needs them), read back at the odd size of the 4:4:4 copy,
    the same frames and pixels up to the colour subsampling."""
    source = make_video(tmp_path / "source.mp4", num_frames=40, width=96, height=72, tone_start_s=0.5)
    copies = {}
    for pixel_format in PREPARED_PIXEL_FORMATS:
        settings = prepare.prepared_settings_for(processor, short_side=49, pixel_format=pixel_format)  # 49 x 65
        copies[pixel_format] = tmp_path / f"{pixel_format}.mp4"
        prepare.prepare_video(source, copies[pixel_format], settings)
    with av.open(str(copies["yuv420p"])) as container:
        stream = container.streams.video[0]
        assert (stream.format.name, stream.width, stream.height) == ("yuv420p", 66, 50)
    with open_video(str(copies["yuv444p"])) as full, open_video(str(copies["yuv420p"])) as subsampled:
        assert (subsampled.height, subsampled.width) == (full.height, full.width) == (49, 65)
        assert subsampled.prepared["pixel_format"] == "yuv420p"
        indices = list(range(full.num_frames))
        frames = subsampled.get_frames(indices).frames
        assert (frames.float() - full.get_frames(indices).frames.float()).abs().mean() < 255 * PIXEL_MEAN_TOLERANCE
    with video_decoding.TorchcodecVideoReader(str(copies["yuv420p"]), "copy") as coded:  # 66 x 50, torchcodec's RGB
        assert torch.equal(frames, coded.get_frames(indices).frames[..., :49, :65])
    mean = processor.video_processor.image_mean[0]
    for training in (False, True):  # against the original: the frames; against the 4:4:4 copy: the pixels too
        original, full, subsampled = (
            processor(videos=str(path), training=training, generator=torch.Generator().manual_seed(1))
            for path in (source, copies["yuv444p"], copies["yuv420p"])
        )
        pixels = [output["pixel_values_videos"][0] for output in (original, full, subsampled)]
        indices = [[read_frame_index(frame + mean) for frame in clip.numpy()] for clip in pixels]
        assert indices[2] == indices[1] == indices[0]
        assert (pixels[2] - pixels[1]).abs().mean() < PIXEL_MEAN_TOLERANCE
    with pytest.raises(ValueError, match="pixel_format must be one of yuv444p, yuv420p"):
        prepare.prepared_settings_for(processor, pixel_format="rgb24")


def recording(prepare_video, calls: list):
    """`prepare_video` that also appends `split/file` of each video it prepares to `calls`."""

    def recorded(source, output_path, *args, **kwargs):
        calls.append(f"{output_path.parent.name}/{output_path.name}")
        return prepare_video(source, output_path, *args, **kwargs)

    return recorded


def test_bad_video_is_reported_once_with_its_path(source_dir, processor, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        prepare_dataset(source_dir, tmp_path / "copy", processor, num_proc=1)
    reports = [record.getMessage() for record in caplog.records if "unusable" in record.getMessage()]
    assert len(reports) == 1 and "bad.mp4" in reports[0] and "train[1]" in reports[0]


def test_resumes_after_a_kill_without_redoing_finished_videos(source_dir, processor, tmp_path, monkeypatch):
    real_prepare_video, calls = prepare.prepare_video, []

    def killed_on_third(source, output_path, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # what a kill leaves: the third video half done, nothing after it
        calls.append(f"{output_path.parent.name}/{output_path.name}")
        return real_prepare_video(source, output_path, *args, **kwargs)

    monkeypatch.setattr(prepare, "prepare_video", killed_on_third)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(source_dir, tmp_path / "copy", processor, num_proc=1)
    assert not (tmp_path / "copy" / "prepared.json").exists()
    first_run = list(calls)

    calls.clear()
    monkeypatch.setattr(prepare, "prepare_video", recording(real_prepare_video, calls))
    prepare_dataset(source_dir, tmp_path / "copy", processor, num_proc=1)
    assert len(first_run) == 2 and not set(first_run) & set(calls)
    assert len(first_run) + len(calls) == 7  # every row once, the bad one included (it is tried, then recorded)
    assert load_from_disk(str(tmp_path / "copy")).num_rows == {"train": 3, "validation": 3}


def test_two_shares_cover_every_video_once(source_dir, processor, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(prepare, "prepare_video", recording(prepare.prepare_video, calls))
    output = tmp_path / "copy"
    assert prepare_dataset(source_dir, output, processor, num_proc=1, shard_index=1, num_shards=2) is None
    first_share = list(calls)
    assert not (output / "prepared.json").exists()
    monkeypatch.setenv("RANK", "0")  # the other share as `accelerate launch` would start it
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert prepare_dataset(source_dir, output, processor, num_proc=1) == output
    assert len(calls) == 7 and not set(first_share) & set(calls[len(first_share) :])
    assert load_from_disk(str(output)).num_rows == {"train": 3, "validation": 3}
    for num_rows in (0, 1, 5, 6):
        for shares in (1, 2, 3):
            rows = [row for index in range(shares) for row in prepare.share_of_rows(num_rows, index, shares)]
            assert rows == list(range(num_rows))


def test_refuses_settings_the_copy_cannot_serve(source_dir, prepared_dir, processor):
    original = load_from_disk(str(source_dir))["validation"][1]["video"]
    copy = load_from_disk(str(prepared_dir))["validation"][1]["video"]
    larger = AVCANetProcessor.from_model_config(AVCANetConfig(**{**SIZES, "image_size": 64}))
    with pytest.raises(PreparedVideoMismatchError, match="short side of 48 px, the processor needs 64 px"):
        larger(videos=cell_source(copy))
    with pytest.raises(PreparedVideoMismatchError, match="needs 64 px"):
        check_prepared_dataset(prepared_dir, larger)
    other_rate = AVCANetProcessor(
        processor.video_processor,
        AVCANetFeatureExtractor(
            feature_size=16, sampling_rate=22050, num_segments=TINY["num_segments"], audio_frames_per_segment=8
        ),
    )
    with pytest.raises(PreparedVideoMismatchError, match="16000 Hz, the feature extractor reads 22050 Hz"):
        other_rate(videos=cell_source(copy), training=True)
    with pytest.raises(PreparedVideoMismatchError, match="22050 Hz"):
        check_prepared_dataset(prepared_dir, other_rate)
    # the originals serve any setting; a smaller model reads the copy
    assert larger(videos=cell_source(original))["pixel_values_videos"].shape[-1] == 64
    assert other_rate(videos=cell_source(original))["audio_mask"].item() == 1
    smaller = AVCANetProcessor.from_model_config(AVCANetConfig(**TINY))
    assert smaller(videos=cell_source(copy))["pixel_values_videos"].shape[-1] == 32
    assert check_prepared_dataset(prepared_dir, smaller)["short_side"] == 48
    assert check_prepared_dataset(source_dir, larger) is None


def test_prepared_file_is_short_gop_h264_with_flac_audio(prepared_dir):
    copy = load_from_disk(str(prepared_dir))["validation"][1]["video"]
    with av.open(io.BytesIO(copy["bytes"])) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert (video.codec_context.name, video.format.name) == ("h264", "yuv444p")
        assert (audio.codec_context.name, audio.rate, audio.channels) == ("flac", 16000, 1)
        keyframes = [packet.is_keyframe for packet in container.demux(video) if packet.size]
    assert len(keyframes) == RECIPES["long"]["num_frames"]
    interval = TINY["frames_per_segment"]  # the keyframe interval: a window decodes from at most one keyframe back
    # exactly every `interval` frames, although every source frame here differs (a scene cut for x264) and the
    # source has keyframes of its own: readers rely on this (`PyAVVideoReader._index_frames`)
    assert keyframes == [index % interval == 0 for index in range(len(keyframes))]


def all_copies(prepared_dir):
    prepared = load_from_disk(str(prepared_dir))
    return [cell["bytes"] for split in ("train", "validation") for cell in prepared[split]["video"]]


def test_prepared_copies_are_read_by_pyav_as_torchcodec_reads_them(prepared_dir, tmp_path):
    """PyAV's planar conversion gives torchcodec's pixels exactly, for every kind of input that holds a copy."""
    from datasets import Dataset, Video

    copies = all_copies(prepared_dir)
    path = tmp_path / "copy.mp4"
    path.write_bytes(copies[1])
    decoded = Dataset.from_dict({"video": [str(path)]}).cast_column("video", Video())[0]["video"]
    inputs = {"bytes": copies[1], "path": str(path), "file": io.BytesIO(copies[1]), "datasets": decoded}
    for kind, video in inputs.items():
        with open_video(video) as reader:
            assert isinstance(reader, video_decoding.PyAVVideoReader), kind
            assert reader.prepared is not None and reader.num_frames == RECIPES["vfr"]["num_frames"], kind
    starts = torch.tensor([0.0, 0.3, 0.9])
    for copy in copies:
        with open_video(copy) as fast, video_decoding.TorchcodecVideoReader(copy, "copy") as reference:
            indices = [5, 0, 3, 3, fast.num_frames - 1, 1]  # any order, repeats, forward and backward seeks
            assert torch.equal(fast.get_frames(indices).frames, reference.get_frames(indices).frames)
            if reference.has_audio:
                windows = fast.read_audio_windows(starts, 4000, 16000)
                torch.testing.assert_close(windows, reference.read_audio_windows(starts, 4000, 16000), atol=0, rtol=0)


def test_a_copy_is_read_on_the_decoder_threads_asked_for(prepared_dir, tmp_path):
    """With one decoder thread (what a DataLoader worker gets) reading a copy starts no thread: swscale's default of
    a slice thread per core spent 1.5-7x the CPU on a copy's small frames, in every worker at once."""
    cores = os.sched_getaffinity(0)
    if len(cores) < 2:
        pytest.skip("swscale starts no slice threads on one core")
    copy = tmp_path / "copy.mp4"
    copy.write_bytes(all_copies(prepared_dir)[0])
    script = textwrap.dedent(
        f"""
        import os
        from processing.video_decoding import open_video

        threads = len(os.listdir("/proc/self/task"))
        with open_video({str(copy)!r}, decoder_threads=1) as reader:
            reader.get_frames(list(range(8)))
            print(threads, len(os.listdir("/proc/self/task")))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    before, after = map(int, result.stdout.split())
    assert after == before


def test_prepared_copy_audio_without_torchcodec(prepared_dir, monkeypatch):
    """Without torchcodec the same reader decodes the FLAC itself, to the same samples."""
    copy = all_copies(prepared_dir)[0]
    starts = torch.tensor([0.1, 0.5, 1.2])
    with open_video(copy) as reader:
        expected = reader.read_audio_windows(starts, 4000, 16000)
    monkeypatch.setattr(video_decoding, "TORCHCODEC_AVAILABLE", False)
    with open_video(copy) as reader:
        assert isinstance(reader, video_decoding.PyAVVideoReader) and reader.has_audio
        torch.testing.assert_close(reader.read_audio_windows(starts, 4000, 16000), expected, atol=1e-6, rtol=0)
        assert expected.abs().max() > 0.1  # the tone is there


def test_constant_frame_step_is_announced_and_gives_the_scanned_frames(prepared_dir, monkeypatch):
    copies = all_copies(prepared_dir)  # tone, vfr, no_audio; short, long, rotated
    with_step = []
    tags = {}
    for copy in copies:
        with open_video(copy) as reader:
            with_step.append("constant_frame_step" in reader.prepared)
            tags[copy] = (reader._pts, list(reader._durations), reader._keyframes, reader.clip_duration)
    assert with_step == [True, False, True, True, True, True]  # the variable frame rate copy announces no step
    real = video_decoding.parse_prepared_tag

    def without_step(metadata):
        return {key: value for key, value in real(metadata).items() if key != "constant_frame_step"}

    monkeypatch.setattr(video_decoding, "parse_prepared_tag", without_step)
    for copy in copies:
        with open_video(copy) as scanned:
            assert (scanned._pts, list(scanned._durations), scanned._keyframes, scanned.clip_duration) == tags[copy]


def test_command_line_shares_and_merge(source_dir, processor, tmp_path, capsys):
    processor.save_pretrained(tmp_path / "model")  # --model: the sizes come from the saved processor (48 px)
    output = tmp_path / "copy"
    command = [str(source_dir), "--output", str(output), "--model", str(tmp_path / "model"), "--num_proc", "1"]
    command += ["--pixel_format", "yuv420p"]
    prepare.main(command + ["--shard_index", "0", "--num_shards", "2"])
    with pytest.raises(SystemExit, match="Not every share"):
        prepare.main(command + ["--merge"])
    (output / ".work" / "merge.lock").touch()  # left by a share killed while it wrote the data set
    prepare.main(command + ["--shard_index", "1", "--num_shards", "2"])
    assert not (output / "prepared.json").exists()
    prepare.main(command + ["--merge"])
    assert "{'train': 3, 'validation': 3} videos, 1 left out" in capsys.readouterr().out
    record = json.loads((output / "prepared.json").read_text())
    assert record["settings"]["short_side"] == 48 and record["videos"] == {"train": 3, "validation": 3}
    assert record["settings"]["pixel_format"] == record["encoding"]["video"]["pix_fmt"] == "yuv420p"
    assert load_from_disk(str(output))["validation"]["label"] == load_from_disk(str(source_dir))["validation"]["label"]
