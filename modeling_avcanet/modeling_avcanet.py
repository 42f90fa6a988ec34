"""
AV-CANet: audio-visual emotion recognition for short-form videos (eMotions, Wu et al., ICMR 2025 / arXiv 2508.06902).

Architecture (`../shared/docs/avcanet-spec.md` gives the source of every number):

    video (B, S*T, 3, H, W) -> Video Swin-T per segment -> pooled 768 -> Linear -> V (B, S, 512)
    log-mel (B, mels, S*F)  -> ResNet-34 per segment    -> pooled 512 -> Linear/BN/Tanh -> A (B, S, 512)
    Local-Global Fusion:
        local pyramid, level i = 0..L-1 with reach 2**i: banded self-/cross-attention + sigmoid gates,
            dilated temporal convolutions; the levels are summed with learned cross-modal weights
        global: bidirectional cross-attention + residual, mean over segments -> a', v' (B, 512)
    classifier: Linear([a'; v']) -> logits; its audio and visual halves give the unimodal logits
    loss: EP-CE on the fused logits + the same on each unimodal head

Deviations from the authors' release, and why:
- The release references two modules it never builds (`MMP_Module`, `attention_module`). The local pyramid is built
  with the upstream MM-Pyramid defaults (4 levels, width 512, feed-forward 512, 8 heads, dropout 0.5); the global
  cross-attention is one `nn.MultiheadAttention(512, 8)` shared by both directions, as the release's call signature
  implies.
- The release tiles MFCC-32 to 47.6 s; we take a log-mel spectrogram cut so that audio segment i covers the same
  time as visual segment i (see the processor). The ResNet ends in an adaptive pool, so any segment size works.
- Clips without an audio track get a learned "missing audio" embedding in place of their audio segments, and no
  audio-only loss: the release always fed the network whatever its loader produced.
- Pixel normalisation (`x / 255 - 100 / 255`) is done by the processor, not in place inside `forward`.
- The release built its banded masks with a Python loop and `.cuda()` on every call; ours are computed on the
  input's device with no per-element loop, and the attention uses `scaled_dot_product_attention` (a boolean band is
  the release's `-1e9` fill, since no query has all its keys masked).
- Parameters the release builds but never uses (the Swin classification head, the ResNet `fc`, an unused
  LayerNorm in its attention, template layers) are not built, so DDP needs no `find_unused_parameters`.
- Every hard-coded size (16 segments, 512 width, 768 Swin features) is a config field.
- Kept on purpose for faithfulness: the level-weighting attention works on width-1 scores, so its query LayerNorm
  always outputs its bias (the release's degenerate `LayerNorm(1)`); only the query of each attention layer is
  layer-normed, keys and values are raw; one cross-modal attention layer is shared by both directions.
"""

from dataclasses import dataclass
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
from transformers import AutoModel, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import ModelOutput

from .configuration_avcanet import POLARITIES, AVCANetConfig
from .loss_avcanet import ep_ce_loss


@dataclass
class AVCANetModelOutput(ModelOutput):
    r"""
    audio_embeds (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
        Audio embedding after the Local-Global Fusion (the release's `a'`).
    visual_embeds (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
        Visual embedding after the Local-Global Fusion (the release's `v'`).
    audio_hidden_states, visual_hidden_states (`tuple(torch.FloatTensor)`, *optional*):
        Per-segment states `(batch_size, num_segments, hidden_size)` of each modality: the branch output, the output
        of every pyramid level and the level-weighted sum. Returned with `output_hidden_states=True`.
    audio_segment_embeds, visual_segment_embeds (`torch.FloatTensor` of shape `(batch_size, num_segments, hidden_size)`):
        Each segment's state after the global cross-attention; `audio_embeds` and `visual_embeds` are their means
        over segments.
    """

    audio_embeds: torch.FloatTensor | None = None
    visual_embeds: torch.FloatTensor | None = None
    audio_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    visual_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    audio_segment_embeds: torch.FloatTensor | None = None
    visual_segment_embeds: torch.FloatTensor | None = None


