"""The AV-CANet processor on generated media: inputs of every kind, the sampling scheme read back from the pixels,
rotation, audio-visual alignment, bad files, save/load (also as remote code) and the model eating the output."""

import json
import os
import subprocess
import sys
import textwrap

import av
import numpy as np
import pytest
import torch
from PIL import Image

from media import (
    TONE_HZ,
    make_audio_only,
    make_video,
    read_frame_index,
    tone,
    truncate,
)
from processing import AVCANetFeatureExtractor, AVCANetProcessor, AVCANetVideoProcessor, VideoDecodingError
from processing import video_decoding
from processing.feature_extraction_avcanet import LOG_OFFSET
from processing.frame_sampling import audio_window_starts, sample_segment_frame_indices
from processing.video_processing_avcanet import AVCANetSpatialAugmentation


S, T = 16, 8  # the release's sampling: 16 segments of 8 frames

# name -> make_video arguments; files are made on first use
RECIPES = {
    "clip": dict(num_frames=96, fps=24, tone_start_s=2.0),  # 4 s, fewer than 128 frames: loop-padded
    "long": dict(num_frames=300, fps=30, tone_start_s=6.05),  # 10 s, not loop-padded
    "silent_track": dict(num_frames=48, fps=24),
    "no_audio": dict(num_frames=48, fps=24, with_audio=False),
    "vfr": dict(num_frames=150, fps=24, frame_durations=[1, 7, 3, 4, 4, 2]),
    "faststart": dict(num_frames=300, fps=30, faststart=True),
    "tiny": dict(num_frames=20, width=16, height=16),
    "odd": dict(num_frames=20, width=63, height=37, pix_fmt="yuv444p"),
    "yuv444": dict(num_frames=20, pix_fmt="yuv444p"),
    "10bit": dict(num_frames=20, pix_fmt="yuv420p10le"),
    "4k": dict(num_frames=4, width=3840, height=2160, with_audio=False),
    "three_frames": dict(num_frames=3, fps=24),
    "rotated_90": dict(num_frames=24, width=48, height=64, display_rotation=90),
    "rotated_-90": dict(num_frames=24, width=48, height=64, display_rotation=-90),
    "rotated_180": dict(num_frames=24, width=48, height=64, display_rotation=180),
}


class Media:
    def __init__(self, root):
        self.root = root

    def __getitem__(self, name):
        path = self.root / f"{name}.mp4"
        if not path.exists():
            make_video(path, **RECIPES[name])
        return path


@pytest.fixture(scope="session")
def media(tmp_path_factory):
    return Media(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="module")
def processor():
    return AVCANetProcessor()


@pytest.fixture(params=["torchcodec", "pyav"])
def backend(request, monkeypatch):
    """Run a test with each decoder: torchcodec (the default when it loads) and the PyAV fallback."""
    if request.param == "pyav":
        monkeypatch.setattr(video_decoding, "TORCHCODEC_AVAILABLE", False)
    elif not video_decoding.TORCHCODEC_AVAILABLE:
        pytest.skip("torchcodec cannot load here")
    return request.param


def small_processor(**video_kwargs) -> AVCANetProcessor:
    """4 segments of 4 frames at 32 px, 16 mel bins x 8 frames: the sizes of the tiny model config."""
    return AVCANetProcessor(
        AVCANetVideoProcessor(
            num_segments=4,
            frames_per_segment=4,
            size={"shortest_edge": 32},
            crop_size={"height": 32, "width": 32},
            **video_kwargs,
        ),
        AVCANetFeatureExtractor(num_segments=4, feature_size=16, audio_frames_per_segment=8),
    )


def frame_indices(pixel_values: torch.Tensor) -> list[int]:
    """Frame numbers burned into each output frame `(N, C, H, W)`."""
    return [read_frame_index(frame.numpy()) for frame in pixel_values]


