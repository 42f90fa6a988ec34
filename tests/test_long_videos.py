"""Long videos and multi-view tests (`processing/windows.py`, `processing/window_inference.py`): the window plan, each
window sampled as a clip of its own, one decoding pass, the edge cases (shorter than a window, a window that does
not divide the length, variable frame rate), the views' shapes and averaging, and a model trained here on the
synthetic set labelling the windows of a video whose halves carry different labels, through the pipeline,
`predict.py --window_seconds` and the demo."""

import importlib.util
import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dataset_scripts.synthetic import CUE_LABELS, LABEL_POLARITIES, render_audio, render_frames, write_mp4
from media import make_video, read_frame_index
from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification
from processing import AVCANetProcessor
from processing.frame_sampling import sample_segment_frame_indices, sample_segment_positions
from processing.window_inference import classify_in_windows
from processing.windows import (
    AVCANetWindowStream,
    average_views,
    crop_corners,
    open_for_windows,
    plan_window_clips,
    view_segment_positions,
    window_plan,
)
from tiny import TINY, tiny_config

REPO = Path(__file__).resolve().parents[1]
S, T = TINY["num_segments"], TINY["frames_per_segment"]
LABELS = list(LABEL_POLARITIES)  # Joy, Calm, Tension, Sadness


@pytest.fixture(scope="module")
def processor():
    return AVCANetProcessor.from_model_config(AVCANetConfig(**TINY))


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("long_media")
    return {
        "cfr": make_video(root / "cfr.mp4", num_frames=100, fps=10, tone_start_s=3.0),  # 10 s
        "short": make_video(root / "short.mp4", num_frames=10, fps=10),  # 1 s, fewer frames than S * T
        "vfr": make_video(root / "vfr.mp4", num_frames=90, fps=10, frame_durations=[1, 7, 3, 4, 4, 2]),  # 3.5 s
        "noise": make_video(root / "noise.mp4", num_frames=40, fps=10, width=96, height=48, burn_frame_index=False),
    }


def windows_of(processor, path, window_seconds=None, window_stride=None, num_clips=1, num_crops=1):
    reader = open_for_windows(str(path))
    plan = window_plan(reader.clip_duration, window_seconds, window_stride)
    clips = plan_window_clips(reader, plan)
    return reader, clips, list(AVCANetWindowStream(processor, reader, clips, num_clips, num_crops))


def burned_indices(frames: torch.Tensor) -> list[int]:
    return [read_frame_index(frame.numpy()) for frame in frames]