@dataclass
class AVCANetVideoClassifierOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `(1,)`, *optional*, returned when `labels` is provided):
        EP-CE (or CE) of the fused logits plus `auxiliary_loss_weight` times that of each unimodal head.
    logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
        Fused audio-visual classification scores.
    audio_logits, visual_logits (`torch.FloatTensor` of shape `(batch_size, num_labels)`):
        Scores of the audio half and the visual half of the classifier alone; `audio_logits + visual_logits` is
        `logits`.
    segment_logits (`torch.FloatTensor` of shape `(batch_size, num_segments, num_labels)`):
        The classifier applied to each segment's fused states. The global fusion ends in a mean over segments and the
        classifier is linear, so their mean over segments is `logits` (up to float rounding): the emotion timeline.
    audio_segment_logits, visual_segment_logits (`torch.FloatTensor` of shape `(batch_size, num_segments, num_labels)`):
        The audio and visual halves of `segment_logits` (they sum to it); their means are `audio_logits` and
        `visual_logits`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    audio_logits: torch.FloatTensor | None = None
    visual_logits: torch.FloatTensor | None = None
    audio_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    visual_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    segment_logits: torch.FloatTensor | None = None
    audio_segment_logits: torch.FloatTensor | None = None
    visual_segment_logits: torch.FloatTensor | None = None


# ---------------------------------------------------------------------------------------------------------------
# Visual branch
# ---------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def shifted_window_mask(padded_size: tuple, window_size: tuple, shift_size: tuple, device: torch.device):
    """torchvision's `(num_windows, tokens, tokens)` float mask (0, or -100 between regions that the cyclic shift
    brought into one window), built once per size instead of with a Python loop on every call."""
    with torch.inference_mode(False):  # a normal tensor, usable later under autograd too
        return _compute_attention_mask_3d(torch.empty(0, device=device), padded_size, window_size, shift_size)


class AVCANetWindowAttention3d(ShiftedWindowAttention3d):
    """
    torchvision's 3-D shifted-window attention (same parameters and state-dict keys, same outputs up to float
    rounding) that, when no gradient has to reach the relative position bias (eval, inference, a frozen backbone),
    computes the attention with one fused `scaled_dot_product_attention`, the bias and the shift mask as its additive
    mask: about 2x faster attention and a ~20 % faster AV-CANet forward on CPU (`benchmarks/model.py`). PyTorch's
    fused kernels return no gradient for the mask, so with one needed (training) torchvision's computation runs.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and self.relative_position_bias_table.requires_grad:
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
        if shifted:
            region_mask = shifted_window_mask(padded, tuple(window_size), tuple(shift_size), x.device)
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


def swin_block_with_fused_attention(*args, **kwargs) -> SwinTransformerBlock:
    """torchvision's Swin block with `AVCANetWindowAttention3d` (`SwinTransformer3d` passes its own `attn_layer`)."""
    kwargs["attn_layer"] = AVCANetWindowAttention3d
    return SwinTransformerBlock(*args, **kwargs)


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
        self.dropout = nn.Dropout(config.visual_dropout)
        self.gradient_checkpointing = False

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        # (N, T, C, H, W) -> (N, C, T, H, W)
        hidden = self.backbone.patch_embed(clips.transpose(1, 2))  # (N, T', H', W', D0)
        hidden = self.backbone.pos_drop(hidden)
        for stage in self.backbone.features:
            if self.gradient_checkpointing and self.training:
                hidden = self._gradient_checkpointing_func(stage, hidden)
            else:
                hidden = stage(hidden)
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


# ---------------------------------------------------------------------------------------------------------------
# Local-Global Fusion module
# ---------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=64)
def band_attention_mask(length: int, reach: int, device: torch.device) -> torch.Tensor:
    """`(length, length)` boolean mask: query t may attend key j when |t - j| <= reach."""
    positions = torch.arange(length, device=device)
    return (positions[:, None] - positions[None, :]).abs() <= reach