def tone_energy(features: torch.Tensor, sampling_rate: int = 16000, n_fft: int = 400) -> torch.Tensor:
    """Log-mel energy near TONE_HZ per spectrogram frame, from `(n_mels, frames)` features of the default extractor."""
    import torchaudio

    filters = torchaudio.functional.melscale_fbanks(
        n_fft // 2 + 1, 0.0, sampling_rate / 2, features.shape[0], sampling_rate, norm="slaney", mel_scale="slaney"
    )
    tone_bin = int(filters[round(TONE_HZ * n_fft / sampling_rate)].argmax())
    return features[tone_bin]


def assert_model_inputs(inputs, batch, frames=S * T, size=112, mel=128, audio_frames=S * 64):
    assert inputs["pixel_values_videos"].shape == (batch, frames, 3, size, size)
    assert inputs["pixel_values_videos"].dtype == torch.float32
    assert inputs["input_features"].shape == (batch, mel, audio_frames)
    assert inputs["input_features"].dtype == torch.float32
    assert inputs["audio_mask"].shape == (batch,) and inputs["audio_mask"].dtype == torch.long
    assert torch.isfinite(inputs["pixel_values_videos"]).all() and torch.isfinite(inputs["input_features"]).all()


# ---------------------------------------------------------------------------------------------------- input kinds


def test_every_input_kind_gives_the_same_model_inputs(processor, media):
    if not video_decoding.TORCHCODEC_AVAILABLE:
        pytest.skip("torchcodec cannot load here")
    path = media["clip"]
    reference = processor(videos=str(path))
    assert_model_inputs(reference, batch=1)
    assert reference["audio_mask"].tolist() == [1]

    from datasets import Video
    from torchcodec.decoders import VideoDecoder

    kinds = {
        "Path": path,
        "bytes": path.read_bytes(),
        "file object": open(path, "rb"),
        "datasets Video": Video().decode_example({"path": str(path), "bytes": None}),
    }
    for kind, video in kinds.items():
        inputs = processor(videos=video)
        for key in reference:
            assert torch.equal(inputs[key], reference[key]), f"{kind}: {key} differs"
    kinds["file object"].close()

    # a bare torchcodec decoder carries no audio: a warning, and the clip counts as silent
    with pytest.warns(UserWarning, match="no audio"):
        inputs = processor(videos=VideoDecoder(str(path)))
    assert torch.equal(inputs["pixel_values_videos"], reference["pixel_values_videos"])
    assert inputs["audio_mask"].tolist() == [0]


def test_decoded_frames_of_every_kind(processor, media):
    with av.open(str(media["clip"])) as container:
        frames = torch.from_numpy(np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]))
    assert frames.shape == (96, 48, 64, 3)  # (T, H, W, C)
    reference = processor(videos=str(media["clip"]))["pixel_values_videos"]
    kinds = {
        "numpy (T, H, W, C)": frames.numpy(),
        "tensor (T, H, W, C)": frames,
        "tensor (T, C, H, W)": frames.permute(0, 3, 1, 2),
        "list of PIL images": [Image.fromarray(frame) for frame in frames.numpy()],
    }
    for kind, video in kinds.items():
        inputs = processor(videos=video)
        assert_model_inputs(inputs, batch=1)
        assert inputs["audio_mask"].tolist() == [0], kind
        assert torch.equal(inputs["pixel_values_videos"], reference), kind


def test_a_batch_mixes_kinds_and_sizes(processor, media):
    inputs = processor(videos=[str(media["clip"]), np.zeros((5, 30, 40, 3), np.uint8), media["no_audio"].read_bytes()])
    assert_model_inputs(inputs, batch=3)
    assert inputs["audio_mask"].tolist() == [1, 0, 0]


def test_float_frames_are_refused(processor):
    with pytest.raises(VideoDecodingError, match="uint8"):
        processor(videos=np.zeros((4, 8, 8, 3), np.float32))


# ---------------------------------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("name, num_frames", [("clip", 96), ("long", 300)])
def test_eval_frames_are_the_centre_windows(processor, media, backend, name, num_frames):
    pixel_values = processor(videos=media[name])["pixel_values_videos"][0]
    expected = sample_segment_frame_indices(num_frames, S, T, training=False).flatten().tolist()
    assert frame_indices(pixel_values) == expected