def packet_times(path) -> list[float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = sorted(packet.pts for packet in container.demux(stream) if packet.pts is not None)
    return [float(Fraction(value - pts[0]) * stream.time_base) for value in pts]


# --------------------------------------------------------------------------------------------------- the plan


def test_window_plan_steps_by_the_stride_and_aligns_the_last_window_to_the_end():
    assert window_plan(9.0, 3.0) == [(0.0, 3.0), (3.0, 6.0), (6.0, 9.0)]  # W divides the length
    assert window_plan(10.0, 3.0) == [(0.0, 3.0), (3.0, 6.0), (6.0, 9.0), (7.0, 10.0)]  # it does not
    assert window_plan(10.0, 4.0, 2.0) == [(0.0, 4.0), (2.0, 6.0), (4.0, 8.0), (6.0, 10.0)]
    assert window_plan(2.5, 4.0) == [(0.0, 2.5)]  # shorter than a window: the whole video
    for bad in [dict(window_seconds=0), dict(window_seconds=2, window_stride=-1)]:
        with pytest.raises(ValueError):
            window_plan(10.0, **bad)


def test_views_spread_the_segment_windows_and_one_view_is_the_processors_centre():
    for frames in (10, 16, 100, 101):
        assert torch.equal(view_segment_positions(frames, S, T, 1)[0], sample_segment_positions(frames, S, T))
    positions = view_segment_positions(100, S, T, 3)  # segments of 25 frames, windows start at 0..21
    assert positions.shape == (3, S, T)
    assert positions[:, :, 0].tolist() == [[s * 25 + offset for s in range(S)] for offset in (3, 10, 17)]
    assert positions[1].tolist() == sample_segment_frame_indices(100, S, T).tolist()  # the middle view is the centre
    assert crop_corners(48, 96, 32, 32, 3) == [(8, 0), (8, 32), (8, 64)]  # along the long side
    assert crop_corners(96, 48, 32, 32, 3) == [(0, 8), (32, 8), (64, 8)]
    assert crop_corners(20, 40, 32, 32, 3) == [(-6, 4)] * 3  # smaller than the crop: centre (padded) only
    with pytest.raises(ValueError):
        crop_corners(48, 96, 32, 32, 2)


# --------------------------------------------------------------------------------------------------- windows


def test_windows_cover_the_file_and_each_is_sampled_as_a_clip_of_its_frames(processor, media):
    reader, clips, windows = windows_of(processor, media["cfr"], window_seconds=3.0)  # 10 s: W does not divide it
    spans = [(window.start, window.end) for window in windows]
    assert np.allclose(spans, [(0.0, 3.0), (3.0, 6.0), (6.0, 9.0), (7.0, 10.0)], atol=1e-9)
    assert windows[0].start == 0.0 and windows[-1].end == pytest.approx(reader.clip_duration)
    assert all(later.start <= earlier.end for earlier, later in zip(windows, windows[1:]))
    for clip, window in zip(clips, windows):
        assert window.frames.shape == (1, S * T, 3, 32, 32) and window.frames.dtype == torch.uint8
        expected = (clip.first_frame + sample_segment_frame_indices(clip.num_frames, S, T)).flatten().tolist()
        assert burned_indices(window.frames[0]) == expected
        assert (window.segment_spans[0, :, 0] >= window.start - 1e-6).all()
        assert (window.segment_spans[0, :, 1] <= window.end + 1e-6).all()
    assert [clip.first_frame for clip in clips] == [0, 30, 60, 70] and clips[-1].num_frames == 30

    # the same pixels, audio and time spans as the processor gives for the window's frames cut out as a clip
    with av.open(str(media["cfr"])) as container:
        decoded = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    silence = np.zeros(3 * 16000, dtype=np.float32)  # the cut clip lasts 3 s (decoded frames span their audio)
    last = processor(videos=decoded[70:100], audio=silence, sampling_rate=16000, return_time_spans=True)
    pixels = processor.video_processor.to_pixel_values([windows[-1].frames[0]])
    torch.testing.assert_close(pixels, last["pixel_values_videos"], rtol=0, atol=0)
    torch.testing.assert_close(windows[-1].segment_spans[0] - 7.0, last["segment_time_spans"][0], rtol=0, atol=1e-6)
    # the tone starts at 3 s: silent in the first window, sounding in the others
    energy = windows[0].audio.abs().amax(dim=-1), windows[1].audio.abs().amax(dim=-1)
    assert energy[0].max() < 0.05 and energy[1].min() > 0.2


def test_the_stream_decodes_every_frame_once_in_file_order(processor, media):
    reader = open_for_windows(str(media["cfr"]))
    clips = plan_window_clips(reader, window_plan(reader.clip_duration, 4.0, 1.5))  # overlapping windows
    requested, get_frames = [], reader.get_frames
    reader.get_frames = lambda indices: requested.extend(indices) or get_frames(indices)
    stream = AVCANetWindowStream(processor, reader, clips, num_clips=3, num_crops=3)
    assert all(window.frames.shape[0] == 9 for window in stream)
    assert requested == sorted(set(requested)), "a frame was decoded twice or out of order"
    needed = {frame for frames in stream.needed for frame in frames}
    assert set(requested) == needed


def test_a_video_shorter_than_a_window_is_one_window_sampled_like_the_whole_video(processor, media):
    batches = list(processor.iter_windows(str(media["short"]), window_seconds=5.0))
    assert len(batches) == 1 and batches[0]["window_spans"].tolist() == [[0.0, 1.0]]
    plain = processor(videos=str(media["short"]), return_time_spans=True)
    for key in plain:  # the same frames (loop-padded), audio and spans as without windows
        torch.testing.assert_close(batches[0][key], plain[key], rtol=0, atol=1e-6)


def test_variable_frame_rate_windows_hold_the_frames_that_start_inside_them(processor, media):
    times = packet_times(media["vfr"])
    assert len({round(b - a, 4) for a, b in zip(times, times[1:])}) > 2
    reader, clips, windows = windows_of(processor, media["vfr"], window_seconds=1.0, window_stride=0.75)
    assert windows[0].start == 0.0 and windows[-1].end == pytest.approx(reader.clip_duration)
    plan = window_plan(reader.clip_duration, 1.0, 0.75)
    for (begin, end), clip, window in zip(plan, clips, windows):
        inside = [index for index, time in enumerate(times) if begin - 1e-6 <= time < end - 1e-6]
        if (begin, end) == plan[-1]:
            inside = [index for index, time in enumerate(times) if time >= begin - 1e-6]
        assert list(range(clip.first_frame, clip.first_frame + clip.num_frames)) == inside
        assert window.start == pytest.approx(times[inside[0]], abs=1e-6)
        assert set(burned_indices(window.frames[0])) <= set(inside)


# --------------------------------------------------------------------------------------------------- views


def test_multi_view_shapes_crops_and_audio(processor, media):
    plain = processor(videos=str(media["noise"]))
    views = processor(videos=[str(media["noise"]), str(media["cfr"])], num_clips=3, num_crops=3)
    assert views["pixel_values_videos"].shape == (18, S * T, 3, 32, 32)
    assert views["input_features"].shape == (18, TINY["num_mel_bins"], S * TINY["audio_frames_per_segment"])
    assert views["audio_mask"].tolist() == [1] * 18 and views["video_index"].tolist() == [0, 1]
    # view 4 (middle clip, centre crop) is exactly the single-view input
    torch.testing.assert_close(views["pixel_values_videos"][4], plain["pixel_values_videos"][0], rtol=0, atol=0)
    torch.testing.assert_close(views["input_features"][4], plain["input_features"][0], rtol=0, atol=0)
    # crops of a 96 x 48 video resized to 64 x 32: its left, centre and right 32 columns; audio shared by the crops
    resized = processor.video_processor.resize(
        torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in av.open(str(media["noise"])).decode(video=0)]))
        .permute(0, 3, 1, 2), size=processor.video_processor.size, resample=processor.video_processor.resample)
    _, clips, windows = windows_of(processor, media["noise"], window_seconds=10.0, num_clips=3, num_crops=3)
    frames = view_segment_positions(clips[0].num_frames, S, T, 3)[0].flatten()
    for crop, left in enumerate((0, 16, 32)):
        torch.testing.assert_close(windows[0].frames[crop], resized[frames][..., left : left + 32], rtol=0, atol=0)
    assert not torch.equal(windows[0].frames[0], windows[0].frames[2])
    torch.testing.assert_close(views["input_features"][0], views["input_features"][2], rtol=0, atol=0)
    assert not torch.equal(views["input_features"][9], views["input_features"][15])  # the clips hear other moments
    spans = views["segment_time_spans"]
    assert (spans[9:12, :, 0] < spans[12:15, :, 0]).all() and (spans[12:15, :, 0] < spans[15:18, :, 0]).all()


