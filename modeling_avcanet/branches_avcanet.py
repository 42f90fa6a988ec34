"""The two branches of AV-CANet: the visual branch (Video Swin-T or a transformers video model per segment) and the
audio branch (ResNet per log-mel segment), each projected to the fusion width."""

from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet
from torchvision.models.video.swin_transformer import (
    ShiftedWindowAttention3d,
    SwinTransformer3d,
    SwinTransformerBlock,
    _compute_attention_mask_3d,
    _get_window_and_shift_size,
)
from transformers import AutoModel
from transformers.modeling_layers import GradientCheckpointingLayer

from .configuration_avcanet import AVCANetConfig
from .window_attention_avcanet import window_attention_with_mask_gradient


# ---------------------------------------------------------------------------------------------------------------
# Visual branch
# ---------------------------------------------------------------------------------------------------------------


def relative_position_index(window_size: list[int], device: torch.device | None = None) -> torch.Tensor:
    """torchvision's `(tokens, tokens)` relative position index of a 3-D window, computed on `device` (`_init_weights`
    rebuilds the buffer with it after a meta-device construction)."""
    holder = nn.Module()
    holder.window_size = window_size
    with torch.device(device or "cpu"):
        ShiftedWindowAttention3d.define_relative_position_index(holder)
    return holder.relative_position_index


def is_being_traced(tensor: torch.Tensor) -> bool:
    """True under torch.compile, torch.export, the ONNX exporter, a fake or meta mode: a tensor made now must never be
    cached, or a later eager call would get a fake tensor back."""
    return (
        torch.compiler.is_compiling()
        or torch.jit.is_tracing()
        or tensor.device.type == "meta"
        or torch._guards.detect_fake_mode(tensor) is not None
    )


@lru_cache(maxsize=32)
def _cached_shifted_window_mask(padded_size: tuple, window_size: tuple, shift_size: tuple, device: torch.device):
    with torch.inference_mode(False):  # a normal tensor, usable later under autograd too
        return _compute_attention_mask_3d(torch.empty(0, device=device), padded_size, window_size, shift_size)


def shifted_window_mask(padded_size: tuple, window_size: tuple, shift_size: tuple, like: torch.Tensor) -> torch.Tensor:
    """torchvision's `(num_windows, tokens, tokens)` float mask (0, or -100 between regions that the cyclic shift
    brought into one window) on `like`'s device, built once per size in eager calls instead of with a Python loop on
    every call, and afresh (never cached) while being traced."""
    if is_being_traced(like):
        return _compute_attention_mask_3d(like.new_empty(0), padded_size, window_size, shift_size)
    return _cached_shifted_window_mask(padded_size, window_size, shift_size, like.device)