def test_eval_is_deterministic_training_is_random(processor, media):
    path = media["long"]
    first, second = processor(videos=path), processor(videos=path)
    assert torch.equal(first["pixel_values_videos"], second["pixel_values_videos"])
    assert torch.equal(first["input_features"], second["input_features"])

    def seeded(seed):
        return processor(videos=path, training=True, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(seeded(1)["pixel_values_videos"], seeded(1)["pixel_values_videos"])
    assert not torch.equal(seeded(1)["pixel_values_videos"], seeded(2)["pixel_values_videos"])
    unseeded = [processor(videos=path, training=True)["pixel_values_videos"] for _ in range(2)]
    assert not torch.equal(unseeded[0], unseeded[1])


def test_training_frames_follow_the_scheme(processor, media):
    """The frames picked in training are the scheme's random windows for the same generator state."""
    checked = 0
    for seed in range(20):
        generator = torch.Generator().manual_seed(seed)
        expected = sample_segment_frame_indices(300, S, T, training=True, generator=generator).flatten().tolist()
        if AVCANetSpatialAugmentation.draw(generator).operation == "rotate":  # tilted bands cannot be read back
            continue
        inputs = processor(videos=media["long"], training=True, generator=torch.Generator().manual_seed(seed))
        assert frame_indices(inputs["pixel_values_videos"][0]) == expected
        checked += 1
        if checked == 3:
            break
    assert checked == 3


def test_variable_frame_rate_file_gives_the_exact_frames(processor, media, backend):
    expected = sample_segment_frame_indices(150, S, T, training=False).flatten().tolist()
    assert frame_indices(processor(videos=media["vfr"])["pixel_values_videos"][0]) == expected


def test_only_the_sampled_frames_are_decoded(processor, media, backend, monkeypatch):
    requested = []
    reader_class = video_decoding.TorchcodecVideoReader if backend == "torchcodec" else video_decoding.PyAVVideoReader
    original = reader_class.get_frames

    def counting(self, indices):
        requested.append(len(indices))
        return original(self, indices)

    monkeypatch.setattr(reader_class, "get_frames", counting)
    processor(videos=media["long"])
    assert requested == [T] * S  # one window of 8 frames per segment, nothing else


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_rotated_phone_video_comes_out_upright(media, backend, rotation):
    """Stored sideways with display-matrix rotation: frames come out 48 wide x 64 high, bands horizontal, marker on
    top (`read_frame_index` fails on a sideways or upside-down frame)."""
    video_processor = AVCANetVideoProcessor(do_resize=False, do_center_crop=False)
    pixel_values = video_processor(media[f"rotated_{rotation}"])["pixel_values_videos"][0]
    assert pixel_values.shape[-2:] == (64, 48)
    assert frame_indices(pixel_values) == sample_segment_frame_indices(24, S, T).flatten().tolist()


def test_training_crop_and_augmentation_are_drawn_once_per_video():
    """A video of one repeated noise image: every output frame must be the same (one crop, one augmentation),
    while different draws give different crops."""
    image = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    video = np.repeat(image[None], 40, axis=0)
    video_processor = AVCANetVideoProcessor()
    outputs = []
    for seed in range(8):
        generator = torch.Generator().manual_seed(seed)
        frames = video_processor(video, training=True, generator=generator)["pixel_values_videos"][0]
        assert frames.shape == (S * T, 3, 112, 112)
        assert torch.equal(frames, frames[:1].expand_as(frames)), seed
        outputs.append(frames[0])
    assert len({tuple(frame.flatten()[::97].tolist()) for frame in outputs}) >= 4


# ---------------------------------------------------------------------------------------------------- audio


def test_audio_segments_show_the_same_moment_as_the_frames(processor, media, backend):
    """A tone starts at 6.05 s of a 30 fps clip. For each segment the time its frames show is read from the pixels;
    the tone must be silent in audio segments whose window ends before 6.05 s, loud in those starting after, and
    start at the right spectrogram frame in the segment that straddles it. Eval and training windows alike."""
    tone_start, window = 6.05, processor.feature_extractor.window_duration
    for training, seed in [(False, 0), (True, 1), (True, 2)]:
        inputs = processor(videos=media["long"], training=training, generator=torch.Generator().manual_seed(seed))
        energy = tone_energy(inputs["input_features"][0]).view(S, 64)
        shown = torch.tensor(frame_indices(inputs["pixel_values_videos"][0]), dtype=torch.float64).view(S, T)
        centers = (shown[:, 0] + shown[:, -1] + 1) / 2 / 30  # seconds
        starts = audio_window_starts(centers, window, clip_duration=10.0)
        for segment in range(S):
            start = float(starts[segment])
            loud = energy[segment] > -2
            if start + window < tone_start - 0.03:
                assert not loud.any(), (training, segment)
            elif start > tone_start + 0.03:
                assert loud.all(), (training, segment)
            elif start + 0.05 < tone_start < start + window - 0.05:
                # spectrogram frame j covers [start + j / 100, start + j / 100 + 0.025)
                onset = int(loud.float().argmax())
                assert abs(onset - (tone_start - start) * 100) <= 3, (training, segment, onset)


def test_short_clip_audio_loops_with_its_frames(processor, media):
    """96 frames loop-pad to 128: a segment whose frames are all past the tone start (2 s = frame 48) on any loop
    has a loud audio segment, one whose frames are all before it a silent one."""
    inputs = processor(videos=media["clip"])
    energy = tone_energy(inputs["input_features"][0]).view(S, 64)
    shown = torch.tensor(frame_indices(inputs["pixel_values_videos"][0])).view(S, T)
    decided = 0
    for segment in range(S):
        frames = shown[segment]
        if frames.diff().eq(1).all() and frames.min() >= 48 + 8:
            assert energy[segment].mean() > -2, segment
            decided += 1
        elif frames.diff().eq(1).all() and frames.max() < 48 - 8:
            assert energy[segment].mean() < -8, segment
            decided += 1
    assert decided >= 6


def test_no_audio_track_gives_silence_and_mask_zero(processor, media, backend):
    inputs = processor(videos=media["no_audio"])
    assert inputs["audio_mask"].tolist() == [0]
    silence = torch.full_like(inputs["input_features"], float(np.log(LOG_OFFSET)))
    assert torch.allclose(inputs["input_features"], silence)
    silent = processor(videos=media["silent_track"])  # a track of digital silence: same features, but mask 1
    assert silent["audio_mask"].tolist() == [1]
    assert silent["input_features"].max() < -10


def test_torchcodec_and_pyav_give_the_same_inputs(processor, media, monkeypatch):
    reference = processor(videos=media["clip"])
    monkeypatch.setattr(video_decoding, "TORCHCODEC_AVAILABLE", False)
    fallback = processor(videos=media["clip"])
    assert torch.equal(fallback["pixel_values_videos"], reference["pixel_values_videos"])
    assert torch.allclose(fallback["input_features"].exp(), reference["input_features"].exp(), atol=0.05, rtol=0.1)


@pytest.mark.parametrize("width", [72, 70, 66, 64])
def test_pyav_converts_4_2_0_frames_of_any_width_like_torchcodec(width, tmp_path):
    """FFmpeg 8.1 converts 4:2:0 to planar RGB wrongly at the end of rows 2-8 pixels longer than a multiple of 16 (72,
    70, 66 here); the PyAV reader must give torchcodec's pixels whatever the width (colour noise shows any error)."""
    path = str(make_video(tmp_path / "noise.mp4", num_frames=6, width=width, height=48, burn_frame_index=False))
    with video_decoding.PyAVVideoReader(path, "a") as fallback, video_decoding.TorchcodecVideoReader(path, "b") as ref:
        assert torch.equal(fallback.get_frames([0, 3, 5]).frames, ref.get_frames([0, 3, 5]).frames)


def test_explicit_waveform_matches_the_files_audio(processor, media):
    """`audio=` replaces the file's track; the same signal gives the same features (up to AAC coding)."""
    waveform = tone(round(10.0 * 44100), 44100, 6.05)
    from_file = processor(videos=media["long"])
    given = processor(videos=media["long"], audio=waveform, sampling_rate=44100)
    assert torch.equal(given["pixel_values_videos"], from_file["pixel_values_videos"])
    tone_given, tone_file = tone_energy(given["input_features"][0]), tone_energy(from_file["input_features"][0])
    assert ((tone_given > -2) == (tone_file > -2)).float().mean() > 0.98
    # decoded frames + their waveform: frames are taken to span the waveform
    frames = np.stack([np.asarray(Image.new("RGB", (64, 48), (i, i, i))) for i in range(300)])
    with_frames = processor(videos=frames, audio=torch.from_numpy(waveform), sampling_rate=44100)
    assert torch.equal(with_frames["input_features"], given["input_features"])
    assert with_frames["audio_mask"].tolist() == [1]
    batch = processor(videos=[frames, frames], audio=[None, waveform], sampling_rate=44100)
    assert batch["audio_mask"].tolist() == [0, 1]


def test_feature_extractor_on_its_own():
    extractor = AVCANetFeatureExtractor()
    at_16k = tone(16000 * 4, 16000, 1.0)
    at_48k = tone(48000 * 4, 48000, 1.0)
    stereo = np.stack([at_48k, at_48k])
    features = extractor([at_16k, at_48k, stereo, None], sampling_rate=None)
    assert features["input_features"].shape == (4, 128, 16 * 64)
    assert features["audio_mask"].tolist() == [1, 1, 1, 0]
    extractor_48k = extractor([at_48k, stereo], sampling_rate=48000)["input_features"]
    assert torch.allclose(extractor_48k[0], extractor_48k[1])
    resampled_energy = tone_energy(extractor_48k[0])
    assert ((resampled_energy > -2) == (tone_energy(features["input_features"][0]) > -2)).float().mean() > 0.98


# ---------------------------------------------------------------------------------------------------- bad input


def test_bad_files_raise_one_clear_error(processor, media, backend, tmp_path):
    cases = {
        "missing.mp4": ("file not found", None),
        "empty.mp4": ("empty", b""),
        # fixed bytes: some random draws probe as a subtitle stream, which is the "no video stream" case
        "garbage.mp4": ("FFmpeg cannot open it", np.random.default_rng(0).bytes(4096)),
        "audio_only.mp4": ("no video stream", "audio_only"),
        "cut_off_index_at_end.mp4": ("FFmpeg cannot open it", "cut"),
    }
    for name, (cause, content) in cases.items():
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif content == "audio_only":
            make_audio_only(path)
        elif content == "cut":
            truncate(media["long"], 0.5, path)
        with pytest.raises(VideoDecodingError, match=cause) as caught:
            processor(videos=[str(media["clip"]), path])
        assert isinstance(caught.value, ValueError)
        assert str(path) in str(caught.value), str(caught.value)

    with pytest.raises(VideoDecodingError, match="4096 bytes"):
        processor(videos=os.urandom(4096))


def test_cut_off_file_with_index_at_front_decodes_what_it_can(processor, media, backend, tmp_path):
    path = truncate(media["faststart"], 0.6, tmp_path / "cut_off.mp4")
    decodable = 0
    with av.open(str(path)) as container:  # ground truth: decode from the start until the damage
        try:
            for _ in container.decode(video=0):
                decodable += 1
        except av.error.FFmpegError:
            pass
    assert 0 < decodable < 300
    with pytest.warns(UserWarning, match="cut_off.mp4"):
        inputs = processor(videos=path)
    assert_model_inputs(inputs, batch=1)
    expected = sample_segment_frame_indices(decodable, S, T).flatten().tolist()
    assert frame_indices(inputs["pixel_values_videos"][0]) == expected


@pytest.mark.parametrize("name", ["tiny", "odd", "yuv444", "10bit", "three_frames", "4k"])
def test_unusual_files_work(media, name):
    processor = small_processor()
    inputs = processor(videos=media[name])
    assert_model_inputs(inputs, batch=1, frames=16, size=32, mel=16, audio_frames=32)
    if name in ("yuv444", "10bit", "three_frames"):
        expected = sample_segment_frame_indices(RECIPES[name]["num_frames"], 4, 4).flatten().tolist()
        frames = AVCANetVideoProcessor(num_segments=4, frames_per_segment=4)(media[name])["pixel_values_videos"][0]
        assert frame_indices(frames) == expected


# ---------------------------------------------------------------------------------------------------- save / load


def test_save_and_load(tmp_path):
    processor = small_processor(image_mean=[0.45, 0.45, 0.45], image_std=[0.225, 0.225, 0.225])
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["auto_map"]["AutoProcessor"] == "processing_avcanet.AVCANetProcessor"
    assert {"processing_avcanet.py", "video_processing_avcanet.py", "feature_extraction_avcanet.py",
            "frame_sampling.py", "video_decoding.py", "errors.py"} <= set(os.listdir(tmp_path))

    loaded = AVCANetProcessor.from_pretrained(tmp_path)
    without_auto_map = lambda config: {key: value for key, value in config.items() if key != "auto_map"}  # noqa: E731
    assert without_auto_map(loaded.to_dict()) == without_auto_map(processor.to_dict())
    frames = np.random.default_rng(0).integers(0, 256, (20, 40, 50, 3), dtype=np.uint8)
    assert torch.equal(loaded(videos=frames)["pixel_values_videos"], processor(videos=frames)["pixel_values_videos"])

    from transformers import AutoFeatureExtractor, AutoProcessor, AutoVideoProcessor

    auto = AutoProcessor.from_pretrained(tmp_path, trust_remote_code=True)
    assert type(auto).__name__ == "AVCANetProcessor" and auto.video_processor.num_segments == 4
    assert AutoVideoProcessor.from_pretrained(tmp_path, trust_remote_code=True).crop_size.height == 32
    assert AutoFeatureExtractor.from_pretrained(tmp_path, trust_remote_code=True).feature_size == 16


def test_remote_code_load_in_a_process_that_never_imports_the_package(tmp_path, media):
    processor = small_processor()
    saved = tmp_path / "checkpoint"
    processor.save_pretrained(saved)
    expected = processor(videos=media["clip"])
    script = textwrap.dedent(
        f"""
        import sys
        sys.path = [entry for entry in sys.path if entry not in ("", {os.getcwd()!r})]
        import numpy as np
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained({str(saved)!r}, trust_remote_code=True)
        assert type(processor).__module__.startswith("transformers_modules."), type(processor).__module__
        assert "processing" not in sys.modules and "modeling_avcanet" not in sys.modules
        inputs = processor(videos={str(media["clip"])!r})
        np.savez({str(tmp_path / "out.npz")!r}, **{{key: value.numpy() for key, value in inputs.items()}})
        """
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_MODULES_CACHE=str(tmp_path / "hf_modules"), HF_HUB_OFFLINE="1")
    command = [sys.executable, "-c", script]
    result = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = np.load(tmp_path / "out.npz")
    for key, value in expected.items():
        np.testing.assert_array_equal(loaded[key], value.numpy())


def test_sizes_must_agree():
    with pytest.raises(ValueError, match="segments"):
        AVCANetProcessor(AVCANetVideoProcessor(num_segments=4), AVCANetFeatureExtractor(num_segments=16))


# ---------------------------------------------------------------------------------------------------- the model


def test_processor_output_feeds_the_model(media):
    from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification

    config = AVCANetConfig(
        num_segments=4, frames_per_segment=4, image_size=32, swin_embed_dim=12, swin_depths=[1, 1],
        swin_num_heads=[1, 2], swin_window_size=[2, 4, 4], num_mel_bins=16, audio_frames_per_segment=8,
        audio_resnet_layers=[1, 1, 1, 1], hidden_size=32, num_attention_heads=4, intermediate_size=32,
        num_pyramid_levels=2, global_num_attention_heads=4,
    )  # fmt: skip
    model = AVCANetForVideoClassification(config)
    processor = AVCANetProcessor.from_model_config(config)
    inputs = processor(videos=[media["clip"], media["no_audio"]], training=True)
    assert inputs["audio_mask"].tolist() == [1, 0]
    outputs = model(**inputs, labels=torch.tensor([0, 3]))
    assert outputs.logits.shape == (2, config.num_labels)
    outputs.loss.backward()
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(**processor(videos=media["long"])).logits).all()