class AVCANetAttention(nn.Module):
    """Multi-head attention (the release's `MultiHeadAttention`, without its unused LayerNorm)."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(hidden_size, hidden_size)
        self.k_proj = nn.Linear(hidden_size, hidden_size)
        self.v_proj = nn.Linear(hidden_size, hidden_size)
        self.o_proj = nn.Linear(hidden_size, hidden_size)

    def forward(self, query, key, value, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch_size, query_length, hidden_size = query.shape
        # (N, L, hidden) -> (N, heads, L, head_dim)
        query = self.q_proj(query).view(batch_size, query_length, self.num_heads, self.head_dim).transpose(1, 2)
        key = self.k_proj(key).view(batch_size, -1, self.num_heads, self.head_dim).transpose(1, 2)
        value = self.v_proj(value).view(batch_size, -1, self.num_heads, self.head_dim).transpose(1, 2)
        attended = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=self.dropout if self.training else 0.0
        )
        # (N, heads, L, head_dim) -> (N, L, hidden)
        attended = attended.transpose(1, 2).reshape(batch_size, query_length, hidden_size)
        return self.o_proj(attended)


class AVCANetAttentionLayer(nn.Module):
    """Pre-norm attention + feed-forward layer; only the query is layer-normed (the release's `TransformerLayer`)."""

    def __init__(self, hidden_size: int, num_heads: int, intermediate_size: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.attention_norm = nn.LayerNorm(hidden_size)
        self.attention = AVCANetAttention(hidden_size, num_heads, attention_dropout)
        self.feed_forward_norm = nn.LayerNorm(hidden_size)
        self.feed_forward = nn.Sequential(
            nn.Linear(hidden_size, intermediate_size),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(intermediate_size, hidden_size),
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, query, key, value, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        query = query + self.dropout(self.attention(self.attention_norm(query), key, value, attention_mask))
        return query + self.dropout(self.feed_forward(self.feed_forward_norm(query)))


class AVCANetGatedCrossModalBlock(nn.Module):
    """Banded self-attention per modality and shared cross-modal attention, merged by sigmoid gates."""

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        layer_args = (
            config.hidden_size,
            config.num_attention_heads,
            config.intermediate_size,
            config.fusion_dropout,
            config.attention_dropout,
        )
        self.visual_self_attention = AVCANetAttentionLayer(*layer_args)
        self.audio_self_attention = AVCANetAttentionLayer(*layer_args)
        self.cross_modal_attention = AVCANetAttentionLayer(*layer_args)
        self.visual_self_gate = nn.Linear(2 * config.hidden_size, config.hidden_size)
        self.visual_cross_gate = nn.Linear(2 * config.hidden_size, config.hidden_size)
        self.audio_self_gate = nn.Linear(2 * config.hidden_size, config.hidden_size)
        self.audio_cross_gate = nn.Linear(2 * config.hidden_size, config.hidden_size)

    def forward(self, visual, audio, attention_mask):
        visual_self = self.visual_self_attention(visual, visual, visual, attention_mask)
        audio_self = self.audio_self_attention(audio, audio, audio, attention_mask)
        visual_cross = self.cross_modal_attention(visual, audio, audio, attention_mask)
        audio_cross = self.cross_modal_attention(audio, visual, visual, attention_mask)
        visual_both = torch.cat([visual_self, visual_cross], dim=-1)  # (B, S, 2*hidden)
        audio_both = torch.cat([audio_self, audio_cross], dim=-1)
        visual = torch.sigmoid(self.visual_self_gate(visual_both)) * visual_self + torch.sigmoid(
            self.visual_cross_gate(visual_both)
        ) * visual_cross
        audio = torch.sigmoid(self.audio_self_gate(audio_both)) * audio_self + torch.sigmoid(
            self.audio_cross_gate(audio_both)
        ) * audio_cross
        return visual, audio


class AVCANetTemporalBlock(nn.Module):
    """Dilated temporal convolution with a residual connection (the release's TCN `TemporalBlock`)."""

    def __init__(self, hidden_size: int, kernel_size: int, dilation: int):
        super().__init__()
        self.dilated_conv = nn.Conv1d(
            hidden_size, hidden_size, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2
        )
        self.pointwise_conv = nn.Conv1d(hidden_size, hidden_size, kernel_size=1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        # (B, S, hidden) -> (B, hidden, S) for the convolutions
        channels_first = hidden.transpose(1, 2)
        out = self.pointwise_conv(F.relu(self.dilated_conv(channels_first)))
        return F.relu(out + channels_first).transpose(1, 2)  # (B, S, hidden)


class AVCANetPyramidLevel(GradientCheckpointingLayer):
    """One level of the local pyramid: attention within +-reach segments, then convolution with dilation reach."""

    def __init__(self, config: AVCANetConfig, level: int):
        super().__init__()
        self.reach = 2**level
        self.cross_modal_block = AVCANetGatedCrossModalBlock(config)
        self.visual_temporal = AVCANetTemporalBlock(config.hidden_size, config.temporal_kernel_size, self.reach)
        self.audio_temporal = AVCANetTemporalBlock(config.hidden_size, config.temporal_kernel_size, self.reach)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor):
        attention_mask = band_attention_mask(visual.shape[1], self.reach, visual.device)
        visual, audio = self.cross_modal_block(visual, audio, attention_mask)
        return self.visual_temporal(visual), self.audio_temporal(audio)


class AVCANetLevelWeighting(nn.Module):
    """
    Sums the pyramid levels of each segment with learned weights: a sigmoid score per level and modality, shifted by
    a width-1 cross-modal attention over the levels (the release's `SemanticFusionModule`).
    """

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        self.visual_score = nn.Linear(config.hidden_size, 1)
        self.audio_score = nn.Linear(config.hidden_size, 1)
        self.cross_modal_attention = AVCANetAttentionLayer(1, 1, 1, dropout=0.0, attention_dropout=0.0)

    def forward(self, visual_levels: torch.Tensor, audio_levels: torch.Tensor):
        batch_size, num_segments, num_levels, hidden_size = visual_levels.shape
        # (B, S, L, hidden) -> (B*S, L, hidden): attention runs across the levels of one segment
        visual_levels = visual_levels.reshape(batch_size * num_segments, num_levels, hidden_size)
        audio_levels = audio_levels.reshape(batch_size * num_segments, num_levels, hidden_size)
        visual_weight = torch.sigmoid(self.visual_score(visual_levels))  # (B*S, L, 1)
        audio_weight = torch.sigmoid(self.audio_score(audio_levels))
        visual_weight, audio_weight = (
            self.cross_modal_attention(visual_weight, audio_weight, audio_weight),
            self.cross_modal_attention(audio_weight, visual_weight, visual_weight),
        )
        visual = (visual_levels * visual_weight).sum(dim=1)  # (B*S, hidden)
        audio = (audio_levels * audio_weight).sum(dim=1)
        return visual.view(batch_size, num_segments, hidden_size), audio.view(batch_size, num_segments, hidden_size)


class AVCANetGlobalCrossAttention(nn.Module):
    """Bidirectional cross-attention over all segments with residual; the temporal mean is taken by the caller."""

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        self.attention = nn.MultiheadAttention(config.hidden_size, config.global_num_attention_heads, batch_first=True)
        self.audio_output = nn.Linear(config.hidden_size, config.hidden_size)
        self.visual_output = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor):
        audio_attended = self.attention(audio, visual, visual, need_weights=False)[0]  # (B, S, hidden)
        visual_attended = self.attention(visual, audio, audio, need_weights=False)[0]
        audio = self.audio_output(audio_attended) + audio
        visual = self.visual_output(visual_attended) + visual
        return visual, audio  # (B, S, hidden) each


class AVCANetLocalGlobalFusion(nn.Module):
    """The Local-Global Fusion (LGF) module: local multi-scale pyramid, level weighting, global cross-attention."""

    def __init__(self, config: AVCANetConfig):
        super().__init__()
        self.pyramid = nn.ModuleList(AVCANetPyramidLevel(config, level) for level in range(config.num_pyramid_levels))
        self.level_weighting = AVCANetLevelWeighting(config)
        self.global_attention = AVCANetGlobalCrossAttention(config)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor):
        visual_states, audio_states = [visual], [audio]
        for level in self.pyramid:
            visual, audio = level(visual, audio)
            visual_states.append(visual)
            audio_states.append(audio)
        # each level's output (B, S, hidden) stacked to (B, S, L, hidden)
        visual, audio = self.level_weighting(torch.stack(visual_states[1:], dim=2), torch.stack(audio_states[1:], dim=2))
        visual_states.append(visual)
        audio_states.append(audio)
        visual_segments, audio_segments = self.global_attention(visual, audio)  # (B, S, hidden) each
        return visual_segments, audio_segments, tuple(visual_states), tuple(audio_states)


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------


class AVCANetPreTrainedModel(PreTrainedModel):
    config_class = AVCANetConfig
    config: AVCANetConfig
    base_model_prefix = "avcanet"
    main_input_name = "pixel_values_videos"
    input_modalities = ["video", "audio"]
    supports_gradient_checkpointing = True
    _no_split_modules = ["AVCANetPyramidLevel", "SwinTransformerBlock", "BasicBlock"]
    # forward reduces its loss by `num_items_in_batch`, so Trainer must pass it and must not divide by accumulation
    accepts_loss_kwargs = True

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Conv2d):
            # torchvision's ResNet initialisation
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            # torchvision's Swin initialisation
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, ShiftedWindowAttention3d):
            init.trunc_normal_(module.relative_position_bias_table, std=std)
        elif isinstance(module, AVCANetModel):
            init.normal_(module.missing_audio_embedding, std=std)
        else:
            super()._init_weights(module)


