"""examples/convert_original_checkpoint.py on a state dict with the authors' release names built here, and the
release-compatible MFCC audio layout of the feature extractor."""

import importlib.util
import math
import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification
from processing import AVCANetFeatureExtractor, AVCANetProcessor
from tiny import TINY

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("convert_original_checkpoint", REPO / "examples" / "convert_original_checkpoint.py")
converter = importlib.util.module_from_spec(spec)
spec.loader.exec_module(converter)

# the release's names for ours (the table of release-parity.md, written the other way round)
LAYER = [("attention.q_proj.", "self_attn.linears.0."), ("attention.k_proj.", "self_attn.linears.1."),
         ("attention.v_proj.", "self_attn.linears.2."), ("attention.o_proj.", "self_attn.linears.3."),
         ("attention_norm.", "sublayer.0.norm."), ("feed_forward_norm.", "sublayer.1.norm."),
         ("feed_forward.0.", "feed_forward.w_1."), ("feed_forward.3.", "feed_forward.w_2.")]
BLOCKS = {"visual_self_attention": "vsablock", "audio_self_attention": "asablock", "cross_modal_attention": "cmablock"}
GATES = {"visual_self_gate": "lv1", "visual_cross_gate": "lv2", "audio_self_gate": "la1", "audio_cross_gate": "la2"}


def layer(rest):
    return next(release + rest[len(ours):] for ours, release in LAYER if rest.startswith(ours))


def release_name(name: str) -> str:
    swin = "avcanet.visual_branch.encoder.backbone."
    if name.startswith(swin + "features."):
        index, rest = name[len(swin + "features."):].split(".", 1)
        stage = int(index) // 2
        if int(index) % 2:
            return f"VideoSwinT.layers.{stage}.downsample.{rest}"
        block, rest = rest.split(".", 1)
        rest = rest.replace("mlp.0.", "mlp.fc1.").replace("mlp.3.", "mlp.fc2.")
        return f"VideoSwinT.layers.{stage}.blocks.{block}.{rest}"
    if name.startswith(swin):
        return "VideoSwinT." + name[len(swin):]
    rules = [
        (r"avcanet\.visual_branch\.projection\.(.+)", lambda m: f"v_fc.{m[1]}"),
        (r"avcanet\.audio_branch\.backbone\.conv1\.weight", lambda m: "a_resnet.a_conv1.weight"),
        (r"avcanet\.audio_branch\.backbone\.(.+)", lambda m: f"a_resnet.{m[1]}"),
        (r"avcanet\.audio_branch\.projection\.(.+)", lambda m: f"a_fc.{m[1]}"),
        (r"avcanet\.fusion\.pyramid\.(\d+)\.cross_modal_block\.(\w+_attention)\.(.+)",
         lambda m: f"MMP_Module.capture.msa.{m[1]}.{BLOCKS[m[2]]}.layer.{layer(m[3])}"),
        (r"avcanet\.fusion\.pyramid\.(\d+)\.cross_modal_block\.(\w+_gate)\.(.+)",
         lambda m: f"MMP_Module.capture.msa.{m[1]}.{GATES[m[2]]}.{m[3]}"),
        (r"avcanet\.fusion\.pyramid\.(\d+)\.(visual|audio)_temporal\.(dilated|pointwise)_conv\.(.+)",
         lambda m: f"MMP_Module.capture.{m[2][0]}network.{m[1]}.conv{1 if m[3] == 'dilated' else 2}.{m[4]}"),
        (r"avcanet\.fusion\.level_weighting\.(visual|audio)_score\.(.+)",
         lambda m: f"MMP_Module.fusion.{m[1][0]}selectfusion.{m[2]}"),
        (r"avcanet\.fusion\.level_weighting\.cross_modal_attention\.(.+)",
         lambda m: f"MMP_Module.fusion.weight_interaction.{layer(m[1])}"),
        (r"avcanet\.fusion\.global_attention\.attention\.o_proj\.(.+)",
         lambda m: f"CrossAttentionFusion_Layer.attention_module.out_proj.{m[1]}"),
        (r"avcanet\.fusion\.global_attention\.(audio|visual)_output\.(.+)",
         lambda m: f"CrossAttentionFusion_Layer.linear_{m[1][0]}.{m[2]}"),
        (r"classifier\.(.+)", lambda m: f"fusion_module.fc_out.{m[1]}"),
    ]
    for pattern, build in rules:
        match = re.fullmatch(pattern, name)
        if match:
            return build(match)
    raise KeyError(name)