def _with_pcm_audio(tmp_path, samples: np.ndarray, codec: str, sample_format: str, rate: int = 16000):
    """A mov file: a 24-frame video with `samples` (packed `(1, n * channels)`, stereo) as its PCM audio track."""
    path = make_video(tmp_path / "video.mp4", num_frames=24, with_audio=False)
    with_audio = tmp_path / "video.mov"
    with av.open(str(path)) as source, av.open(str(with_audio), "w", format="mov") as container:
        video = container.add_stream_from_template(source.streams.video[0])
        audio = container.add_stream(codec, rate=rate, layout="stereo")
        audio.format = sample_format
        for packet in source.demux(source.streams.video[0]):
            if packet.size:
                packet.stream = video
                container.mux(packet)
        frame = av.AudioFrame.from_ndarray(samples, format=sample_format, layout="stereo")
        frame.sample_rate, frame.pts = rate, 0
        container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return with_audio


@pytest.mark.parametrize("codec, sample_format", [("pcm_s16le", "s16"), ("pcm_s32le", "s32"), ("pcm_u8", "u8")])
def test_pyav_audio_samples_convert_like_torchcodec(codec, sample_format, tmp_path, monkeypatch):
    """PyAV's reader scales packed integer samples to float as FFmpeg's resampler (and torchcodec) does."""
    rate, seconds = 16000, 1.0  # the extractor's rate: no resampling, whose grid differs between the readers
    t = np.arange(int(rate * seconds)) / rate
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 660 * t)])  # (2, n)
    bits, dtype = {"s16": (16, np.int16), "s32": (32, np.int32), "u8": (8, np.uint8)}[sample_format]
    interleaved = stereo.T.reshape(1, -1) * (2 ** (bits - 1) - 1)  # (1, n * 2): packed, left and right in turn
    packed = np.round(interleaved + (128 if sample_format == "u8" else 0)).astype(dtype)
    with_audio = _with_pcm_audio(tmp_path, packed, codec, sample_format, rate)
    starts = torch.tensor([0.1, 0.4])
    with video_decoding.TorchcodecVideoReader(str(with_audio), "reference") as reader:
        expected = reader.read_audio_windows(starts, 3000, 16000)
    monkeypatch.setattr(video_decoding, "TORCHCODEC_AVAILABLE", False)
    with video_decoding.open_video(str(with_audio)) as reader:
        assert isinstance(reader, video_decoding.PyAVVideoReader)
        torch.testing.assert_close(reader.read_audio_windows(starts, 3000, 16000), expected, atol=1e-5, rtol=0)
    assert expected.abs().max() > 0.3


