"""The emotion timeline: per-segment logits whose mean is the prediction, split exactly into audio and visual parts;
per-segment time spans from the frames actually sampled (constant and variable frame rate); `predict.py --timeline
--plot`."""

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from media import make_video
from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification
from processing import AVCANetProcessor, video_decoding
from processing.frame_sampling import sample_segment_frame_indices
from processing.pipeline_avcanet import segment_timeline
from saved_model import save_tiny_model
from tiny import TINY

REPO = Path(__file__).resolve().parents[1]
S, T = TINY["num_segments"], TINY["frames_per_segment"]

# name -> make_video arguments: 60 frames, so 4 x 4 sampling is not loop-padded; "short" (10 frames) is
RECIPES = {
    "cfr": dict(num_frames=60, fps=24),
    "vfr": dict(num_frames=60, fps=24, frame_durations=[1, 7, 3, 4, 4, 2]),  # ticks of 1/96 s
    "short": dict(num_frames=10, fps=10),
}


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("timeline_media")
    return {name: make_video(root / f"{name}.mp4", **recipe) for name, recipe in RECIPES.items()}


@pytest.fixture(params=["torchcodec", "pyav"])
def backend(request, monkeypatch):
    if request.param == "pyav":
        monkeypatch.setattr(video_decoding, "TORCHCODEC_AVAILABLE", False)
    elif not video_decoding.TORCHCODEC_AVAILABLE:
        pytest.skip("torchcodec cannot load here")
    return request.param


@pytest.fixture(scope="module")
def processor():
    return AVCANetProcessor.from_model_config(AVCANetConfig(**TINY))


