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

Deviations from the authors' release, and why (the eval forward and the gradients match the release to float64
rounding on the same weights, `../shared/docs/release-parity.md`; every remaining difference is listed here):
- The release references two modules it never builds (`MMP_Module`, `attention_module`). The local pyramid is built
  with the upstream MM-Pyramid defaults (4 levels, width 512, feed-forward 512, 8 heads, dropout 0.5); the global
  cross-attention is one `nn.MultiheadAttention(512, 8)`-equivalent shared by both directions, as the release's call
  signature implies, written as separate q/k/v/o projections (same maths; `examples/convert_original_checkpoint.py`
  splits the packed `in_proj`) so that offload and adapter hooks see every projection.
- The release tiles MFCC-32 to 47.6 s; we take a log-mel spectrogram cut so that audio segment i covers the same
  time as visual segment i (see the processor; its `audio_features="mfcc"` setting gives the release's layout, for
  converted checkpoints). The ResNet ends in an adaptive pool, so any segment size works.
- Clips without an audio track get a learned "missing audio" embedding in place of their audio segments, and no
  audio-only loss: the release always fed the network whatever its loader produced.
- Pixel normalisation (`x / 255 - 100 / 255`) is done by the processor, not in place inside `forward` (the release
  changed a caller's tensor).
- The release built its banded masks with a Python loop and `.cuda()` on every call; ours are computed on the
  input's device with no per-element loop, and the attention uses `scaled_dot_product_attention` (a boolean band is
  the release's `-1e9` fill, since no query has all its keys masked; `attn_implementation="eager"` computes it so).
- Parameters the release builds but never uses (the Swin classification head, the ResNet `fc`, an unused
  LayerNorm in its attention, template layers) are not built, so DDP needs no `find_unused_parameters`.
- Every hard-coded size (16 segments, 512 width, 768 Swin features) is a config field.
- Initialisation of fresh modules: linear layers take trunc-normal(`initializer_range` 0.02) where the release kept
  PyTorch's default (about the same scale at these widths: std 0.026 at fan-in 512), except the width-1 layers of the
  level weighting, which take the release's U(-1, 1) (at 0.02 they would start as a no-op).
- Kept on purpose for faithfulness: the level-weighting attention works on width-1 scores, so its query LayerNorm
  always outputs its bias (the release's degenerate `LayerNorm(1)`), and drops its attention probabilities with
  `attention_dropout` (0.1) in training as the release does; only the query of each attention layer is layer-normed,
  keys and values are raw; one cross-modal attention layer is shared by both directions.
- Training-side differences (not in this file): EP-CE is the default loss (the release defaults to plain CE), computed
  in float32 (the release promotes penalised samples to float64); validation uses centre windows (the release's
  training script validated on random ones); `examples/train.py` runs the paper's warm-up + cosine schedule (the
  release's loop set the learning rate with `n_epochs` instead of the epoch, so it trained at the minimum, 1.5e-6).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, can_return_tuple

from .branches_avcanet import AVCANetAudioBranch, AVCANetVisualBranch, relative_position_index
from .configuration_avcanet import POLARITIES, AVCANetConfig
from .loss_avcanet import ep_ce_loss
from .pipeline_files import copy_pipeline_code


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
# Local-Global Fusion module
# ---------------------------------------------------------------------------------------------------------------


def band_attention_mask(length: int, reach: int, device: torch.device) -> torch.Tensor:
    """`(length, length)` boolean mask: query t may attend key j when |t - j| <= reach. Built on every call: it costs
    two small ops, and a cached tensor made while tracing (torch.export, ONNX, a fake mode) would leak into eager calls."""
    positions = torch.arange(length, device=device)
    return (positions[:, None] - positions[None, :]).abs() <= reach


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Explicit softmax attention; `attention_mask` is boolean (True: may attend), masked scores get the release's
    `-1e9`. Takes and returns the layout of transformers' attention functions."""
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (N, heads, L_q, L_k)
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, -1e9)
    weights = F.dropout(F.softmax(scores, dim=-1), p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights  # (N, L_q, heads, head_dim)


class AVCANetAttention(nn.Module):
    """
    Multi-head attention with separate query, key, value and output projections (the release's `MultiHeadAttention`
    without its unused LayerNorm; also its global `nn.MultiheadAttention`, whose packed `in_proj` is these three
    projections). Every projection is called as a module, so offload and adapter hooks see each of them.
    """

    is_causal = False

    def __init__(self, config: AVCANetConfig, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.scaling = self.head_dim**-0.5
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
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, eager_attention_forward)
        attended, _ = attention_interface(
            self, query, key, value, attention_mask, scaling=self.scaling, dropout=self.dropout if self.training else 0.0
        )
        # (N, L, heads, head_dim) -> (N, L, hidden)
        attended = attended.reshape(batch_size, query_length, hidden_size)
        return self.o_proj(attended)


class AVCANetAttentionLayer(nn.Module):
    """Pre-norm attention + feed-forward layer; only the query is layer-normed (the release's `TransformerLayer`)."""

    def __init__(
        self,
        config: AVCANetConfig,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        dropout: float,
        attention_dropout: float,
    ):
        super().__init__()
        self.attention_norm = nn.LayerNorm(hidden_size)
        self.attention = AVCANetAttention(config, hidden_size, num_heads, attention_dropout)
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
            config,
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
        # the release's `MultiHeadAttention(1, 1)`: its default dropout 0.1 acts on the attention probabilities only
        self.cross_modal_attention = AVCANetAttentionLayer(
            config, 1, 1, 1, dropout=0.0, attention_dropout=config.attention_dropout
        )

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
        # the release's `nn.MultiheadAttention(hidden, heads)`: no dropout, scaled dot product, packed q/k/v
        self.attention = AVCANetAttention(config, config.hidden_size, config.global_num_attention_heads, dropout=0.0)
        self.audio_output = nn.Linear(config.hidden_size, config.hidden_size)
        self.visual_output = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, visual: torch.Tensor, audio: torch.Tensor):
        audio_attended = self.attention(audio, visual, visual)  # (B, S, hidden)
        visual_attended = self.attention(visual, audio, audio)
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
    # "sdpa" (the default) and "eager" in every attention layer; see `AVCANetWindowAttention3d` for the Swin windows
    _supports_sdpa = True
    _no_split_modules = ["AVCANetPyramidLevel", "AVCANetSwinTransformerBlock", "BasicBlock"]
    # forward reduces its loss by `num_items_in_batch`, so Trainer must pass it and must not divide by accumulation
    accepts_loss_kwargs = True

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, plus the code of the pipeline the config names (`pipeline_files`): on a
        folder without the processor, `pipeline()` then says to save the processor there too."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            copy_pipeline_code(save_directory)

    @torch.no_grad()
    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Conv2d):
            # torchvision's ResNet initialisation
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Linear) and module.in_features == 1:
            # the width-1 layers of the level weighting: PyTorch's default, as in the release, U(-1, 1) for fan-in 1
            # (at std 0.02 every level weight would start at ~sigmoid(0) and the level attention would do nothing)
            init.uniform_(module.weight, -1.0, 1.0)
            init.uniform_(module.bias, -1.0, 1.0)
        elif isinstance(module, nn.Linear):
            # torchvision's Swin initialisation; PyTorch's default (the release's) has about the same scale at these
            # widths (std 1 / sqrt(3 * fan_in): 0.026 at 512)
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, ShiftedWindowAttention3d):
            init.trunc_normal_(module.relative_position_bias_table, std=std)
            # a buffer: after a meta-device construction (`from_pretrained`, FSDP2, `init_empty_weights`) it holds garbage
            index = module.relative_position_index
            init.copy_(index, relative_position_index(module.window_size, index.device))
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

    def get_input_embeddings(self) -> nn.Module:
        """The patch projection of the visual backbone (what video models in transformers return)."""
        return self.visual_branch.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module):
        self.visual_branch.encoder.set_input_embeddings(value)

    @can_return_tuple
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


