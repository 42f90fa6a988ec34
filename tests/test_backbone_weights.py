"""
Pretrained initialisation (`from_pretrained_backbones`, `examples/convert_backbones.py`), offline: every source
format is made here with random weights and tiny geometry, saved, and loaded through the real path.
"""

import importlib.util
import pathlib

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torchvision.models import ResNet34_Weights
from torchvision.models.resnet import BasicBlock, ResNet
from torchvision.models.swin_transformer import SwinTransformer
from torchvision.models.video import Swin3D_T_Weights
from torchvision.models.video.swin_transformer import SwinTransformer3d
from transformers import SwinConfig, SwinForImageClassification, VideoMAEConfig, VideoMAEForVideoClassification

from modeling_avcanet import AVCANetConfig, AVCANetForVideoClassification
from modeling_avcanet.backbone_weights import adapt_audio_stem, tile_relative_position_bias
from tiny import TINY

# Two blocks per stage (unlike the model tests' one) so that stage 1 has a shifted-window block.
TINY = {**TINY, "num_segments": 2, "swin_depths": [2, 2]}
VISUAL = "avcanet.visual_branch.encoder.backbone."
AUDIO = "avcanet.audio_branch.backbone."
REPO = pathlib.Path(__file__).resolve().parents[1]


def tiny_swin3d() -> SwinTransformer3d:
    return SwinTransformer3d(
        patch_size=[2, 4, 4], embed_dim=12, depths=[2, 2], num_heads=[1, 2], window_size=[2, 4, 4]
    )


def tiny_resnet() -> ResNet:
    return ResNet(BasicBlock, [1, 1, 1, 1])


def perturbed(module: torch.nn.Module) -> torch.nn.Module:
    """The module with every parameter and running statistic moved off its initial value (transformers' Swin
    starts its bias tables at zero and every model its norms at one and zero, which would hide a wrong mapping)."""
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
        for name, buffer in module.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                buffer.add_(0.1 * torch.rand_like(buffer))
    return module.eval()


def swin3d_features(backbone, video: torch.Tensor) -> torch.Tensor:
    """torchvision SwinTransformer3d up to its final norm: (B, C, T, H, W) -> (B, T', H', W', D)."""
    return backbone.norm(backbone.features(backbone.patch_embed(video)))


def static_video(images: torch.Tensor, num_frames: int) -> torch.Tensor:
    """(B, C, H, W) images as (B, C, T, H, W) clips whose frames are all the same image."""
    return images[:, :, None].expand(-1, -1, num_frames, -1, -1)


def original_swin_layout(torchvision_2d: SwinTransformer) -> dict:
    """
    The Microsoft Swin `.pth` layout (`{"model": state_dict}`), built from torchvision's 2-D Swin by its own
    structure rather than by the loader's tables, with the index buffers and shift masks those files hold.
    """
    state_dict = {}
    for name, tensor in torchvision_2d.state_dict().items():
        parts = name.split(".")
        if name.startswith("features.0.0."):
            name = f"patch_embed.proj.{parts[-1]}"
        elif name.startswith("features.0.2."):
            name = f"patch_embed.norm.{parts[-1]}"
        elif parts[0] == "features" and int(parts[1]) % 2 == 1:  # stage (int(parts[1]) - 1) // 2
            rest = ".".join(parts[3:]).replace("mlp.0.", "mlp.fc1.").replace("mlp.3.", "mlp.fc2.")
            name = f"layers.{(int(parts[1]) - 1) // 2}.blocks.{parts[2]}.{rest}"
        elif parts[0] == "features":  # the patch merging after stage int(parts[1]) // 2 - 1
            name = f"layers.{int(parts[1]) // 2 - 1}.downsample.{'.'.join(parts[2:])}"
        state_dict[name] = tensor
    state_dict["layers.0.blocks.1.attn_mask"] = torch.zeros(4, 16, 16)
    return {"model": state_dict}