def frame_times(path) -> tuple[list[float], list[float]]:
    """Start and display duration of every frame in presentation order, read with PyAV from the packets."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = sorted(
            (packet for packet in container.demux(stream) if packet.pts is not None), key=lambda packet: packet.pts
        )
        starts = [Fraction(packet.pts) * stream.time_base for packet in packets]
        durations = [Fraction(packet.duration) * stream.time_base for packet in packets]
    return [float(start - starts[0]) for start in starts], [float(duration) for duration in durations]


# --------------------------------------------------------------------------------------------------- segment logits


def test_segment_logits_average_to_the_logits_and_split_into_audio_and_visual():
    config = AVCANetConfig(**TINY)
    model = AVCANetForVideoClassification(config).eval()
    generator = torch.Generator().manual_seed(0)
    inputs = {
        "pixel_values_videos": torch.randn(3, S * T, 3, 32, 32, generator=generator),
        "input_features": torch.randn(3, 16, S * 8, generator=generator),
        "audio_mask": torch.tensor([1, 0, 1]),
    }
    with torch.no_grad():
        outputs = model(**inputs)
        base = model.avcanet(**inputs)
    assert outputs.segment_logits.shape == (3, S, config.num_labels)
    assert outputs.audio_segment_logits.shape == outputs.visual_segment_logits.shape == (3, S, config.num_labels)
    torch.testing.assert_close(outputs.segment_logits.mean(dim=1), outputs.logits)
    torch.testing.assert_close(outputs.audio_segment_logits + outputs.visual_segment_logits, outputs.segment_logits)
    torch.testing.assert_close(outputs.audio_segment_logits.mean(dim=1), outputs.audio_logits)
    torch.testing.assert_close(outputs.visual_segment_logits.mean(dim=1), outputs.visual_logits)
    # the release's computation on the same weights: the classifier after the temporal mean
    torch.testing.assert_close(base.audio_segment_embeds.mean(dim=1), base.audio_embeds)
    fused = torch.cat([base.audio_embeds, base.visual_embeds], dim=-1)
    release = F.linear(fused, model.classifier.weight, model.classifier.bias)
    torch.testing.assert_close(outputs.logits, release)
    # the segments really differ, so the timeline carries information beyond the mean
    assert (outputs.segment_logits - outputs.logits[:, None]).abs().max() > 1e-4


# --------------------------------------------------------------------------------------------------- time spans


@pytest.mark.parametrize("name", ["cfr", "vfr"])
def test_time_spans_are_those_of_the_sampled_frames(processor, media, backend, name):
    starts, durations = frame_times(media[name])
    if name == "vfr":
        assert len(set(round(duration, 6) for duration in durations)) > 2  # really variable
    indices = sample_segment_frame_indices(len(starts), S, T)  # eval: the centre window of each segment
    expected = torch.tensor(
        [[starts[window[0]], starts[window[-1]] + durations[window[-1]]] for window in indices.tolist()],
        dtype=torch.float64,
    )
    inputs = processor(videos=str(media[name]), return_time_spans=True)
    spans = inputs["segment_time_spans"]
    assert spans.shape == (1, S, 2) and spans.dtype == torch.float64
    torch.testing.assert_close(spans[0], expected, rtol=0, atol=1e-4)


def test_time_spans_leave_the_model_inputs_unchanged_and_stay_inside_a_looped_clip(processor, media):
    paths = [str(media["cfr"]), str(media["short"])]
    plain = processor(videos=paths)
    with_spans = processor(videos=paths, return_time_spans=True)
    assert set(with_spans) - set(plain) == {"segment_time_spans"}
    for key in plain:
        torch.testing.assert_close(with_spans[key], plain[key], rtol=0, atol=0)
    short = with_spans["segment_time_spans"][1]  # 10 frames at 10 fps, loop-padded to 16 positions
    assert (short[:, 0] < short[:, 1]).all() and short.min() >= 0 and short.max() <= 1.0 + 1e-6


# --------------------------------------------------------------------------------------------------- timeline


def test_segment_timeline_is_in_time_order_and_matches_the_logits():
    generator = torch.Generator().manual_seed(1)
    audio, visual = torch.randn(S, 3, generator=generator), torch.randn(S, 3, generator=generator)
    spans = torch.tensor([[2.0, 3.0], [0.0, 1.0], [3.0, 4.0], [1.0, 2.0]], dtype=torch.float64)
    id2label = {0: "a", 1: "b", 2: "c"}
    entries = segment_timeline(audio + visual, audio, visual, spans, id2label)
    assert [entry["start"] for entry in entries] == [0.0, 1.0, 2.0, 3.0]
    for entry, segment in zip(entries, [1, 3, 0, 2]):
        probabilities = F.softmax(audio[segment] + visual[segment], dim=-1)
        top = int(probabilities.argmax())
        assert entry["label"] == id2label[top] and entry["score"] == pytest.approx(float(probabilities[top]), abs=1e-4)
        assert sum(entry["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        centred = (audio[segment] - audio[segment].mean() + visual[segment] - visual[segment].mean())[top]
        assert entry["audio"] + entry["visual"] == pytest.approx(float(centred), abs=1e-3)
        assert 0.0 <= entry["audio_share"] <= 1.0
        support = max(entry["audio"], 0) + max(entry["visual"], 0)
        assert entry["audio_share"] == pytest.approx(max(entry["audio"], 0) / support, abs=1e-3)


def test_predict_writes_the_timeline_and_one_plot_per_video(media, tmp_path):
    model = save_tiny_model(tmp_path / "model")
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    plots = tmp_path / "plots"
    command = [sys.executable, str(REPO / "examples" / "predict.py"), str(model), str(media["cfr"]), str(media["vfr"]),
               str(broken), "--timeline", "--plot", str(plots), "--top_k", "2"]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]  # a file could not be read; every line is still written
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["path"] for line in lines] == [str(media["cfr"]), str(media["vfr"]), str(broken)]
    config = json.loads((model / "config.json").read_text())
    for line in lines[:2]:
        timeline = line["timeline"]
        assert len(timeline) == S
        assert [entry["start"] for entry in timeline] == sorted(entry["start"] for entry in timeline)
        for entry in timeline:
            assert 0 <= entry["start"] < entry["end"] <= 2.6
            assert entry["label"] in config["id2label"].values()
            assert entry["score"] == max(entry["probabilities"].values())
            assert 0.0 <= entry["audio_share"] <= 1.0
    assert "error" in lines[2] and "timeline" not in lines[2]
    pngs = sorted(plots.glob("*.png"))
    assert [path.name for path in pngs] == ["0000_cfr.png", "0001_vfr.png"]
    for path in pngs:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width >= 600 and image.height >= 400
            assert len(image.convert("RGB").getcolors(1 << 16) or []) > 20  # lines and bars were drawn