class AVCANetWindowAttention3d(ShiftedWindowAttention3d):
    """
    torchvision's 3-D shifted-window attention (same parameters and state-dict keys, same outputs and gradients up to
    float rounding) computed with one fused `scaled_dot_product_attention`, the bias and the shift mask as its additive
    mask: about 2x faster attention and a ~20 % faster AV-CANet forward on CPU (`benchmarks/model.py`). When the bias
    needs a gradient (training), `AVCANetWindowAttentionFunction` runs the same fused forward and a backward that also
    returns the mask's gradient, keeping no attention matrix in between (PyTorch's fused kernels return no gradient
    for the mask; torchvision's computation keeps every window's scores and probabilities). torchvision's own
    computation runs with `attn_implementation="eager"`, and in training with attention dropout on the bias.
    """

    config: AVCANetConfig | None = None  # set by the encoder: the model's config chooses the implementation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        eager = self.config is not None and self.config._attn_implementation == "eager"
        bias_needs_grad = torch.is_grad_enabled() and self.relative_position_bias_table.requires_grad
        if eager or (bias_needs_grad and self.training and self.attention_dropout > 0):
            return super().forward(x)
        batch_size, t, h, w, channels = x.shape
        window_size, shift_size = _get_window_and_shift_size(list(self.shift_size), [t, h, w], list(self.window_size))
        mask = self.get_relative_position_bias(window_size)  # (1, heads, tokens, tokens)
        # pad to whole windows, shift cyclically, partition into windows: as torchvision's shifted_window_attention_3d
        pad = [(-size) % window for size, window in zip((t, h, w), window_size)]
        x = F.pad(x, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))
        padded = tuple(x.shape[1:4])
        shifted = sum(shift_size) > 0
        if shifted:
            x = torch.roll(x, shifts=tuple(-shift for shift in shift_size), dims=(1, 2, 3))
        grid = [size // window for size, window in zip(padded, window_size)]
        num_windows, tokens = grid[0] * grid[1] * grid[2], window_size[0] * window_size[1] * window_size[2]
        x = x.view(batch_size, grid[0], window_size[0], grid[1], window_size[1], grid[2], window_size[2], channels)
        x = x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(batch_size * num_windows, tokens, channels)
        qkv = self.qkv(x).reshape(batch_size * num_windows, tokens, 3, self.num_heads, channels // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B * windows, heads, tokens, head_dim)
        region_mask = shifted_window_mask(padded, tuple(window_size), tuple(shift_size), x) if shifted else None
        if bias_needs_grad:
            x = window_attention_with_mask_gradient(query, key, value, mask, region_mask)
        else:
            if shifted:
                # (windows, heads, tokens, tokens) repeated for every clip: windows are batch-major
                mask = (mask + region_mask[:, None].to(mask.dtype)).repeat(batch_size, 1, 1, 1)
            dropout = self.attention_dropout if self.training else 0.0
            x = F.scaled_dot_product_attention(query, key, value, attn_mask=mask.to(query.dtype), dropout_p=dropout)
        x = x.transpose(1, 2).reshape(batch_size * num_windows, tokens, channels)
        x = F.dropout(self.proj(x), p=self.dropout, training=self.training)
        # reverse the partition, the shift and the padding
        x = x.view(batch_size, grid[0], grid[1], grid[2], window_size[0], window_size[1], window_size[2], channels)
        x = x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(batch_size, *padded, channels)
        if shifted:
            x = torch.roll(x, shifts=tuple(shift_size), dims=(1, 2, 3))
        return x[:, :t, :h, :w].contiguous()


class AVCANetSwinTransformerBlock(SwinTransformerBlock, GradientCheckpointingLayer):
    """
    torchvision's Swin block (same parameters, state-dict keys and computation) as a transformers
    `GradientCheckpointingLayer`: with `gradient_checkpointing_enable()` each block keeps only its input for the
    backward pass and recomputes the rest (its drop-path draw included: checkpointing restores the RNG state), so the
    peak holds one block's activations instead of one stage's.
    """


def swin_block_with_fused_attention(*args, **kwargs) -> AVCANetSwinTransformerBlock:
    """The Swin block with `AVCANetWindowAttention3d` (`SwinTransformer3d` passes its own `attn_layer`)."""
    kwargs["attn_layer"] = AVCANetWindowAttention3d
    return AVCANetSwinTransformerBlock(*args, **kwargs)


class AVCANetSwinVisualEncoder(nn.Module):
    """torchvision's Video Swin Transformer (no head) over one segment, mean-pooled like the release."""

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        self.backbone = SwinTransformer3d(
            patch_size=config.swin_patch_size,
            embed_dim=config.swin_embed_dim,
            depths=config.swin_depths,
            num_heads=config.swin_num_heads,
            window_size=config.swin_window_size,
            stochastic_depth_prob=config.swin_drop_path_rate,
            block=swin_block_with_fused_attention,
        )
        self.backbone.head = nn.Identity()
        for module in self.backbone.modules():
            if isinstance(module, AVCANetWindowAttention3d):
                module.config = config
        self.dropout = nn.Dropout(config.visual_dropout)
        # set by `gradient_checkpointing_enable()` like every block's flag; the blocks do the checkpointing (a whole
        # stage at once would recompute, and hold, two to six blocks' activations in the backward pass)
        self.gradient_checkpointing = False

    def get_input_embeddings(self) -> nn.Module:
        # the patch projection (Conv3d), like the `projection` of a transformers video model's patch embeddings
        return self.backbone.patch_embed.proj

    def set_input_embeddings(self, value: nn.Module):
        self.backbone.patch_embed.proj = value

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        # (N, T, C, H, W) -> (N, C, T, H, W)
        hidden = self.backbone.patch_embed(clips.transpose(1, 2))  # (N, T', H', W', D0)
        hidden = self.backbone.pos_drop(hidden)
        # stages of blocks and patch mergings; with gradient checkpointing on, each block checkpoints itself
        hidden = self.backbone.features(hidden)
        hidden = self.backbone.norm(hidden)  # (N, T', H', W', D)
        # the release pools space, drops out, then averages time
        hidden = self.dropout(hidden.mean(dim=(2, 3)))  # (N, T', D)
        return hidden.mean(dim=1)  # (N, D)


class AVCANetTransformersVisualEncoder(nn.Module):
    """Any transformers video model (VideoMAE, TimeSformer, ViViT, ...) over one segment, tokens mean-pooled."""

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        self.backbone = AutoModel.from_config(config.vision_config)
        self.dropout = nn.Dropout(config.visual_dropout)

    def get_input_embeddings(self) -> nn.Module:
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.backbone.set_input_embeddings(value)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        # clips: (N, T, C, H, W), the layout transformers video models take
        outputs = self.backbone(**{self.backbone.main_input_name: clips})
        return self.dropout(outputs.last_hidden_state).mean(dim=1)  # (N, tokens, D) -> (N, D)


class AVCANetVisualBranch(nn.Module):
    """Embeds every segment of the video: backbone, pooling, projection to the fusion width."""

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        self.num_segments = config.num_segments
        encoder_class = AVCANetSwinVisualEncoder if config.vision_config is None else AVCANetTransformersVisualEncoder
        self.encoder = encoder_class(config)
        self.projection = nn.Linear(config.visual_feature_size, config.hidden_size)

    def forward(self, pixel_values_videos: torch.Tensor) -> torch.Tensor:
        batch_size, num_frames, channels, height, width = pixel_values_videos.shape
        frames_per_segment = num_frames // self.num_segments
        # (B, S*T, C, H, W) -> (B*S, T, C, H, W)
        clips = pixel_values_videos.reshape(batch_size * self.num_segments, frames_per_segment, channels, height, width)
        features = self.encoder(clips)  # (B*S, D)
        features = features.view(batch_size, self.num_segments, -1)  # (B, S, D)
        return self.projection(features)  # (B, S, hidden)


# ---------------------------------------------------------------------------------------------------------------
# Audio branch
# ---------------------------------------------------------------------------------------------------------------


class AVCANetAudioBranch(nn.Module):
    """ResNet (torchvision) with a one-channel stem over every log-mel segment, then Linear/BatchNorm/Tanh."""

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        self.num_segments = config.num_segments
        self.backbone = ResNet(BasicBlock, config.audio_resnet_layers)
        # strides over time only: a segment is (time, mel) with few time frames
        self.backbone.conv1 = nn.Conv2d(1, 64, kernel_size=(7, 1), stride=(2, 1), padding=(3, 0), bias=False)
        self.backbone.fc = nn.Identity()
        self.projection = nn.Sequential(
            nn.Linear(512 * BasicBlock.expansion, config.hidden_size),
            nn.BatchNorm1d(config.hidden_size),
            nn.Tanh(),
        )

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        batch_size, num_mel_bins, num_frames = input_features.shape
        frames_per_segment = num_frames // self.num_segments
        # (B, mels, S*F) -> (B, mels, S, F) -> (B, S, F, mels) -> (B*S, 1, F, mels)
        segments = input_features.view(batch_size, num_mel_bins, self.num_segments, frames_per_segment)
        segments = segments.permute(0, 2, 3, 1).reshape(batch_size * self.num_segments, 1, frames_per_segment, num_mel_bins)
        features = self.projection(self.backbone(segments))  # (B*S, hidden)
        return features.view(batch_size, self.num_segments, -1)  # (B, S, hidden)


__all__ = ["AVCANetAudioBranch", "AVCANetVisualBranch", "relative_position_index"]