# ----------------------------------------------------------------------------------------------------- sources


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Random tiny checkpoints in every supported format, and the modules they came from."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("sources")
    made = {"folder": folder}

    made["swin3d"] = perturbed(tiny_swin3d())
    torch.save(made["swin3d"].state_dict(), folder / "swin3d.pth")
    save_file(made["swin3d"].state_dict(), folder / "swin3d.safetensors")

    swin_config = SwinConfig(
        image_size=32, patch_size=4, embed_dim=12, depths=[2, 2], num_heads=[1, 2], window_size=4, num_labels=5
    )
    made["swin2d_transformers"] = perturbed(SwinForImageClassification(swin_config))
    made["swin2d_transformers"].save_pretrained(folder / "swin2d-transformers")

    made["swin2d_torchvision"] = perturbed(
        SwinTransformer(
            patch_size=[4, 4], embed_dim=12, depths=[2, 2], num_heads=[1, 2], window_size=[4, 4], num_classes=7
        )
    )
    torch.save(original_swin_layout(made["swin2d_torchvision"]), folder / "swin_original.pth")

    made["resnet"] = perturbed(tiny_resnet())
    save_file(made["resnet"].state_dict(), folder / "resnet.safetensors")

    videomae_config = VideoMAEConfig(
        image_size=64, patch_size=16, num_frames=8, tubelet_size=2, hidden_size=24, num_hidden_layers=1,
        num_attention_heads=2, intermediate_size=48, num_labels=3,
    )  # fmt: skip
    made["videomae"] = perturbed(VideoMAEForVideoClassification(videomae_config))
    made["videomae"].save_pretrained(folder / "videomae")
    return made


def check_partition(model, report):
    """Every model tensor is in exactly one of loaded / adapted / fresh."""
    loaded, adapted, fresh = set(report.loaded), set(report.adapted), set(report.fresh)
    assert not (loaded & adapted or loaded & fresh or adapted & fresh)
    assert loaded | adapted | fresh == set(model.state_dict())


def check_fusion_and_heads_are_fresh(report):
    fresh = set(report.fresh)
    for prefix in (
        "avcanet.visual_branch.projection.",
        "avcanet.audio_branch.projection.",
        "avcanet.fusion.",
        "classifier.",
    ):
        assert any(name.startswith(prefix) for name in fresh), prefix
        assert not any(name.startswith(prefix) for name in [*report.loaded, *report.adapted]), prefix
    assert "avcanet.missing_audio_embedding" in fresh


# ------------------------------------------------------------------------------------------- visual: torchvision


@pytest.mark.parametrize("file_name", ["swin3d.pth", "swin3d.safetensors"])
def test_torchvision_swin3d_and_resnet_files_land_unchanged_and_stem_is_adapted(sources, file_name):
    folder = sources["folder"]
    model, report = AVCANetForVideoClassification.from_pretrained_backbones(
        visual=folder / file_name, audio=folder / "resnet.safetensors", **TINY
    )
    state = model.state_dict()
    for name, tensor in sources["swin3d"].state_dict().items():
        if not name.startswith("head."):
            assert torch.equal(state[VISUAL + name], tensor), name
            assert VISUAL + name in report.loaded
    for name, tensor in sources["resnet"].state_dict().items():
        if not name.startswith(("fc.", "conv1.")):
            assert torch.equal(state[AUDIO + name], tensor), name
    assert report.formats == {"visual": "torchvision-swin3d", "audio": "torchvision-resnet"}
    assert sorted(report.unused["visual"]) == ["head.bias", "head.weight"]
    assert sorted(report.unused["audio"]) == ["fc.bias", "fc.weight"]
    assert list(report.adapted) == [AUDIO + "conv1.weight"]
    check_partition(model, report)
    check_fusion_and_heads_are_fresh(report)
    assert "conv1.weight" in str(report) and "avcanet.fusion.*" in str(report)