class AVCANetModel(AVCANetPreTrainedModel):
    """Both branches and the Local-Global Fusion: a fused audio embedding and a fused visual embedding per video."""

    def __init__(self, config: AVCANetConfig):
        super().__init__(config)
        self.visual_branch = AVCANetVisualBranch(config)
        self.audio_branch = AVCANetAudioBranch(config)
        # stands in for the audio segments of clips whose file has no audio track
        self.missing_audio_embedding = nn.Parameter(torch.zeros(config.hidden_size))
        self.fusion = AVCANetLocalGlobalFusion(config)
        self.post_init()

    def forward(
        self,
        pixel_values_videos: torch.Tensor,
        input_features: torch.Tensor,
        audio_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> AVCANetModelOutput:
        r"""
        pixel_values_videos (`torch.FloatTensor` of shape `(batch_size, num_segments * frames_per_segment, channels, height, width)`):
            Normalised frames, segment after segment (`AVCANetProcessor` makes them).
        input_features (`torch.FloatTensor` of shape `(batch_size, num_mel_bins, num_segments * audio_frames_per_segment)`):
            Log-mel spectrogram, segment after segment, aligned in time with the frames.
        audio_mask (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            1 for clips with an audio track, 0 for clips without one. Defaults to all ones.
        """
        visual = self.visual_branch(pixel_values_videos.to(self.dtype))  # (B, S, hidden)
        audio = self.audio_branch(input_features.to(self.dtype))  # (B, S, hidden)
        if audio_mask is not None:
            has_audio = audio_mask.to(device=audio.device, dtype=torch.bool)[:, None, None]  # (B, 1, 1)
            audio = torch.where(has_audio, audio, self.missing_audio_embedding.to(audio.dtype))
        visual_segments, audio_segments, visual_states, audio_states = self.fusion(visual, audio)
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        return AVCANetModelOutput(
            audio_embeds=audio_segments.mean(dim=1),  # (B, hidden): the release's temporal mean
            visual_embeds=visual_segments.mean(dim=1),
            audio_hidden_states=audio_states if output_hidden_states else None,
            visual_hidden_states=visual_states if output_hidden_states else None,
            audio_segment_embeds=audio_segments,
            visual_segment_embeds=visual_segments,
        )


class AVCANetForVideoClassification(AVCANetPreTrainedModel):
    """AV-CANet with its concatenation classifier, unimodal heads and EP-CE loss."""

    def __init__(self, config: AVCANetConfig):
        super().__init__(config)
        self.avcanet = AVCANetModel(config)
        # audio first, as in the release's ConcatFusion
        self.classifier = nn.Linear(2 * config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        pixel_values_videos: torch.Tensor,
        input_features: torch.Tensor,
        audio_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **kwargs,
    ) -> AVCANetVideoClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices; when given, the EP-CE (or CE) loss of the fused and unimodal logits is returned.
        num_items_in_batch (`int`, *optional*):
            Samples in the whole accumulated batch (Trainer passes it); the loss is its sum divided by this.
        """
        outputs = self.avcanet(pixel_values_videos, input_features, audio_mask, output_hidden_states)
        hidden_size = self.config.hidden_size
        # The classifier is linear and follows the temporal mean, so it is applied to every segment and averaged after:
        # the same logits, and per-segment ones whose mean they are. Each half of the shared classifier scores one
        # modality alone and gets half the bias (OGM-GE style), so the two halves sum to the fused scores.
        audio_segment_logits = F.linear(
            outputs.audio_segment_embeds, self.classifier.weight[:, :hidden_size], self.classifier.bias / 2
        )  # (B, S, labels)
        visual_segment_logits = F.linear(
            outputs.visual_segment_embeds, self.classifier.weight[:, hidden_size:], self.classifier.bias / 2
        )
        segment_logits = audio_segment_logits + visual_segment_logits
        logits = segment_logits.mean(dim=1)  # (B, labels)
        audio_logits = audio_segment_logits.mean(dim=1)
        visual_logits = visual_segment_logits.mean(dim=1)

        loss = None
        if labels is not None:
            loss = self.loss(logits, audio_logits, visual_logits, labels, audio_mask, num_items_in_batch)
        return AVCANetVideoClassifierOutput(
            loss=loss,
            logits=logits,
            audio_logits=audio_logits,
            visual_logits=visual_logits,
            audio_hidden_states=outputs.audio_hidden_states,
            visual_hidden_states=outputs.visual_hidden_states,
            segment_logits=segment_logits,
            audio_segment_logits=audio_segment_logits,
            visual_segment_logits=visual_segment_logits,
        )

    def loss(self, logits, audio_logits, visual_logits, labels, audio_mask=None, num_items_in_batch=None):
        """EP-CE of the fused logits + `auxiliary_loss_weight` x (audio-only + visual-only), on the logits' device."""
        config = self.config
        ep_ce = config.classification_loss == "ep_ce"
        # plain cross-entropy is EP-CE with every penalty at zero
        class_polarity = torch.tensor(config.polarity_ids if ep_ce else [0] * config.num_labels)
        polarity_penalty = torch.tensor([config.polarity_penalties[name] if ep_ce else 0.0 for name in POLARITIES])
        labels = labels.to(logits.device)
        has_audio = None if audio_mask is None else audio_mask.to(logits.device)

        def term(scores, sample_weight=None):
            return ep_ce_loss(scores, labels, class_polarity, polarity_penalty, sample_weight, num_items_in_batch)

        return term(logits) + config.auxiliary_loss_weight * (term(audio_logits, has_audio) + term(visual_logits))

    @classmethod
    def from_pretrained_backbones(cls, visual=None, audio=None, config: AVCANetConfig | None = None, **config_kwargs):
        r"""
        A new model whose branches start from pretrained backbones, the rest (projections, fusion, classifier) fresh;
        save it with `save_pretrained` and fine-tune.

        Args:
            visual (*optional*):
                torchvision's `Swin3D_T_Weights.KINETICS400_V1` or a local swin3d state-dict file; a 2-D Swin
                checkpoint (transformers folder or hub id, or the original `.pth`), inflated to 3-D as the authors
                did; or, for the `vision_config` branch, a transformers video model folder or hub id (when `config`
                has no `vision_config`, the model's config is taken, set to one segment's frames and size).
            audio (*optional*):
                torchvision's `ResNet34_Weights.IMAGENET1K_V1` or a local ResNet state-dict file; its RGB stem is
                adapted to the one-channel audio stem and its `fc` is unused.
            config (`AVCANetConfig`, *optional*), **config_kwargs:
                The configuration, or the keyword arguments of one.

        Returns:
            `(model, report)`: the model in eval mode, and a `BackboneLoadingReport` listing every tensor loaded,
            adapted (with how) or left fresh, and every source tensor left unused (`print(report)`).
        """
        from .backbone_weights import load_pretrained_backbones

        return load_pretrained_backbones(cls, visual=visual, audio=audio, config=config, **config_kwargs)


__all__ = [
    "AVCANetPreTrainedModel",
    "AVCANetModel",
    "AVCANetForVideoClassification",
    "AVCANetModelOutput",
    "AVCANetVideoClassifierOutput",
]