def release_state_dict(model) -> dict:
    """What the release's `nn.DataParallel` would save for `model`'s weights, unused tensors and aliases included."""
    ours = model.state_dict()
    release = {}
    global_attention = "avcanet.fusion.global_attention.attention."
    for name, value in ours.items():
        if name == "avcanet.missing_audio_embedding":
            continue
        if name.startswith(global_attention) and not name.startswith(global_attention + "o_proj"):
            continue
        release[release_name(name)] = value.clone()
    for suffix in ("weight", "bias"):
        release[f"CrossAttentionFusion_Layer.attention_module.in_proj_{suffix}"] = torch.cat(
            [ours[f"{global_attention}{p}.{suffix}"] for p in ("q_proj", "k_proj", "v_proj")]
        )
    for key in [k for k in release if re.match(r"MMP_Module\.capture\.[va]network\.\d+\.conv[12]\.", k)]:
        release[key.replace(".conv1.", ".net.0.").replace(".conv2.", ".net.2.")] = release[key]
    release["fc.weight"], release["fc.bias"] = torch.randn(6, 24), torch.randn(6)
    release["a_resnet.fc.weight"] = torch.randn(1000, 512)
    release["MMP_Module.capture.multiheadattn.linears.0.weight"] = torch.randn(32, 32)
    release["MMP_Module.fusion.feedforward_weight.w_1.weight"] = torch.randn(1, 1)
    release["MMP_Module.capture.msa.0.vsablock.layer.self_attn.layer_norm.weight"] = torch.ones(32)
    return {"module." + key: value for key, value in release.items()}


def tiny_release_config():
    return AVCANetConfig(**{**TINY, "num_mel_bins": 32, "audio_frames_per_segment": 8})


@pytest.fixture(scope="module")
def model_and_release():
    torch.manual_seed(0)
    model = AVCANetForVideoClassification(tiny_release_config()).eval()
    with torch.no_grad():
        model.avcanet.missing_audio_embedding.zero_()
    return model, release_state_dict(model)


def test_release_state_dict_converts_to_the_same_model(model_and_release, capsys):
    model, release = model_and_release
    converted, processor, report = converter.convert(release, config=tiny_release_config())
    converted_state = converted.state_dict()
    for name, value in model.state_dict().items():
        if name != "avcanet.missing_audio_embedding":
            torch.testing.assert_close(converted_state[name], value, rtol=0, atol=0, msg=name)
    assert report.fresh == ["avcanet.missing_audio_embedding"]
    assert len(report.unused) == 6 and "module." not in report.unused[0]
    assert len(report.aliases) == 2 * 2 * TINY["num_pyramid_levels"] * 2  # conv1/conv2, weight/bias, 2 streams
    assert ("CrossAttentionFusion_Layer.attention_module.in_proj_weight",
            "avcanet.fusion.global_attention.attention.k_proj.weight") in report.mapped
    inputs = {"pixel_values_videos": torch.randn(2, 16, 3, 32, 32), "input_features": torch.randn(2, 32, 32)}
    with torch.no_grad():
        torch.testing.assert_close(converted(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)
    assert processor.feature_extractor.audio_features == "mfcc"
    text = str(report)
    assert "fusion_module.fc_out.weight -> classifier.weight" in text and "a_resnet.fc.weight" in text


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r.update({"module.MMP_Module.capture.msa.0.extra.weight": torch.zeros(1)}), "Cannot place 1"),
        (lambda r: r.update({"module.v_fc.weight": torch.zeros(3, 3)}), "wrong shape"),
        (lambda r: r.pop("module.fusion_module.fc_out.bias"), "lacks 1 tensors"),
        (lambda r: r.update({"module.MMP_Module.capture.vnetwork.0.net.0.weight": torch.zeros(1)}), "alias"),
    ],
    ids=["unknown-tensor", "wrong-shape", "missing-tensor", "differing-alias"],
)
def test_a_checkpoint_that_cannot_be_placed_is_refused(model_and_release, change, message):
    release = dict(model_and_release[1])
    change(release)
    with pytest.raises(ValueError, match=message):
        converter.convert(release, config=tiny_release_config())


def test_command_line_writes_a_loadable_folder_with_the_release_audio_layout(model_and_release, tmp_path, capsys):
    """The default (release) geometry end to end: file in, save_pretrained folder out."""
    model = AVCANetForVideoClassification(AVCANetConfig(num_mel_bins=32, audio_frames_per_segment=256)).eval()
    checkpoint = tmp_path / "release.pth"
    torch.save({"state_dict": release_state_dict(model)}, checkpoint)
    converter.main([str(checkpoint), str(tmp_path / "out")])
    assert "mapped" in capsys.readouterr().out
    reloaded = AVCANetForVideoClassification.from_pretrained(tmp_path / "out")
    assert (reloaded.config.num_mel_bins, reloaded.config.audio_frames_per_segment) == (32, 256)
    processor = AVCANetProcessor.from_pretrained(tmp_path / "out")
    extractor = processor.feature_extractor
    assert (extractor.audio_features, extractor.sampling_rate, extractor.feature_size) == ("mfcc", 44100, 32)
    torch.testing.assert_close(
        reloaded.classifier.weight, model.classifier.weight, rtol=0, atol=0
    )