def test_audio_at_the_extractors_rate_is_cut_at_the_nearest_sample(tmp_path, backend):
    """A track already at the requested rate is decoded with a one-sample margin instead of the resampling margin:
    every window, even one starting between two samples, is the track's samples from the one nearest its start."""
    rate = 16000
    ramp = np.arange(rate, dtype=np.int32) * 2**14  # sample k holds k / 2**17: a window shows where it starts
    with_audio = _with_pcm_audio(tmp_path, np.repeat(ramp, 2)[None, :], "pcm_s32le", "s32", rate)
    starts = torch.tensor([0.0, 0.1, 0.25 + 0.4 / rate, 0.5 + 0.6 / rate, 0.75 - 0.5001 / rate], dtype=torch.float64)
    with video_decoding.open_video(str(with_audio)) as reader:
        windows = reader.read_audio_windows(starts, 2000, rate)
    first_samples = torch.round(starts * rate).long()
    expected = (first_samples[:, None] + torch.arange(2000)).float() / 2**17
    torch.testing.assert_close(windows, expected, atol=0, rtol=0)


@pytest.mark.parametrize("statistics", ["authors", "imagenet"])
def test_unfinished_inputs_finished_later_are_the_same_model_inputs(media, statistics):
    """`finish=False` hands over the cropped uint8 frames, the augmentation drawn for each video and the audio
    windows; `processor.finish` (wherever it runs) then gives exactly the inputs of a finishing call with the same
    random draws, for every augmentation operation, and leaves finished inputs alone."""
    kwargs = {} if statistics == "authors" else {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
    processor = small_processor(**kwargs)
    extractor = processor.feature_extractor
    videos = [media["clip"], media["no_audio"], media["long"]]
    operations_seen = set()
    for seed in range(12):
        expected = processor(videos=videos, training=True, generator=torch.Generator().manual_seed(seed))
        unfinished = processor(videos=videos, training=True, generator=torch.Generator().manual_seed(seed),
                               finish=False)  # fmt: skip
        assert unfinished["pixel_values_videos"].dtype == torch.uint8
        assert unfinished["pixel_values_videos"].shape == expected["pixel_values_videos"].shape
        assert "input_features" not in unfinished
        assert unfinished["audio_windows"].shape == (3, extractor.num_segments, extractor.window_samples)
        assert not unfinished["audio_windows"][1].any()  # no audio track: silent windows (and audio_mask 0)
        operations_seen.update(unfinished["augmentation_operations"].tolist())
        finished = processor.finish(unfinished)
        assert set(finished) == set(expected)
        for key in expected:
            assert torch.equal(finished[key], expected[key]), (seed, key)
        again = processor.finish(finished)
        assert all(again[key] is finished[key] for key in finished)  # finished once, however often it is called
    assert operations_seen == {0, 1, 2, 3}  # none, hflip, rotate and brightness were all handed over
    evaluation = processor(videos=videos, finish=False)
    assert "augmentation_operations" not in evaluation
    assert torch.equal(processor.finish(evaluation)["pixel_values_videos"], processor(videos=videos)["pixel_values_videos"])
    only_frames = processor.video_processor(videos, training=True, generator=torch.Generator().manual_seed(4),
                                            normalize=False)["pixel_values_videos"]  # fmt: skip
    assert only_frames.dtype == torch.uint8 and only_frames.shape == unfinished["pixel_values_videos"].shape


def test_release_features_are_finished_in_the_processor(media):
    """The release's MFCC layout comes from the whole track, not from windows: it is handed over as features."""
    release_features = AVCANetFeatureExtractor.release_compatible(num_segments=4)
    processor = AVCANetProcessor(small_processor().video_processor, release_features)
    expected = processor(videos=media["clip"])
    unfinished = processor(videos=media["clip"], finish=False)
    assert "audio_windows" not in unfinished and torch.equal(unfinished["input_features"], expected["input_features"])
    assert torch.equal(processor.finish(unfinished)["pixel_values_videos"], expected["pixel_values_videos"])


def _processed_in_a_worker(batch):
    (video,) = batch
    unfinished = small_processor()(videos=video, finish=False)
    pixel_values = small_processor()(videos=video)["pixel_values_videos"]
    return {"frames": unfinished["pixel_values_videos"], "windows": unfinished["audio_windows"],
            "pixel_values": pixel_values, "made_in_shared_memory": [unfinished["pixel_values_videos"].is_shared(),
            unfinished["audio_windows"].is_shared(), pixel_values.is_shared()]}  # fmt: skip


def test_a_batch_made_in_a_dataloader_worker_is_made_in_shared_memory(media):
    """In a worker the batch is made in shared memory, so handing it to the main process copies nothing."""
    loader = torch.utils.data.DataLoader([str(media["clip"])], batch_size=1, num_workers=1,
                                         collate_fn=_processed_in_a_worker)  # fmt: skip
    (from_worker,) = list(loader)
    assert from_worker["made_in_shared_memory"] == [True, True, True]
    processor = small_processor()
    in_this_process = processor(videos=str(media["clip"]), finish=False)
    assert not in_this_process["pixel_values_videos"].is_shared() and not in_this_process["audio_windows"].is_shared()
    assert torch.equal(from_worker["frames"], in_this_process["pixel_values_videos"])
    assert torch.equal(from_worker["windows"], in_this_process["audio_windows"])
    assert torch.equal(from_worker["pixel_values"], processor(videos=str(media["clip"]))["pixel_values_videos"])
