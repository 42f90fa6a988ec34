"""The AV-CANet model: shapes, gradients, EP-CE, loss reduction, masks, backbones, save/load and remote code."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from modeling_avcanet import (
    EMOTION_LABEL_SETS,
    AVCANetConfig,
    AVCANetForVideoClassification,
    AVCANetModel,
    ep_ce_loss,
)
from tiny import make_inputs, tiny_config

TINY_VIDEOMAE = dict(
    model_type="videomae",
    image_size=32,
    patch_size=16,
    num_frames=4,
    tubelet_size=2,
    hidden_size=24,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=48,
)


# --------------------------------------------------------------------------------------------------- configuration


def test_default_config_is_the_papers_emotions_setting():
    config = AVCANetConfig()
    assert config.num_labels == 6
    assert list(config.id2label.values()) == list(EMOTION_LABEL_SETS["emotions"])
    assert (config.num_segments, config.frames_per_segment, config.image_size) == (16, 8, 112)
    assert (config.hidden_size, config.num_pyramid_levels, config.num_attention_heads) == (512, 4, 8)
    assert config.polarity_penalties == {"positive": 0.5, "neutral": 0.5, "negative": 0.5}
    assert config.visual_feature_size == 768
    # Excitation, Fear, Neutral, Relaxation, Sadness, Tension
    assert config.polarity_ids == [0, 2, 1, 0, 2, 2]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(hidden_size=100), "divisible by num_attention_heads"),
        (dict(global_num_attention_heads=3), "divisible by global_num_attention_heads"),
        (dict(label_polarities={"a": "happy", "b": "neutral"}), "must be one of"),
        (dict(classification_loss="focal"), "classification_loss"),
        (dict(polarity_penalties={"positive": 1.0}), "polarity_penalties"),
        (dict(swin_depths=[1, 1, 1], swin_num_heads=[1, 2]), "differ in length"),
    ],
)
def test_invalid_config_raises_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AVCANetConfig(**kwargs)


def test_plain_ce_needs_no_polarities_and_label_sets_are_presets():
    config = AVCANetConfig(classification_loss="ce", num_labels=3)
    assert config.num_labels == 3 and config.label_polarities is None
    ve8 = AVCANetConfig.for_label_set("ve8")
    assert ve8.num_labels == 8 and ve8.label2id["Trust"] == 7
    with pytest.raises(ValueError, match="Unknown label set"):
        AVCANetConfig.for_label_set("nope")


# --------------------------------------------------------------------------------------------------- EP-CE


def test_ep_ce_weights_each_polarity_mismatch_by_the_true_polaritys_lambda():
    # classes: 0 positive, 1 neutral, 2 negative, 3 negative
    class_polarity = torch.tensor([0, 1, 2, 2])
    penalty = torch.tensor([0.1, 0.2, 0.3])
    logits = torch.tensor(
        [
            [3.0, 0.0, 0.0, 0.0],  # true 0 (pos), predicted 0: same polarity
            [3.0, 0.0, 0.0, 0.0],  # true 1 (neu), predicted 0 (pos): mismatch, lambda_neu
            [0.0, 3.0, 0.0, 0.0],  # true 0 (pos), predicted 1 (neu): mismatch, lambda_pos
            [0.0, 0.0, 3.0, 0.0],  # true 3 (neg), predicted 2 (neg): wrong class, same polarity
            [0.0, 3.0, 0.0, 0.0],  # true 2 (neg), predicted 1 (neu): mismatch, lambda_neg
        ]
    )
    labels = torch.tensor([0, 1, 0, 3, 2])
    cross_entropy = F.cross_entropy(logits, labels, reduction="none")
    expected = (cross_entropy * torch.tensor([1.0, 1.2, 1.1, 1.0, 1.3])).mean()
    torch.testing.assert_close(ep_ce_loss(logits, labels, class_polarity, penalty), expected)


def test_ep_ce_with_zero_lambdas_or_no_mismatch_is_plain_cross_entropy():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(16, 6, generator=generator)
    labels = torch.randint(0, 6, (16,), generator=generator)
    class_polarity = torch.tensor(AVCANetConfig().polarity_ids)
    zero = ep_ce_loss(logits, labels, class_polarity, torch.zeros(3))
    torch.testing.assert_close(zero, F.cross_entropy(logits, labels))
    correct_logits = F.one_hot(labels, 6).float() * 5
    torch.testing.assert_close(
        ep_ce_loss(correct_logits, labels, class_polarity, torch.full((3,), 0.5)), F.cross_entropy(correct_logits, labels)
    )


def test_ep_ce_reduces_by_num_items_in_batch_so_accumulated_halves_equal_the_full_batch():
    generator = torch.Generator().manual_seed(1)
    logits = torch.randn(10, 6, generator=generator, requires_grad=True)
    labels = torch.randint(0, 6, (10,), generator=generator)
    class_polarity, penalty = torch.tensor(AVCANetConfig().polarity_ids), torch.full((3,), 0.5)
    full = ep_ce_loss(logits, labels, class_polarity, penalty)
    halves = sum(
        ep_ce_loss(logits[part], labels[part], class_polarity, penalty, num_items_in_batch=10)
        for part in (slice(0, 3), slice(3, 10))
    )
    torch.testing.assert_close(halves, full)


def test_model_loss_is_fused_plus_weighted_unimodal_terms():
    config = tiny_config(auxiliary_loss_weight=0.25)
    model = AVCANetForVideoClassification(config).eval()
    labels = torch.tensor([1, 4])
    outputs = model(**make_inputs(config), labels=labels)
    class_polarity, penalty = torch.tensor(config.polarity_ids), torch.full((3,), 0.5)
    expected = ep_ce_loss(outputs.logits, labels, class_polarity, penalty) + 0.25 * (
        ep_ce_loss(outputs.audio_logits, labels, class_polarity, penalty)
        + ep_ce_loss(outputs.visual_logits, labels, class_polarity, penalty)
    )
    torch.testing.assert_close(outputs.loss, expected)
    # the two unimodal heads are the halves of the shared classifier, each with half its bias
    torch.testing.assert_close(outputs.audio_logits + outputs.visual_logits, outputs.logits)


def test_model_loss_under_gradient_accumulation_matches_one_big_batch():
    config = tiny_config()
    model = AVCANetForVideoClassification(config).eval()  # eval: no dropout, BatchNorm running statistics
    inputs, labels = make_inputs(config, batch_size=3), torch.tensor([0, 2, 5])
    full = model(**inputs, labels=labels).loss
    accumulated = sum(
        model(**{key: value[part] for key, value in inputs.items()}, labels=labels[part], num_items_in_batch=3).loss
        for part in (slice(0, 1), slice(1, 3))
    )
    torch.testing.assert_close(accumulated, full)


# --------------------------------------------------------------------------------------------------- model


def test_tiny_model_shapes_hidden_states_and_every_parameter_gets_a_gradient():
    config = tiny_config()
    model = AVCANetForVideoClassification(config).train()
    outputs = model(
        **make_inputs(config), audio_mask=torch.tensor([1, 0]), labels=torch.tensor([0, 3]), output_hidden_states=True
    )
    assert outputs.logits.shape == outputs.audio_logits.shape == outputs.visual_logits.shape == (2, 6)
    # branch output, one per pyramid level, then the level-weighted sum
    assert len(outputs.visual_hidden_states) == len(outputs.audio_hidden_states) == config.num_pyramid_levels + 2
    assert all(state.shape == (2, 4, 32) for state in outputs.visual_hidden_states)
    outputs.loss.backward()
    no_gradient = [name for name, parameter in model.named_parameters() if parameter.grad is None]
    assert no_gradient == []  # no unused parameters: DDP needs no find_unused_parameters


def test_default_model_forward_and_backward_at_batch_one():
    config = AVCANetConfig()
    model = AVCANetForVideoClassification(config).train()
    assert 85e6 < model.num_parameters() < 90e6  # the spec's estimate of the release is 89.2 M with unused parts
    outputs = model(**make_inputs(config, batch_size=1), labels=torch.tensor([2]))
    assert outputs.logits.shape == (1, 6)
    outputs.loss.backward()
    assert model.avcanet.visual_branch.encoder.backbone.patch_embed.proj.weight.grad.abs().sum() > 0
    assert model.avcanet.audio_branch.backbone.conv1.weight.grad.abs().sum() > 0


def test_eval_mode_is_deterministic_and_train_mode_is_not():
    config = tiny_config()
    model = AVCANetForVideoClassification(config)
    inputs = make_inputs(config)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(**inputs).logits, model(**inputs).logits)


def test_clip_without_audio_ignores_its_audio_features():
    config = tiny_config()
    model = AVCANetForVideoClassification(config).eval()
    inputs = make_inputs(config)
    audio_mask = torch.tensor([1, 0])
    garbage = dict(inputs, input_features=torch.randn_like(inputs["input_features"]) * 1e3)
    with torch.no_grad():
        reference = model(**inputs, audio_mask=audio_mask).logits
        perturbed = model(**garbage, audio_mask=audio_mask).logits
        unmasked = model(**garbage).logits
    torch.testing.assert_close(perturbed[1], reference[1])  # the silent clip does not read its features
    assert not torch.allclose(perturbed[0], reference[0])  # the clip with audio does
    assert not torch.allclose(unmasked[1], reference[1])  # and without the mask so would the silent one
    assert torch.isfinite(perturbed).all()


def test_local_attention_reaches_only_neighbouring_segments():
    """A change in the last segment reaches the first one only through levels whose band is wide enough."""
    config = tiny_config(num_segments=8, num_pyramid_levels=1, temporal_kernel_size=1)
    model = AVCANetModel(config).eval()
    visual = torch.randn(1, 8, 32)
    audio = torch.randn(1, 8, 32)
    level = model.fusion.pyramid[0]  # reach 1: segment 0 sees segments 0 and 1
    with torch.no_grad():
        reference = level(visual, audio)
        changed_far, changed_near = visual.clone(), visual.clone()
        changed_far[:, 5] += 10
        changed_near[:, 1] += 10
        far, near = level(changed_far, audio), level(changed_near, audio)
    torch.testing.assert_close(far[0][:, 0], reference[0][:, 0])
    assert not torch.allclose(near[0][:, 0], reference[0][:, 0])


def test_gradient_checkpointing_gives_the_same_gradients():
    config = tiny_config(visual_dropout=0.0, fusion_dropout=0.0, attention_dropout=0.0, swin_drop_path_rate=0.0)
    model = AVCANetForVideoClassification(config).train()
    inputs, labels = make_inputs(config), torch.tensor([0, 1])

    def gradients():
        model.zero_grad()
        model(**inputs, labels=labels).loss.backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    model.activation_checkpointing_enable()
    assert model.avcanet.visual_branch.encoder.gradient_checkpointing
    assert all(level.gradient_checkpointing for level in model.avcanet.fusion.pyramid)
    checkpointed = gradients()
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], msg=name)


def test_fused_window_attention_matches_torchvisions_computation():
    """Without a gradient to the bias tables the Swin windows run one fused attention; the result must not change."""
    config = tiny_config(swin_depths=[2, 2], swin_num_heads=[2, 2])  # the second block of a stage is shifted
    encoder = AVCANetForVideoClassification(config).avcanet.visual_branch.encoder.eval()
    clips = torch.randn(3, config.frames_per_segment, 3, config.image_size, config.image_size)
    with torch.no_grad():
        fused = encoder(clips)
    reference = encoder(clips)  # gradients on: torchvision's own window attention
    torch.testing.assert_close(fused, reference.detach(), rtol=1e-4, atol=1e-5)


def test_bf16_autocast_on_cpu():
    config = tiny_config()
    model = AVCANetForVideoClassification(config).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(**make_inputs(config), labels=torch.tensor([0, 1]))
    assert outputs.loss.dtype == torch.float32 and torch.isfinite(outputs.loss)
    outputs.loss.backward()


def test_bf16_weights_take_float32_inputs():
    config = tiny_config()
    model = AVCANetForVideoClassification(config).to(torch.bfloat16).eval()
    with torch.no_grad():
        logits = model(**make_inputs(config), audio_mask=torch.tensor([1, 0])).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()


def test_transformers_video_model_replaces_the_swin_branch():
    config = tiny_config(vision_config=TINY_VIDEOMAE)
    model = AVCANetForVideoClassification(config)
    assert type(model.avcanet.visual_branch.encoder.backbone).__name__ == "VideoMAEModel"
    assert config.visual_feature_size == 24
    outputs = model(**make_inputs(config), labels=torch.tensor([0, 5]))
    assert outputs.logits.shape == (2, 6)
    outputs.loss.backward()
    assert model.avcanet.visual_branch.encoder.backbone.embeddings.patch_embeddings.projection.weight.grad is not None


# --------------------------------------------------------------------------------------------------- save / load


def test_save_and_reload_round_trip(tmp_path):
    config = tiny_config(vision_config=TINY_VIDEOMAE)
    model = AVCANetForVideoClassification(config).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    reloaded = AVCANetForVideoClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.vision_config.model_type == "videomae"
    inputs = make_inputs(config)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, model(**inputs).logits)


REMOTE_LOAD = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification
    folder = sys.argv[1]
    inputs = torch.load(folder + "/inputs.pt", weights_only=True)
    model = AutoModelForVideoClassification.from_pretrained(folder, trust_remote_code=True).eval()
    base = AutoModel.from_pretrained(folder, trust_remote_code=True)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    with torch.no_grad():
        logits = model(**inputs).logits
    torch.save(logits, folder + "/remote_logits.pt")
    print(json.dumps({
        "model": type(model).__module__, "base": type(base).__name__, "config": type(config).__name__,
        "package_imported": any(name.split(".")[0] == "modeling_avcanet" for name in sys.modules),
    }))
    """
)