def test_release_mfcc_layout_is_the_whole_track_tiled_and_cut():
    extractor = AVCANetFeatureExtractor.release_compatible()
    assert extractor.num_segments * extractor.audio_frames_per_segment == 4096
    # 3 s of a 440 Hz tone at 22.05 kHz: resampled to 44.1 kHz, 1 + 3 * 44100 // 512 = 259 frames, tiled
    seconds = torch.arange(3 * 22050) / 22050
    tone = torch.sin(2 * math.pi * 440 * seconds)
    features = extractor([tone], sampling_rate=22050)
    mfcc = features["input_features"][0]
    assert mfcc.shape == (32, 4096) and features["audio_mask"].tolist() == [1]
    frames = 1 + 3 * 44100 // 512
    torch.testing.assert_close(mfcc[:, frames : 2 * frames], mfcc[:, :frames], rtol=0, atol=0)
    assert not torch.allclose(mfcc[:, 0], mfcc[:, frames // 2])  # centred frames: the first one is half padding
    # top_db 80 then DCT: the 0th coefficient of a loud tone is far above that of silence
    silence = extractor([None])["input_features"][0]
    assert silence.shape == (32, 4096) and mfcc[0, frames // 2] > silence[0, 0] + 100
    with pytest.raises(ValueError, match="audio_features"):
        AVCANetFeatureExtractor(audio_features="mel")


def test_release_mfcc_matches_the_librosa_formula():
    """torchaudio's MFCC against the formula of librosa's defaults written out with numpy-free torch ops: centred
    zero-padded periodic-Hann STFT, power, Slaney mel filters (torchaudio's, the same as librosa's), 10 log10 with
    amin 1e-10 and top_db 80 over the whole clip, DCT-II orthonormal."""
    import torchaudio

    extractor = AVCANetFeatureExtractor.release_compatible()
    generator = torch.Generator().manual_seed(0)
    waveform = torch.randn(44100, generator=generator) * torch.linspace(0, 1, 44100) ** 4  # quiet start: top_db acts
    stft = torch.stft(
        torch.nn.functional.pad(waveform, (1024, 1024)), 2048, 512, window=torch.hann_window(2048), center=False,
        return_complex=True,
    )
    power = stft.abs() ** 2  # (1025, T)
    filters = torchaudio.functional.melscale_fbanks(1025, 0.0, 22050.0, 128, 44100, norm="slaney", mel_scale="slaney")
    db = 10 * torch.log10(torch.clamp(filters.T @ power, min=1e-10))
    db = torch.maximum(db, db.max() - 80)
    n = torch.arange(128, dtype=torch.float64)
    k = torch.arange(32, dtype=torch.float64)[:, None]
    dct = torch.cos(math.pi / 128 * (n + 0.5) * k) * math.sqrt(2 / 128)
    dct[0] /= math.sqrt(2)
    expected = (dct.float() @ db)
    assert db.min() == db.max() - 80  # the clamp is exercised
    frames = expected.shape[1]
    torch.testing.assert_close(extractor.release_mfcc(waveform)[:, :frames], expected, rtol=1e-4, atol=2e-3)


def test_processor_reads_a_file_in_the_release_layout(tmp_path):
    from media import make_video

    video = make_video(tmp_path / "clip.mp4", num_frames=48, fps=24, tone_start_s=0.5)  # 2 s, a tone from 0.5 s
    silent = make_video(tmp_path / "silent.mp4", num_frames=24, fps=24, with_audio=False)
    config = tiny_release_config()
    processor = AVCANetProcessor.from_model_config(config)
    processor = AVCANetProcessor(processor.video_processor, AVCANetFeatureExtractor.release_compatible(num_segments=4))
    inputs = processor(videos=[str(video), str(silent)])
    assert inputs["input_features"].shape == (2, 32, 4096 // 16 * 4) and inputs["audio_mask"].tolist() == [1, 0]
    # the file's whole track, as if given as a waveform: one layout whichever way the audio comes in
    with av.open(str(video)) as container:
        waveform = torch.from_numpy(np.concatenate([frame.to_ndarray() for frame in container.decode(audio=0)], axis=1))
        rate = container.streams.audio[0].rate
    direct = processor.feature_extractor([waveform[:, : 2 * rate]], sampling_rate=rate)["input_features"][0]
    frames = 1 + 2 * 44100 // 512
    torch.testing.assert_close(inputs["input_features"][0][:, :frames], direct[:, :frames], rtol=1e-3, atol=0.5)
    model = AVCANetForVideoClassification(config).eval()
    with torch.no_grad():
        assert torch.isfinite(model(**inputs).logits).all()