def test_views_are_averaged_as_logits(processor, media):
    torch.manual_seed(0)
    model = AVCANetForVideoClassification(AVCANetConfig(**TINY)).eval()
    inputs = processor(videos=str(media["cfr"]), num_clips=3, num_crops=3)
    with torch.no_grad():
        logits = model(**{key: inputs[key] for key in ("pixel_values_videos", "input_features", "audio_mask")}).logits
    assert average_views(logits, 9).shape == (1, model.config.num_labels)
    expected = average_views(logits, 9)[0].softmax(-1)
    result = classify_in_windows(model, processor, str(media["cfr"]), num_clips=3, num_crops=3, top_k=2, timeline=True)
    top_two = [model.config.id2label[index] for index in expected.topk(2).indices.tolist()]
    assert [entry["label"] for entry in result["labels"]] == top_two
    assert result["labels"][0]["score"] == pytest.approx(float(expected.max()), abs=1e-4)
    assert len(result["timeline"]) == S and "windows" not in result
    single = classify_in_windows(model, processor, str(media["cfr"]))["labels"][0]["score"]
    assert single != result["labels"][0]["score"]  # the views really changed the average


def test_an_answer_in_windows_says_whether_the_video_had_sound(processor, media, tmp_path):
    silent = make_video(tmp_path / "silent.mp4", num_frames=60, fps=10, with_audio=False)  # 6 s, no audio track
    torch.manual_seed(0)
    model = AVCANetForVideoClassification(AVCANetConfig(**TINY)).eval()
    result = classify_in_windows(model, processor, str(silent), window_seconds=3.0, timeline=True)
    assert (result["audio"], result["truncated"]) == (False, False)
    assert len(result["windows"]) == 2 and all(entry["audio_share"] is None for entry in result["windows"])
    assert all(entry["audio_share"] is None for entry in result["timeline"])
    sounding = classify_in_windows(model, processor, str(media["cfr"]), window_seconds=5.0)
    assert sounding["audio"] is True and all(entry["audio_share"] is not None for entry in sounding["windows"])


# --------------------------------------------------------------------------------------------------- a trained model