def test_remote_code_loads_in_a_process_that_never_imports_the_package(tmp_path):
    config = tiny_config()
    model = AVCANetForVideoClassification(config).eval()
    folder = tmp_path / "avcanet-tiny"
    model.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    assert set(saved["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForVideoClassification"}
    assert {"configuration_avcanet.py", "modeling_avcanet.py", "loss_avcanet.py"} <= {p.name for p in folder.iterdir()}
    inputs = make_inputs(config)
    torch.save(inputs, folder / "inputs.pt")

    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "PYTHONPATH": "",
    }
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_LOAD, str(folder)], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["model"].startswith("transformers_modules.")
    assert report["base"] == "AVCANetModel" and report["config"] == "AVCANetConfig"
    assert report["package_imported"] is False
    with torch.no_grad():
        expected = model(**inputs).logits
    torch.testing.assert_close(torch.load(folder / "remote_logits.pt", weights_only=True), expected, rtol=0, atol=0)


# --------------------------------------------------------------------------------------------------- faithfulness


def test_level_weighting_starts_and_drops_out_like_the_release():
    config = tiny_config(attention_dropout=0.1)
    weighting = AVCANetModel(config).fusion.level_weighting
    width_one = [m for m in weighting.cross_modal_attention.modules() if isinstance(m, torch.nn.Linear)]
    assert len(width_one) == 6 and all(m.in_features == 1 for m in width_one)
    values = torch.cat([torch.cat([m.weight.flatten(), m.bias]) for m in width_one])
    # PyTorch's default for fan-in 1, as the release: U(-1, 1), not std 0.02
    assert values.abs().max() <= 1.0 and values.std() > 0.2
    assert weighting.cross_modal_attention.attention.dropout == 0.1
    visual, audio = torch.randn(2, 4, 2, 32), torch.randn(2, 4, 2, 32)
    with torch.no_grad():
        weighting.eval()
        torch.testing.assert_close(weighting(visual, audio)[0], weighting(visual, audio)[0], rtol=0, atol=0)
        weighting.train()
        torch.manual_seed(0)
        outputs = [weighting(visual, audio)[0] for _ in range(4)]
    assert any(not torch.equal(outputs[0], other) for other in outputs[1:])