def test_audio_stem_keeps_the_imagenet_response_to_grey_inputs_constant_across_mel_bins(sources):
    _, report = AVCANetForVideoClassification.from_pretrained_backbones(
        audio=sources["folder"] / "resnet.safetensors", **TINY
    )
    stem = sources["resnet"].conv1.weight
    adapted = adapt_audio_stem(stem, torch.Size([64, 1, 7, 1]))
    # a (time, mel) segment that is constant over mel bins, fed to the RGB stem as a grey image
    spectrogram = torch.randn(1, 1, 20, 1).expand(1, 1, 20, 9)
    as_image = F.conv2d(spectrogram.expand(1, 3, 20, 9), stem, stride=(2, 1), padding=(3, 0))
    as_audio = F.conv2d(spectrogram, adapted, stride=(2, 1), padding=(3, 0))
    torch.testing.assert_close(as_audio[..., :3], as_image, rtol=1e-5, atol=1e-5)
    assert "summed" in report.adapted[AUDIO + "conv1.weight"]


def test_weights_enums_are_downloaded_by_torchvision_and_read_with_weights_only(sources, monkeypatch):
    calls = []

    def fake_download(state_dict):
        def get_state_dict(self, **kwargs):
            calls.append(kwargs)
            return state_dict

        return get_state_dict

    monkeypatch.setattr(Swin3D_T_Weights, "get_state_dict", fake_download(sources["swin3d"].state_dict()))
    monkeypatch.setattr(ResNet34_Weights, "get_state_dict", fake_download(sources["resnet"].state_dict()))
    _, report = AVCANetForVideoClassification.from_pretrained_backbones(
        visual=Swin3D_T_Weights.KINETICS400_V1, audio=ResNet34_Weights.IMAGENET1K_V1, **TINY
    )
    assert [call["weights_only"] for call in calls] == [True, True]
    assert report.sources == {
        "visual": "torchvision Swin3D_T_Weights.KINETICS400_V1",
        "audio": "torchvision ResNet34_Weights.IMAGENET1K_V1",
    }


def test_a_source_that_does_not_fit_the_config_fails_with_every_mismatch(tmp_path):
    wider = SwinTransformer3d(
        patch_size=[2, 4, 4], embed_dim=16, depths=[2, 2], num_heads=[1, 2], window_size=[2, 4, 4]
    )
    torch.save(wider.state_dict(), tmp_path / "wider.pth")
    with pytest.raises(ValueError, match=r"shape mismatches:\n.*patch_embed\.proj\.weight: source \(16, 3, 2, 4, 4\)"):
        AVCANetForVideoClassification.from_pretrained_backbones(visual=tmp_path / "wider.pth", **TINY)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        AVCANetForVideoClassification.from_pretrained_backbones(visual=tmp_path / "missing.pth", **TINY)


# ---------------------------------------------------------------------------------------- visual: 2-D inflation


def test_transformers_swin_is_inflated_exactly(sources):
    swin = sources["swin2d_transformers"].swin
    model, report = AVCANetForVideoClassification.from_pretrained_backbones(
        visual=sources["folder"] / "swin2d-transformers", **TINY
    )
    backbone = model.avcanet.visual_branch.encoder.backbone
    assert report.formats["visual"] == "swin2d-transformers"
    assert sorted(report.unused["visual"]) == ["classifier.bias", "classifier.weight"]
    check_partition(model, report)
    check_fusion_and_heads_are_fresh(report)
    assert any(name.startswith(AUDIO) for name in report.fresh)  # no audio source given

    # copied by name
    block_2d, block_3d = swin.encoder.layers[1].blocks[1], backbone.features[2][1]
    pairs = [
        (swin.embeddings.norm.weight, backbone.patch_embed.norm.weight),
        (block_2d.layernorm_before.weight, block_3d.norm1.weight),
        (block_2d.layernorm_after.bias, block_3d.norm2.bias),
        (block_2d.attention.o_proj.weight, block_3d.attn.proj.weight),
        (block_2d.mlp.fc1.weight, block_3d.mlp[0].weight),
        (block_2d.mlp.fc2.bias, block_3d.mlp[3].bias),
        (swin.encoder.layers[0].downsample.reduction.weight, backbone.features[1].reduction.weight),
        (swin.encoder.layers[0].downsample.norm.weight, backbone.features[1].norm.weight),
        (swin.layernorm.weight, backbone.norm.weight),
    ]
    for source, target in pairs:
        assert torch.equal(source, target)
    attention_2d = block_2d.attention
    expected_qkv = torch.cat([attention_2d.q_proj.weight, attention_2d.k_proj.weight, attention_2d.v_proj.weight])
    assert torch.equal(block_3d.attn.qkv.weight, expected_qkv)

    # patch embedding: repeated over the 2 frames of a patch and halved
    kernel_2d = swin.embeddings.patch_embeddings.projection.weight
    for frame in range(2):
        assert torch.equal(backbone.patch_embed.proj.weight[:, :, frame], kernel_2d / 2)
    assert "2 frames" in report.adapted[VISUAL + "patch_embed.proj.weight"]
    assert VISUAL + "features.0.0.attn.relative_position_index" in report.fresh


