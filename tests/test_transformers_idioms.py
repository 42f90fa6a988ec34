"""AV-CANet under the idioms every transformers model supports: meta-device init, re-heading with `num_labels` /
`id2label`, `return_dict=False`, offloaded forward, attention implementations, PEFT LoRA."""

import pytest
import torch
from torch import nn

from modeling_avcanet import AVCANetForVideoClassification, AVCANetModel
from modeling_avcanet.modeling_avcanet import AVCANetAttention
from tiny import make_inputs, tiny_config
from transformers import AutoModelForVideoClassification

NO_DROPOUT = dict(visual_dropout=0.0, fusion_dropout=0.0, attention_dropout=0.0, swin_drop_path_rate=0.0)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A saved tiny eMotions model (6 labels with polarities)."""
    folder = tmp_path_factory.mktemp("avcanet-tiny")
    torch.manual_seed(0)
    AVCANetForVideoClassification(tiny_config()).save_pretrained(folder)
    return folder


def test_global_cross_attention_equals_nn_multihead_attention_on_the_same_weights():
    config = tiny_config()
    reference = nn.MultiheadAttention(config.hidden_size, config.global_num_attention_heads, batch_first=True).eval()
    nn.init.normal_(reference.in_proj_bias)
    nn.init.normal_(reference.out_proj.bias)
    attention = AVCANetAttention(config, config.hidden_size, config.global_num_attention_heads, dropout=0.0).eval()
    for name, weight, bias in zip(
        ("q_proj", "k_proj", "v_proj"), reference.in_proj_weight.chunk(3), reference.in_proj_bias.chunk(3)
    ):
        getattr(attention, name).load_state_dict({"weight": weight, "bias": bias})
    attention.o_proj.load_state_dict(reference.out_proj.state_dict())
    query, key = torch.randn(3, 5, config.hidden_size), torch.randn(3, 7, config.hidden_size)
    expected = reference(query, key, key, need_weights=False)[0]
    for implementation in ("sdpa", "eager"):
        config._attn_implementation = implementation
        torch.testing.assert_close(attention(query, key, key), expected, msg=implementation)


@pytest.mark.parametrize("model_class", [AVCANetModel, AVCANetForVideoClassification])
def test_meta_device_init_creates_every_buffer_and_runs(model_class):
    # two Swin stages with different window sizes: every relative_position_index differs
    config = tiny_config(swin_depths=[2, 2], swin_num_heads=[1, 2], swin_window_size=[2, 2, 2])
    model = model_class(config).eval()
    with torch.device("meta"):
        meta_model = model_class(config)
    meta_model.to_empty(device="cpu")
    meta_model.init_weights()
    buffers = dict(model.named_buffers())
    meta_buffers = dict(meta_model.named_buffers())
    assert sorted(buffers) == sorted(meta_buffers)
    assert sum("relative_position_index" in name for name in buffers) == 4
    for name, buffer in buffers.items():
        torch.testing.assert_close(meta_buffers[name], buffer, rtol=0, atol=0, msg=name)
    # with the same parameters both give the same outputs: nothing was left uninitialised
    meta_model.load_state_dict({name: p for name, p in model.state_dict().items()}, strict=True)
    meta_model.eval()
    inputs = make_inputs(config)
    with torch.no_grad():
        torch.testing.assert_close(meta_model(**inputs)[0], model(**inputs)[0])


def test_new_label_count_in_the_config_and_on_a_saved_config():
    config = tiny_config(num_labels=5)
    assert config.num_labels == 5 and len(config.id2label) == 5
    model = AVCANetForVideoClassification(config)
    assert model.classifier.weight.shape == (5, 2 * config.hidden_size)
    config.num_labels = 3
    assert len(config.id2label) == 3


def test_ep_ce_names_the_labels_without_polarity_when_the_loss_is_built():
    config = tiny_config(id2label={0: "calm", 1: "angry"}, label_polarities={"calm": "positive"})
    model = AVCANetForVideoClassification(config)
    inputs = make_inputs(config)
    assert model(**inputs).logits.shape == (2, 2)  # inference needs no polarities
    with pytest.raises(ValueError, match=r"\['angry'\] have none.*label_polarities.*classification_loss='ce'"):
        model(**inputs, labels=torch.tensor([0, 1]))
    model.config.label_polarities = {"calm": "positive", "angry": "negative"}
    assert torch.isfinite(model(**inputs, labels=torch.tensor([0, 1])).loss)


def train_steps(model, inputs, labels, steps=3):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    model.train()
    for _ in range(steps):
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def test_reheading_a_checkpoint_with_num_labels_and_ignore_mismatched_sizes(checkpoint):
    original = AVCANetForVideoClassification.from_pretrained(checkpoint)
    model = AutoModelForVideoClassification.from_pretrained(
        checkpoint, num_labels=3, ignore_mismatched_sizes=True, trust_remote_code=True
    )
    assert model.config.num_labels == 3 and model.classifier.weight.shape[0] == 3
    # everything but the classifier comes from the checkpoint
    for name, value in original.avcanet.state_dict().items():
        torch.testing.assert_close(model.avcanet.state_dict()[name], value, rtol=0, atol=0, msg=name)
    inputs, labels = make_inputs(model.config), torch.tensor([0, 2])
    with pytest.raises(ValueError, match=r"\['LABEL_0', 'LABEL_1', 'LABEL_2'\] have none"):
        model(**inputs, labels=labels)
    model.config.classification_loss = "ce"
    before = model.classifier.weight.detach().clone()
    losses = train_steps(model, inputs, labels)
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert not torch.equal(model.classifier.weight, before)


def test_reheading_with_id2label_and_polarities_trains_with_ep_ce(checkpoint, tmp_path):
    id2label = {0: "calm", 1: "angry"}
    model = AVCANetForVideoClassification.from_pretrained(
        checkpoint,
        id2label=id2label,
        label2id={label: index for index, label in id2label.items()},
        label_polarities={"calm": "positive", "angry": "negative"},
        ignore_mismatched_sizes=True,
    )
    assert model.config.polarity_ids == [0, 2]
    inputs, labels = make_inputs(model.config), torch.tensor([1, 0])
    losses = train_steps(model, inputs, labels)
    assert losses[-1] < losses[0]
    model.save_pretrained(tmp_path)
    reloaded = AVCANetForVideoClassification.from_pretrained(tmp_path)
    assert reloaded.config.id2label == id2label and reloaded.config.label_polarities["angry"] == "negative"


@pytest.mark.parametrize("model_class", [AVCANetModel, AVCANetForVideoClassification])
def test_return_dict_false_gives_tuples_by_argument_and_by_config(model_class):
    config = tiny_config()
    model = model_class(config).eval()
    inputs = make_inputs(config)
    with torch.no_grad():
        dictionary = model(**inputs, output_hidden_states=True)
        expected = dictionary.to_tuple()
        by_argument = model(**inputs, output_hidden_states=True, return_dict=False)
        model.config.return_dict = False
        by_config = model(**inputs, output_hidden_states=True)
    for outputs in (by_argument, by_config):
        assert type(outputs) is tuple and len(outputs) == len(expected) == len(dictionary) >= 4
        for value, reference in zip(outputs, expected):
            torch.testing.assert_close(value, reference)


@pytest.mark.parametrize(
    "device_map",
    [
        {"": "disk"},
        {
            "avcanet.visual_branch": "cpu",
            "avcanet.missing_audio_embedding": "cpu",
            "avcanet.audio_branch": "disk",
            "avcanet.fusion": "disk",
            "classifier": "disk",
        },
    ],
    ids=["all-on-disk", "cpu-and-disk"],
)
def test_offloaded_forward_equals_the_normal_forward(checkpoint, tmp_path, device_map):
    model = AVCANetForVideoClassification.from_pretrained(checkpoint).eval()
    offloaded = AVCANetForVideoClassification.from_pretrained(
        checkpoint, device_map=device_map, offload_folder=tmp_path / "offload"
    ).eval()
    assert offloaded.classifier.weight.device.type == "meta"  # really offloaded: loaded by hooks per call
    inputs = make_inputs(model.config)
    with torch.no_grad():
        torch.testing.assert_close(offloaded(**inputs).logits, model(**inputs).logits, rtol=0, atol=0)


def test_eager_and_sdpa_give_the_same_outputs_and_gradients(checkpoint, monkeypatch):
    inputs, labels = make_inputs(tiny_config()), torch.tensor([0, 3])

    def run(implementation):
        model = AVCANetForVideoClassification.from_pretrained(
            checkpoint, attn_implementation=implementation, **NO_DROPOUT
        )
        assert model.config._attn_implementation == implementation
        with torch.no_grad():
            logits = model.eval()(**inputs).logits
        model.train()
        model(**inputs, labels=labels).loss.backward()
        return logits, {name: p.grad for name, p in model.named_parameters()}

    sdpa_logits, sdpa_gradients = run("sdpa")
    # eager really is eager: no attention layer may reach a fused kernel
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", None)
    eager_logits, eager_gradients = run("eager")
    torch.testing.assert_close(eager_logits, sdpa_logits, rtol=1e-4, atol=1e-5)
    for name, gradient in sdpa_gradients.items():
        torch.testing.assert_close(eager_gradients[name], gradient, rtol=1e-3, atol=1e-6, msg=name)


def test_unsupported_attention_implementation_is_refused(checkpoint):
    with pytest.raises(ValueError, match="does not support Flash Attention 2"):
        AVCANetForVideoClassification.from_pretrained(checkpoint, attn_implementation="flash_attention_2")


# the module names the README gives for LoRA: Swin window attention, pyramid and global fusion attention
LORA_TARGETS = r".*(\.attn\.(qkv|proj)|(cross_modal_block\.\w+|global_attention)\.attention\.(q|k|v|o)_proj)"
# the new head, and the BatchNorm layers of the audio branch, whose running statistics change while training
LORA_MODULES_TO_SAVE = ["classifier", "bn1", "bn2", "downsample", "projection"]


def test_peft_lora_with_gradient_checkpointing_trains_saves_and_reloads(checkpoint, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model

    base = AVCANetForVideoClassification.from_pretrained(checkpoint)
    base.gradient_checkpointing_enable()
    base.enable_input_require_grads()  # frozen patch embedding: the checkpointed stages still need a grad input
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS, modules_to_save=LORA_MODULES_TO_SAVE)
    model = get_peft_model(base, lora)
    wrapped = {name.rsplit(".lora_A", 1)[0] for name, _ in model.named_parameters() if ".lora_A." in name}
    assert any(name.endswith("attn.qkv") for name in wrapped) and any(name.endswith("attn.proj") for name in wrapped)
    assert any(name.endswith("global_attention.attention.o_proj") for name in wrapped)
    assert any("pyramid.1.cross_modal_block.cross_modal_attention.attention.q_proj" in name for name in wrapped)
    assert base.avcanet.visual_branch.encoder.gradient_checkpointing
    frozen = {name: p.detach().clone() for name, p in model.named_parameters() if not p.requires_grad}

    inputs, labels = make_inputs(base.config), torch.tensor([0, 3])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    losses = []
    for step in range(3):
        loss = model(**inputs, labels=labels).loss
        loss.backward()
        if step > 0:  # lora_B starts at zero, so lora_A gets its first gradient in step 2
            no_gradient = [n for n, p in model.named_parameters() if p.requires_grad and not p.grad.abs().sum() > 0]
            assert no_gradient == []  # LoRA inside the checkpointed Swin stages and pyramid levels trains too
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    for name, p in model.named_parameters():
        if name in frozen:
            torch.testing.assert_close(p, frozen[name], rtol=0, atol=0, msg=name)

    model.save_pretrained(tmp_path / "adapter")
    model.eval()
    with torch.no_grad():
        expected = model(**inputs).logits
    reloaded = PeftModel.from_pretrained(AVCANetForVideoClassification.from_pretrained(checkpoint), tmp_path / "adapter")
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(**inputs).logits, expected)
        merged = reloaded.merge_and_unload()
        torch.testing.assert_close(merged(**inputs).logits, expected, rtol=1e-4, atol=1e-5)
