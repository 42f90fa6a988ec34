"""The training step's memory levers keep the maths: per-block gradient checkpointing and the fused window attention
with a gradient for the relative-position bias give the loss and gradients of the plain computation."""

import pytest
import torch

from modeling_avcanet import AVCANetForVideoClassification
from modeling_avcanet import window_attention_avcanet
from tests.tiny import make_inputs, tiny_config

# two blocks per stage: the second one of each stage is shifted (the shift mask path); drop-path and dropout on
SHIFTED = dict(swin_depths=[2, 2], swin_num_heads=[2, 2])


def loss_and_gradients(model, inputs, labels, seed=0):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)  # the same drop-path and dropout draws in every run
    loss = model(**inputs, labels=labels).loss
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


def saved_bytes(model, function) -> int:
    """Bytes of the distinct activations (not parameters) autograd keeps for the backward pass while `function` runs."""
    storages = {}
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(tensor):
        if tensor.untyped_storage().data_ptr() not in parameters:
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        function()
    return sum(storages.values())


def assert_same(loss, gradients, reference_loss, reference_gradients, **tolerance):
    torch.testing.assert_close(loss, reference_loss, **tolerance)
    assert gradients.keys() == reference_gradients.keys()
    for name in reference_gradients:
        torch.testing.assert_close(gradients[name], reference_gradients[name], msg=name, **tolerance)


@pytest.mark.parametrize("use_reentrant", [True, False])
def test_per_block_checkpointing_gives_the_same_loss_and_gradients(use_reentrant):
    config = tiny_config(**SHIFTED, swin_drop_path_rate=0.5, fusion_dropout=0.3, visual_dropout=0.2)
    model = AVCANetForVideoClassification(config).double().train()
    inputs = {key: value.double() for key, value in make_inputs(config).items()}
    labels = torch.tensor([0, 1])
    plain = loss_and_gradients(model, inputs, labels)
    other_draw = loss_and_gradients(model, inputs, labels, seed=1)
    assert not torch.equal(plain[0], other_draw[0])  # drop-path and dropout really draw

    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": use_reentrant})
    blocks = [m for m in model.modules() if type(m).__name__ == "AVCANetSwinTransformerBlock"]
    assert len(blocks) == 4 and all(block.gradient_checkpointing for block in blocks)
    checkpointed = loss_and_gradients(model, inputs, labels)
    assert_same(*checkpointed, *plain, rtol=1e-10, atol=1e-12)


def test_checkpointing_keeps_only_block_inputs_for_the_backward_pass():
    config = tiny_config(**SHIFTED)
    model = AVCANetForVideoClassification(config).train()
    inputs, labels = make_inputs(config), torch.tensor([0, 1])

    def step():
        model(**inputs, labels=labels).loss

    plain = saved_bytes(model, step)
    model.activation_checkpointing_enable()
    checkpointed = saved_bytes(model, step)
    # what stays: each block's input, the patch embedding, the audio ResNet (not checkpointed: its BatchNorm statistics
    # would be updated twice) and the small fusion
    assert checkpointed < 0.5 * plain, (checkpointed, plain)


@pytest.mark.parametrize("chunk_elements", [None, 1])
def test_training_window_attention_matches_torchvisions_computation(monkeypatch, chunk_elements):
    """Gradients on: the fused forward + mask-gradient backward equals torchvision's unfused computation, outputs and
    every gradient (the relative-position bias tables included), one clip per chunk or all at once."""
    if chunk_elements is not None:
        monkeypatch.setattr(window_attention_avcanet, "CHUNK_ELEMENTS", chunk_elements)
    config = tiny_config(**SHIFTED, swin_drop_path_rate=0.3)
    model = AVCANetForVideoClassification(config).double().train()
    encoder = model.avcanet.visual_branch.encoder
    clips = torch.randn(3, config.frames_per_segment, 3, config.image_size, config.image_size, dtype=torch.double)
    weights = torch.randn(3, config.visual_feature_size, dtype=torch.double)

    def run():
        encoder.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        output = encoder(clips)
        (output * weights).sum().backward()
        return output.detach(), {name: p.grad.clone() for name, p in encoder.named_parameters()}

    fused = run()
    model.config._attn_implementation = "eager"  # torchvision's own computation
    reference = run()
    assert_same(*fused, *reference, rtol=1e-10, atol=1e-13)
    assert all(reference[1][name].abs().sum() > 0 for name in reference[1] if "relative_position_bias_table" in name)


def test_training_window_attention_keeps_no_attention_matrix():
    """torchvision's computation keeps (clips * windows, heads, N, N) scores for the backward; the fused one keeps at most
    the (windows, heads, N, N) mask, shared by every clip."""
    config = tiny_config(**SHIFTED)
    model = AVCANetForVideoClassification(config).train()
    encoder = model.avcanet.visual_branch.encoder
    clips = torch.randn(4, config.frames_per_segment, 3, config.image_size, config.image_size)

    def largest_square(function) -> int:
        sizes = [0]

        def pack(tensor):
            if tensor.dim() == 4 and tensor.shape[-1] == tensor.shape[-2] > 1:  # (N, heads, tokens, tokens)
                sizes.append(tensor.numel())
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            function()
        return max(sizes)

    fused = largest_square(lambda: encoder(clips))
    model.config._attn_implementation = "eager"
    unfused = largest_square(lambda: encoder(clips))
    assert unfused >= 4 * fused > 0, (fused, unfused)


def test_training_window_attention_under_bf16_autocast_follows_float32():
    config = tiny_config(**SHIFTED)
    model = AVCANetForVideoClassification(config).train()
    inputs, labels = make_inputs(config), torch.tensor([0, 1])
    reference_loss, reference = loss_and_gradients(model, inputs, labels)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, gradients = loss_and_gradients(model, inputs, labels)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, reference_loss, rtol=0.05, atol=0.05)
    for name in ("relative_position_bias_table", "attn.qkv.weight"):
        name = next(key for key in reference if name in key)
        cosine = torch.nn.functional.cosine_similarity(gradients[name].flatten(), reference[name].flatten(), dim=0)
        assert cosine > 0.95, (name, cosine)


def test_training_window_attention_stays_on_the_fused_kernel():
    # a mask that requires grad sends PyTorch's CPU attention to its unfused math path (2.5x slower at paper size)
    config = tiny_config(**SHIFTED, attention_dropout=0.0)
    model = AVCANetForVideoClassification(config).train()
    inputs = make_inputs(config)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        model(**inputs, labels=torch.zeros(len(inputs["input_features"]), dtype=torch.long)).loss.backward()
    kernels = {event.key: event.count for event in profile.key_averages() if "scaled_dot_product" in event.key}
    fused = kernels.get("aten::_scaled_dot_product_flash_attention_for_cpu", 0)
    assert fused >= 4, kernels  # every Swin block's window attention, shifted or not
    assert "aten::_scaled_dot_product_attention_math" not in kernels, kernels