def test_inflated_relative_position_bias_is_the_2d_bias_whatever_the_temporal_offset(sources):
    swin = sources["swin2d_transformers"].swin
    model, _ = AVCANetForVideoClassification.from_pretrained_backbones(
        visual=sources["folder"] / "swin2d-transformers", **TINY
    )
    backbone = model.avcanet.visual_branch.encoder.backbone
    for stage_2d, stage_3d in ((0, 0), (1, 2)):
        attention_3d = backbone.features[stage_3d][1].attn
        window_time, window_height, window_width = attention_3d.window_size
        bias_3d = attention_3d.get_relative_position_bias(attention_3d.window_size)  # (1, heads, N, N)
        bias_2d = swin.encoder.layers[stage_2d].blocks[1].attention.relative_position_bias()  # (1, heads, n, n)
        area = window_height * window_width
        bias_3d = bias_3d.view(-1, window_time, area, window_time, area)
        for query_frame in range(window_time):
            for key_frame in range(window_time):
                assert torch.equal(bias_3d[:, query_frame, :, key_frame, :], bias_2d[0])
    with pytest.raises(ValueError, match="same window"):
        tile_relative_position_bias(torch.zeros(169, 3), [8, 4, 4])


def test_inflated_swin_on_a_static_video_matches_the_transformers_2d_swin_on_its_image(sources):
    swin = sources["swin2d_transformers"].swin
    model, _ = AVCANetForVideoClassification.from_pretrained_backbones(
        visual=sources["folder"] / "swin2d-transformers", **TINY
    )
    backbone = model.avcanet.visual_branch.encoder.backbone
    images = torch.randn(2, 3, 32, 32)
    video = static_video(images, TINY["frames_per_segment"])
    with torch.no_grad():
        patches_2d = swin.embeddings(images)[0]  # (B, 8*8, 12), after the patch norm
        patches_3d = backbone.patch_embed(video)  # (B, 2, 8, 8, 12)
        outputs_2d = swin(images).last_hidden_state  # (B, 4*4, 24), after the final norm
        outputs_3d = swin3d_features(backbone, video)  # (B, 2, 4, 4, 24)
    for frame in range(patches_3d.shape[1]):
        torch.testing.assert_close(patches_3d[:, frame].flatten(1, 2), patches_2d, rtol=1e-5, atol=1e-5)
        # every stage, shifted windows and patch merging included
        torch.testing.assert_close(outputs_3d[:, frame].flatten(1, 2), outputs_2d, rtol=1e-4, atol=1e-4)


def test_original_swin_pth_is_inflated_and_matches_a_2d_swin_on_a_static_video(sources):
    model, report = AVCANetForVideoClassification.from_pretrained_backbones(
        visual=sources["folder"] / "swin_original.pth", **TINY
    )
    assert report.formats["visual"] == "swin2d-original"
    unused = report.unused["visual"]
    assert {"head.weight", "head.bias", "layers.0.blocks.1.attn_mask"} <= set(unused)
    assert "layers.1.blocks.0.attn.relative_position_index" in unused
    assert len(report.adapted) == 1 + 4  # patch embedding + one table per block; qkv is already fused
    check_partition(model, report)

    backbone = model.avcanet.visual_branch.encoder.backbone
    swin_2d = sources["swin2d_torchvision"]
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        outputs_2d = swin_2d.norm(swin_2d.features(images))  # (B, 4, 4, 24)
        outputs_3d = swin3d_features(backbone, static_video(images, TINY["frames_per_segment"]))
    for frame in range(outputs_3d.shape[1]):
        torch.testing.assert_close(outputs_3d[:, frame], outputs_2d, rtol=1e-4, atol=1e-4)