class AVCANetConcatClassifier(nn.Linear):
    """
    `Linear([a; v])` (the release's `ConcatFusion`, audio first), returned as its two halves: the audio half of the
    weight with half the bias scores the audio alone, the visual half with the other half the visual alone (OGM-GE
    style); they sum to the fused scores. The halves are read inside this module's own forward, so offload hooks have
    loaded them.
    """

    def __init__(self, config: AVCANetConfig):
        super().__init__(2 * config.hidden_size, config.num_labels)
        self.hidden_size = config.hidden_size

    def forward(self, audio: torch.Tensor, visual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        audio_logits = F.linear(audio, self.weight[:, : self.hidden_size], self.bias / 2)
        visual_logits = F.linear(visual, self.weight[:, self.hidden_size :], self.bias / 2)
        return audio_logits, visual_logits


class AVCANetForVideoClassification(AVCANetPreTrainedModel):
    """AV-CANet with its concatenation classifier, unimodal heads and EP-CE loss."""

    def __init__(self, config: AVCANetConfig):
        super().__init__(config)
        self.avcanet = AVCANetModel(config)
        # audio first, as in the release's ConcatFusion
        self.classifier = AVCANetConcatClassifier(config)
        self.post_init()

    @can_return_tuple
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
        outputs = self.avcanet(pixel_values_videos, input_features, audio_mask, output_hidden_states, return_dict=True)
        # The classifier is linear and follows the temporal mean, so it is applied to every segment and averaged after:
        # the same logits, and per-segment ones whose mean they are.
        audio_segment_logits, visual_segment_logits = self.classifier(
            outputs.audio_segment_embeds, outputs.visual_segment_embeds
        )  # (B, S, labels) each
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