def synthetic_clip(path: Path, cues: list[tuple[str, str]], seconds_each: float, fps: int = 8, seed: int = 0) -> Path:
    """One mp4 whose consecutive parts carry the synthetic set's cue pairs `(visual, audio)`."""
    rng = np.random.default_rng(seed)
    frames, audio = [], []
    for visual, sound in cues:
        frames.append(render_frames(visual, rng, round(seconds_each * fps), 64, 0.0))
        audio.append(render_audio(sound, rng, round(seconds_each * 16000), 16000, 0.0))
    write_mp4(path, np.concatenate(frames), fps, np.concatenate(audio), 16000)
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A tiny AV-CANet trained here on 24 two-second clips of the synthetic set, in seconds: its classifier is fitted
    in closed form (ridge regression on the standardised segment embeddings of its seeded encoders, to scaled one-hot
    targets), a linear probe; saved with its processor (code included). It labels every training clip right."""
    root = tmp_path_factory.mktemp("trained")
    cue_pairs = list(CUE_LABELS.items())
    paths = [synthetic_clip(root / f"{i}.mp4", [cue_pairs[i % 4][0]], 2.0, seed=i) for i in range(24)]
    labels = torch.tensor([LABELS.index(cue_pairs[i % 4][1]) for i in range(24)])
    config = tiny_config(id2label=dict(enumerate(LABELS)), label2id={n: i for i, n in enumerate(LABELS)},
                         label_polarities=LABEL_POLARITIES)  # fmt: skip
    torch.manual_seed(0)
    model = AVCANetForVideoClassification(config).eval()
    processor = AVCANetProcessor.from_model_config(config)
    inputs = dict(processor(videos=[str(path) for path in paths]))
    with torch.no_grad():
        base = model.avcanet(**inputs)
        embeds = torch.cat([base.audio_segment_embeds, base.visual_segment_embeds], dim=-1).flatten(0, 1).double()
        targets = 10.0 * F.one_hot(labels.repeat_interleave(S), len(LABELS)).double()  # (clips * S, labels)
        mean, std, target_mean = embeds.mean(0), embeds.std(0) + 1e-8, targets.mean(0)
        standardised = (embeds - mean) / std
        gram = standardised.T @ standardised + torch.eye(embeds.shape[1], dtype=torch.float64)  # ridge, lambda 1
        weight = torch.linalg.solve(gram, standardised.T @ (targets - target_mean)) / std[:, None]  # (features, labels)
        model.classifier.weight.copy_(weight.T)
        model.classifier.bias.copy_(target_mean - mean @ weight)
        assert torch.equal(model(**inputs).logits.argmax(-1), labels)
    model.save_pretrained(root / "model")
    processor.save_pretrained(root / "model")
    return root / "model"


@pytest.fixture(scope="module")
def halves(tmp_path_factory) -> Path:
    """12 s: Joy (warm picture, high tone) for 6 s, then Sadness (cool picture, low tone) for 6 s."""
    return synthetic_clip(tmp_path_factory.mktemp("halves") / "halves.mp4", [("warm", "high"), ("cool", "low")], 6.0)


def test_windows_of_a_video_whose_halves_differ_are_labelled_by_half(trained, halves, tmp_path):
    from transformers import pipeline

    classifier = pipeline("video-classification", model=str(trained), trust_remote_code=True)
    result = classifier(str(halves), window_seconds=3.0, timeline=True, top_k=4)
    windows = result["windows"]
    assert [(w["start"], w["end"]) for w in windows] == [(0.0, 3.0), (3.0, 6.0), (6.0, 9.0), (9.0, 12.0)]
    assert [w["label"] for w in windows] == ["Joy", "Joy", "Sadness", "Sadness"]
    # the video's labels: the softmax of the mean of the windows' logits
    inputs = AVCANetProcessor.from_pretrained(trained)(videos=str(halves), window_seconds=3.0)
    with torch.no_grad():
        logits = AVCANetForVideoClassification.from_pretrained(trained).eval()(
            **{key: inputs[key] for key in ("pixel_values_videos", "input_features", "audio_mask")}
        ).logits  # (windows, labels)
    expected = dict(zip(LABELS, logits.mean(dim=0).softmax(dim=-1).tolist()))
    assert len(result["labels"]) == 4
    for entry in result["labels"]:
        assert entry["score"] == pytest.approx(expected[entry["label"]], abs=2e-3)
    assert len(result["timeline"]) == 4 * S
    for entry in result["timeline"]:  # the segments too, on the video's time axis
        assert entry["label"] == ("Joy" if entry["end"] <= 6.0 else "Sadness")
    # a stride below the window: more windows, still labelled by half (the one straddling the middle is mixed)
    overlapping = classifier(str(halves), window_seconds=3.0, window_stride=1.5, num_clips=2, num_crops=3)["windows"]
    assert len(overlapping) == 7
    assert [w["label"] for w in overlapping if w["end"] <= 6.0] == ["Joy"] * 3
    assert [w["label"] for w in overlapping if w["start"] >= 6.0] == ["Sadness"] * 3
    # without any option the answer is what it always was
    assert isinstance(classifier(str(halves)), list)


def test_predict_writes_the_windows_and_plots_the_whole_video(trained, halves, tmp_path):
    plots = tmp_path / "plots"
    command = [sys.executable, str(REPO / "examples" / "predict.py"), str(trained), str(halves), str(tmp_path / "x"),
               "--window_seconds", "4", "--window_stride", "2", "--num_clips", "2", "--plot", str(plots)]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]  # 1: a file could not be read (x), its line says why
    line, missing = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(w["start"], w["end"]) for w in line["windows"]] == [(0, 4), (2, 6), (4, 8), (6, 10), (8, 12)]
    assert line["windows"][0]["label"] == "Joy" and line["windows"][-1]["label"] == "Sadness"
    assert (line["audio"], line["truncated"]) == (True, False)
    assert "timeline" not in line and "error" in missing
    with Image.open(plots / "0000_halves.png") as image:
        assert image.width >= 600 and len(image.convert("RGB").getcolors(1 << 16) or []) > 20


def test_the_demo_shows_a_long_upload_as_its_window_timeline(trained, tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("avcanet_demo_app_long", REPO / "examples" / "demo" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    monkeypatch.setattr(app, "LONG_VIDEO_SECONDS", 10.0)
    monkeypatch.setattr(app, "WINDOW_SECONDS", 4.0)
    long = synthetic_clip(tmp_path / "long.mp4", [("cool", "high")] * 3, 4.0)  # 12 s of Tension
    labels, status, plot = app.EmotionDemo(str(trained)).analyse(str(long))
    assert "3 windows of 4 s" in status and max(labels, key=labels.get) == "Tension"
    short = synthetic_clip(tmp_path / "short.mp4", [("cool", "high")], 2.0)
    _, short_status, _ = app.EmotionDemo(str(trained)).analyse(str(short))
    assert "windows" not in short_status
    with Image.open(plot) as image:
        assert image.width >= 600


# --------------------------------------------------------------------------------------------------- train.py


def test_train_reports_multi_view_test_metrics_beside_the_single_view_ones(trained, tmp_path):
    from types import SimpleNamespace

    from datasets import Dataset
    from transformers import TrainingArguments

    sys.path.insert(0, str(REPO / "examples"))
    from train import AVCANetTrainer, ProcessingCollator, multi_view_metrics

    from metrics.emotion_metrics import make_compute_metrics

    model = AVCANetForVideoClassification.from_pretrained(trained).eval()
    processor = AVCANetProcessor.from_pretrained(trained)
    cue_pairs = list(CUE_LABELS.items())
    rows = [{"video": str(synthetic_clip(tmp_path / f"{i}.mp4", [cue_pairs[i][0]], 2.0, seed=50 + i)),
             "label": LABELS.index(cue_pairs[i][1])} for i in range(3)]  # fmt: skip
    test = Dataset.from_list(rows)
    args = TrainingArguments(output_dir=str(tmp_path / "run"), per_device_eval_batch_size=2, report_to="none",
                             use_cpu=True, remove_unused_columns=False)  # fmt: skip
    trainer = AVCANetTrainer(
        model=model, args=args, data_collator=ProcessingCollator(processor, training=True),
        eval_data_collator=ProcessingCollator(processor, training=False), processor=processor,
        compute_metrics=make_compute_metrics(model.config.id2label, model.config.label_polarities),
    )  # fmt: skip
    single = trainer.predict(test, metric_key_prefix="test").metrics
    data = SimpleNamespace(test=test, eval=None, video_column="video")
    multi = multi_view_metrics(trainer, processor, data, SimpleNamespace(eval_num_clips=3, eval_num_crops=3))
    assert multi["test_3x3_views_accuracy"] == 1.0 and single["test_accuracy"] == 1.0
    assert {"test_3x3_views_macro_f1", "test_3x3_views_audio_accuracy", "test_3x3_views_loss"} <= set(multi)
    # the predictions are each video's logits averaged over its 9 views
    predictions = trainer.predict(test).predictions[0]
    inputs = processor(videos=[row["video"] for row in rows], num_clips=3, num_crops=3)
    with torch.no_grad():
        logits = model(**{key: inputs[key] for key in ("pixel_values_videos", "input_features", "audio_mask")}).logits
    torch.testing.assert_close(torch.from_numpy(predictions), average_views(logits, 9), rtol=1e-4, atol=1e-5)
    assert multi_view_metrics(trainer, processor, data, SimpleNamespace(eval_num_clips=1, eval_num_crops=1)) == {}