def test_swin_sources_refuse_a_config_with_a_transformers_vision_model(sources):
    config = AVCANetConfig(**TINY, vision_config=sources["videomae"].config.to_dict())
    with pytest.raises(ValueError, match="Swin checkpoint"):
        AVCANetForVideoClassification.from_pretrained_backbones(visual=sources["folder"] / "swin3d.pth", config=config)


# ------------------------------------------------------------------------------------ visual: transformers video


def test_transformers_video_model_becomes_the_visual_backbone_at_segment_geometry(sources):
    model, report = AVCANetForVideoClassification.from_pretrained_backbones(
        visual=sources["folder"] / "videomae", **TINY
    )
    vision_config = model.config.vision_config
    assert (vision_config.model_type, vision_config.num_frames, vision_config.image_size) == ("videomae", 4, 32)
    state = model.state_dict()
    for name, tensor in sources["videomae"].videomae.state_dict().items():
        assert torch.equal(state[VISUAL + name], tensor), name
        assert VISUAL + name in report.loaded
    assert report.formats["visual"] == "transformers-video"
    assert {"classifier.weight", "fc_norm.weight"} <= set(report.unused["visual"])
    check_partition(model, report)
    check_fusion_and_heads_are_fresh(report)

    frames = TINY["num_segments"] * TINY["frames_per_segment"]
    with torch.no_grad():
        logits = model(
            pixel_values_videos=torch.randn(1, frames, 3, 32, 32),
            input_features=torch.randn(1, 16, TINY["num_segments"] * TINY["audio_frames_per_segment"]),
        ).logits
    assert logits.shape == (1, model.config.num_labels)


def test_transformers_video_model_of_another_type_than_vision_config_is_refused(sources):
    config = AVCANetConfig(
        **TINY, vision_config={"model_type": "timesformer", "hidden_size": 24, "num_hidden_layers": 1}
    )
    with pytest.raises(ValueError, match="'timesformer' model but .* is a 'videomae' model"):
        AVCANetForVideoClassification.from_pretrained_backbones(visual=sources["folder"] / "videomae", config=config)


# ---------------------------------------------------------------------------------------------------- converter


def load_converter():
    spec = importlib.util.spec_from_file_location("convert_backbones", REPO / "examples" / "convert_backbones.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_converter_writes_a_folder_that_reloads(sources, tmp_path, capsys):
    converter = load_converter()
    config_file = tmp_path / "tiny.json"
    AVCANetConfig.for_label_set("ve8", **TINY).to_json_file(config_file)
    output = tmp_path / "avcanet-init"
    folder = sources["folder"]
    argv = [
        "--config",
        str(config_file),
        "--audio-resnet34",
        str(folder / "resnet.safetensors"),
        "--output",
        str(output),
    ]
    assert converter.main(["--visual-swin2d", str(folder / "swin_original.pth"), *argv]) == 0
    printed = capsys.readouterr().out
    assert "adapted: 6 tensors" in printed and "avcanet.fusion.*" in printed

    for file_name in ("config.json", "model.safetensors", "modeling_avcanet.py", "backbone_weights.py"):
        assert (output / file_name).exists(), file_name
    assert (output / "processor_config.json").exists() == (converter.AVCANetProcessor is not None)
    reloaded = AVCANetForVideoClassification.from_pretrained(output)
    assert reloaded.config.num_labels == 8
    state = reloaded.state_dict()
    assert torch.equal(state[AUDIO + "layer1.0.conv1.weight"], sources["resnet"].layer1[0].conv1.weight)
    assert torch.equal(
        state[VISUAL + "features.1.reduction.weight"], sources["swin2d_torchvision"].features[2].reduction.weight
    )

    # a flag whose format does not match the source writes nothing
    elsewhere = tmp_path / "not-written"
    assert converter.main(["--visual-transformers", str(folder / "swin3d.pth"), *argv[:-1], str(elsewhere)]) == 1
    assert not elsewhere.exists()
