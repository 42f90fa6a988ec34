"""
Pretrained initialisation of AV-CANet's two branches (`AVCANetForVideoClassification.from_pretrained_backbones`).

AV-CANet is trained from pretrained backbones: the authors inflate the 2-D ImageNet-22K Swin-T to the 3-D visual
branch and start the audio ResNet-34 from ImageNet. Their loader used `load_state_dict(strict=False)`, which left
the audio stem silently random (spec section 10, item 13). Here every tensor of the model is accounted for: copied
from a source (`loaded`), derived from one (`adapted`, with how), or left at its fresh initialisation (`fresh`), and
every source tensor that was not used is listed too (`unused`).

Sources, each optional:
- visual, Swin branch: torchvision's `swin3d_t` weights (the `Swin3D_T_Weights` enum or a local state-dict file),
  or a 2-D Swin checkpoint (transformers `SwinModel`/`SwinForImageClassification` folder or hub id, or the
  original Microsoft `.pth`) inflated to 3-D;
- visual, `vision_config` branch: a transformers video model (folder or hub id) of the same type;
- audio: a torchvision ImageNet ResNet (the `ResNet34_Weights` enum or a local state-dict file).

Files are read with safetensors or `torch.load(weights_only=True)` only: nothing is unpickled.
"""

import copy
import os
import re
from dataclasses import dataclass, field

import torch
from safetensors.torch import load_file
from torch import nn
from torchvision.models._api import WeightsEnum
from torchvision.models.video.swin_transformer import ShiftedWindowAttention3d
from transformers import AutoConfig, AutoModel, PreTrainedConfig
from transformers.utils import logging

from .configuration_avcanet import AVCANetConfig

logger = logging.get_logger(__name__)

# formats a source is read as (`BackboneLoadingReport.formats`)
TORCHVISION_SWIN3D = "torchvision-swin3d"
SWIN2D_ORIGINAL = "swin2d-original"
SWIN2D_TRANSFORMERS = "swin2d-transformers"
TRANSFORMERS_VIDEO = "transformers-video"
TORCHVISION_RESNET = "torchvision-resnet"

STATE_DICT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")

# The clip geometry of a transformers video config that must match one AV-CANet segment, by AV-CANet field.
SEGMENT_GEOMETRY = {"num_frames": "frames_per_segment", "image_size": "image_size", "num_channels": "num_channels"}


# ---------------------------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class BackboneLoadingReport:
    r"""
    Where every tensor of a model built by `from_pretrained_backbones` came from.

    Args:
        sources (`dict[str, str]`): the source of each initialised branch (`"visual"`, `"audio"`): path, hub id or
            weights enum.
        formats (`dict[str, str]`): the format each source was read as, e.g. `"swin2d-original"`.
        loaded (`list[str]`): model state-dict entries copied unchanged from a source tensor.
        adapted (`dict[str, str]`): model state-dict entries derived from source tensors, with how.
        fresh (`list[str]`): model state-dict entries left at their initialisation (fusion, heads, projections, and
            buffers computed from the architecture such as a 3-D `relative_position_index`).
        unused (`dict[str, list[str]]`): per branch, the source tensors nothing was taken from.
        parameter_sizes (`dict[str, int]`): number of elements of every model parameter (buffers are absent), so
            that the categories can be counted in parameters.
    """

    sources: dict[str, str] = field(default_factory=dict)
    formats: dict[str, str] = field(default_factory=dict)
    loaded: list[str] = field(default_factory=list)
    adapted: dict[str, str] = field(default_factory=dict)
    fresh: list[str] = field(default_factory=list)
    unused: dict[str, list[str]] = field(default_factory=dict)
    parameter_sizes: dict[str, int] = field(default_factory=dict)

    def num_parameters(self, names) -> int:
        """Parameters held by the given state-dict entries (buffers count zero)."""
        return sum(self.parameter_sizes.get(name, 0) for name in names)

    def __str__(self) -> str:
        every_entry = [*self.loaded, *self.adapted, *self.fresh]
        lines = ["AV-CANet initialisation from pretrained backbones"]
        for branch, origin in self.sources.items():
            lines.append(f"  {branch}: {self.formats[branch]} from {origin}")
        lines.append(f"loaded: {_count(self, self.loaded)}")
        for prefix in _collapse(self.loaded, every_entry):
            lines.append(f"  {prefix}")
        lines.append(f"adapted: {_count(self, self.adapted)}")
        for name, how in self.adapted.items():
            lines.append(f"  {name}: {how}")
        lines.append(f"fresh (left at initialisation): {_count(self, self.fresh)}")
        for prefix in _collapse(self.fresh, every_entry):
            lines.append(f"  {prefix}")
        for branch, names in self.unused.items():
            lines.append(f"unused {branch} source tensors: {len(names)}")
            lines.extend(f"  {name}" for name in names)
        return "\n".join(lines)


def _count(report: BackboneLoadingReport, names) -> str:
    return f"{len(names)} tensors, {report.num_parameters(names):,} parameters"


def _collapse(names, every_entry) -> list[str]:
    """
    `names` written compactly: a module whose entries are all in `names` is shown once as `module.*`, at the
    shallowest such module, so a fully fresh fusion module is one line while a lone fresh buffer stays visible.
    """
    chosen = set(names)

    def prefixes(name):
        parts = name.split(".")
        return [".".join(parts[:end]) for end in range(1, len(parts))]

    # entries under each module prefix, overall and in `names`
    total, inside = {}, {}
    for name in every_entry:
        for prefix in prefixes(name):
            total[prefix] = total.get(prefix, 0) + 1
            inside[prefix] = inside.get(prefix, 0) + (name in chosen)
    shown = []
    for name in names:
        entry = next((f"{prefix}.*" for prefix in prefixes(name) if inside[prefix] == total[prefix]), name)
        if entry not in shown:
            shown.append(entry)
    return shown


# ---------------------------------------------------------------------------------------------------------------
# Reading sources
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class SourceCheckpoint:
    """The tensors of one source, before they are mapped onto a branch."""

    format: str
    origin: str
    state_dict: dict[str, torch.Tensor]
    # source tensors already known to be unused (e.g. a classifier that `from_pretrained` dropped)
    unused: list[str] = field(default_factory=list)
    # transformers video sources: the backbone config the tensors fit
    config: PreTrainedConfig | None = None


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """
    A state dict from a `.safetensors` file, or from a torch file read with `weights_only=True` (no unpickling of
    arbitrary objects). The original Swin checkpoints wrap their state dict in a top-level `"model"` key.
    """
    if str(path).endswith(".safetensors"):
        return load_file(path)
    state_dict = torch.load(path, map_location="cpu", weights_only=True)
    if "model" in state_dict and isinstance(state_dict["model"], dict):
        state_dict = state_dict["model"]
    return state_dict


def _state_dict_source(source) -> tuple[dict[str, torch.Tensor], str]:
    """A torchvision weights enum (downloaded by torchvision, read with `weights_only=True`) or a local file."""
    if isinstance(source, WeightsEnum):
        return source.get_state_dict(progress=True, check_hash=True, weights_only=True), f"torchvision {source!r}"
    if not os.path.isfile(source):
        raise FileNotFoundError(f"No state-dict file at {source}.")
    return load_state_dict_file(source), str(source)


def _is_state_dict_source(source) -> bool:
    """A weights enum or a file; anything else is a transformers folder or hub id."""
    return isinstance(source, WeightsEnum) or os.path.isfile(source) or str(source).endswith(STATE_DICT_SUFFIXES)


def swin_checkpoint_format(state_dict: dict[str, torch.Tensor]) -> str:
    """Which Swin layout a state dict has: torchvision 3-D, original Microsoft 2-D, or transformers 2-D."""
    patch_embedding = state_dict.get("patch_embed.proj.weight")
    if patch_embedding is not None:
        return TORCHVISION_SWIN3D if patch_embedding.ndim == 5 else SWIN2D_ORIGINAL
    if any(name.removeprefix("swin.") == "embeddings.patch_embeddings.projection.weight" for name in state_dict):
        return SWIN2D_TRANSFORMERS
    raise ValueError(
        "Not a Swin checkpoint this loader knows (torchvision swin3d, original Swin .pth, transformers Swin); "
        f"its first keys are {list(state_dict)[:5]}."
    )


def _segment_vision_config(source_config: PreTrainedConfig, config: AVCANetConfig) -> PreTrainedConfig:
    """
    The source's config with its clip geometry set to one AV-CANet segment: the visual branch feeds every segment
    to the backbone as one clip, so e.g. VideoMAE-base (16 frames of 224) becomes 8 frames of 112. Parameter shapes
    that depend on the geometry (learned position embeddings) then fail loudly in `from_pretrained`.
    """
    vision_config = copy.deepcopy(source_config)
    for name, avcanet_name in SEGMENT_GEOMETRY.items():
        if hasattr(vision_config, name):
            setattr(vision_config, name, getattr(config, avcanet_name))
    return vision_config


def _transformers_source(source: str, vision_config: PreTrainedConfig | None, format: str) -> SourceCheckpoint:
    """A transformers checkpoint through `AutoModel.from_pretrained`, keeping only the tensors it actually read."""
    model, info = AutoModel.from_pretrained(source, config=vision_config, output_loading_info=True)
    missing = set(info["missing_keys"])  # initialised by transformers, not read from the checkpoint
    state_dict = {name: tensor for name, tensor in model.state_dict().items() if name not in missing}
    return SourceCheckpoint(format, str(source), state_dict, sorted(info["unexpected_keys"]), model.config)


def read_visual_source(source, config: AVCANetConfig) -> SourceCheckpoint:
    """Reads a visual source: a state-dict file or weights enum, or a transformers folder / hub id."""
    if _is_state_dict_source(source):
        state_dict, origin = _state_dict_source(source)
        return SourceCheckpoint(swin_checkpoint_format(state_dict), origin, state_dict)
    source_config = AutoConfig.from_pretrained(source)
    if source_config.model_type == "swin":
        return _transformers_source(source, None, SWIN2D_TRANSFORMERS)
    if config.vision_config is None:
        return _transformers_source(source, _segment_vision_config(source_config, config), TRANSFORMERS_VIDEO)
    if config.vision_config.model_type != source_config.model_type:
        raise ValueError(
            f"config.vision_config is a {config.vision_config.model_type!r} model but {source} is a "
            f"{source_config.model_type!r} model."
        )
    return _transformers_source(source, config.vision_config, TRANSFORMERS_VIDEO)


def read_audio_source(source) -> SourceCheckpoint:
    """Reads an audio source: a torchvision ResNet weights enum or state-dict file."""
    state_dict, origin = _state_dict_source(source)
    if "conv1.weight" not in state_dict or "layer1.0.conv1.weight" not in state_dict:
        raise ValueError(
            f"{origin} is not a torchvision ResNet state dict; its first keys are {list(state_dict)[:5]}."
        )
    return SourceCheckpoint(TORCHVISION_RESNET, origin, state_dict)


# ---------------------------------------------------------------------------------------------------------------
# Adapting tensors
# ---------------------------------------------------------------------------------------------------------------


def inflate_patch_embedding(weight: torch.Tensor, num_frames: int) -> torch.Tensor:
    """
    A 2-D patch-embedding kernel `(out, in, h, w)` as a 3-D one `(out, in, num_frames, h, w)`: repeated over time
    and divided by `num_frames` (I3D inflation), so a clip of identical frames embeds exactly like the image.
    """
    return weight.unsqueeze(2).repeat(1, 1, num_frames, 1, 1) / num_frames


def tile_relative_position_bias(table: torch.Tensor, window_size: list[int]) -> torch.Tensor:
    """
    A 2-D relative-position bias table `((2Wh-1)(2Ww-1), heads)` as the 3-D table
    `((2Wt-1)(2Wh-1)(2Ww-1), heads)` of a `(Wt, Wh, Ww)` window: one copy per temporal offset.

    torchvision's `ShiftedWindowAttention3d` (like Video Swin) indexes its table with
    `dt * (2Wh-1)(2Ww-1) + dh * (2Ww-1) + dw`: the temporal offset varies slowest and the spatial part is the 2-D
    Swin index `dh * (2Ww-1) + dw`. Stacking the 2-D table `2Wt-1` times therefore gives every token pair the 2-D
    bias of its spatial offset, whatever their temporal offset.
    """
    window_time, window_height, window_width = window_size
    spatial_offsets = (2 * window_height - 1) * (2 * window_width - 1)
    if table.shape[0] != spatial_offsets:
        raise ValueError(
            f"A 2-D relative-position table of {table.shape[0]} rows does not fit the spatial window "
            f"{window_height}x{window_width} ({spatial_offsets} rows): the 2-D Swin must have the same window."
        )
    return table.repeat(2 * window_time - 1, 1)


def adapt_audio_stem(weight: torch.Tensor, target_shape: torch.Size) -> torch.Tensor:
    """
    An ImageNet stem `(64, 3, 7, 7)` as the audio stem `(64, 1, 7, 1)` (kernel over time x mel bins).

    Summing the RGB kernels gives the response of the image network to a grey image (the usual way of feeding one
    channel to an RGB stem); summing the 7 kernel columns likewise gives its response to an input that is constant
    over 7 neighbouring mel bins. The adapted stem thus computes exactly what the ImageNet stem computes on such
    inputs, so the BatchNorm statistics that follow it stay meaningful; the 7 rows act over time, where the stride
    of 2 is kept.
    """
    adapted = weight.sum(dim=1, keepdim=True).sum(dim=3, keepdim=True)
    if adapted.shape != target_shape:
        raise ValueError(f"Cannot adapt a stem kernel of shape {tuple(weight.shape)} to {tuple(target_shape)}.")
    return adapted


# ---------------------------------------------------------------------------------------------------------------
# Mapping sources onto branches
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class BranchWeights:
    """What one source provides for one branch, by the branch module's own state-dict names."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    adapted: dict[str, str] = field(default_factory=dict)
    unused: list[str] = field(default_factory=list)


def _by_name(state_dict, target_names, unused) -> BranchWeights:
    """Every source tensor whose name exists in the branch; the others are unused."""
    weights = BranchWeights(unused=list(unused))
    for name, tensor in state_dict.items():
        if name in target_names:
            weights.tensors[name] = tensor
        else:
            weights.unused.append(name)
    return weights


# transformers Swin names (both the serialised ones of Hub checkpoints and the in-memory ones of transformers 5)
# -> original Swin names; query/key/value become temporary `attn.q|k|v` parts of the fused `qkv`
TRANSFORMERS_TO_ORIGINAL_SWIN = [
    (r"^swin\.", ""),
    (r"^embeddings\.patch_embeddings\.projection\.", "patch_embed.proj."),
    (r"^embeddings\.norm\.", "patch_embed.norm."),
    (r"^encoder\.layers\.", "layers."),
    (r"^layernorm\.", "norm."),
    (r"\.layernorm_before\.", ".norm1."),
    (r"\.layernorm_after\.", ".norm2."),
    (
        r"\.attention\.(?:self|relative_position_bias)\.relative_position_bias_table$",
        ".attn.relative_position_bias_table",
    ),
    (r"\.attention\.(?:self\.query|q_proj)\.", ".attn.q."),
    (r"\.attention\.(?:self\.key|k_proj)\.", ".attn.k."),
    (r"\.attention\.(?:self\.value|v_proj)\.", ".attn.v."),
    (r"\.attention\.(?:output\.dense|o_proj)\.", ".attn.proj."),
    (r"\.intermediate\.dense\.", ".mlp.fc1."),
    (r"\.output\.dense\.", ".mlp.fc2."),
]

# original Swin names -> torchvision SwinTransformer3d names: stage i is `features[2i]`, the patch merging after
# it `features[2i+1]`; the MLP is a Sequential (Linear, GELU, Dropout, Linear, Dropout)
ORIGINAL_SWIN_TO_TORCHVISION = [
    (r"^layers\.(\d+)\.blocks\.(\d+)\.", lambda match: f"features.{2 * int(match[1])}.{match[2]}."),
    (r"^layers\.(\d+)\.downsample\.", lambda match: f"features.{2 * int(match[1]) + 1}."),
    (r"\.mlp\.fc1\.", ".mlp.0."),
    (r"\.mlp\.fc2\.", ".mlp.3."),
]

QKV_PART = re.compile(r"\.attn\.([qkv])\.(weight|bias)$")


def _rename(name: str, rules) -> str:
    for pattern, replacement in rules:
        name = re.sub(pattern, replacement, name)
    return name


def swin2d_target_name(name: str, format: str) -> str | None:
    """
    The torchvision 3-D name a 2-D Swin tensor maps to (before `qkv` fusion), or None for tensors that have no 3-D
    counterpart: the 2-D `relative_position_index` (the 3-D one is built from the 3-D window) and shift masks.
    """
    if name.endswith(("relative_position_index", "attn_mask")):
        return None
    if format == SWIN2D_TRANSFORMERS:
        name = _rename(name, TRANSFORMERS_TO_ORIGINAL_SWIN)
    return _rename(name, ORIGINAL_SWIN_TO_TORCHVISION)


def _fuse_qkv(parts: dict[str, torch.Tensor]) -> torch.Tensor:
    """transformers' separate projections as torchvision's fused one: output rows [query; key; value]."""
    return torch.cat([parts["q"], parts["k"], parts["v"]], dim=0)


def inflate_swin_2d(checkpoint: SourceCheckpoint, backbone: nn.Module) -> BranchWeights:
    """
    A 2-D Swin checkpoint (original or transformers layout) as weights of torchvision's `SwinTransformer3d`,
    inflated as the authors did: patch embedding repeated over time and divided, relative-position tables tiled
    over the temporal offsets, everything else (attention, MLP, norms, patch merging) copied by name.

    Patch merging needs no permutation: torchvision concatenates the 2x2 neighbours as (0,0), (1,0), (0,1), (1,1)
    (row, column) in every frame, the order of the original Swin and of transformers' `SwinPatchMerging`.
    """
    target = backbone.state_dict()
    weights = BranchWeights(unused=list(checkpoint.unused))
    qkv_parts: dict[str, dict[str, torch.Tensor]] = {}
    for name, tensor in checkpoint.state_dict.items():
        target_name = swin2d_target_name(name, checkpoint.format)
        part = QKV_PART.search(target_name) if target_name else None
        if part:
            target_name = f"{target_name[: part.start()]}.attn.qkv.{part[2]}"
        if target_name not in target:
            weights.unused.append(name)
        elif part:
            qkv_parts.setdefault(target_name, {})[part[1]] = tensor
        else:
            weights.tensors[target_name] = tensor

    for target_name, parts in qkv_parts.items():
        if set(parts) != {"q", "k", "v"}:
            raise ValueError(f"{checkpoint.origin} lacks some of the query/key/value projections of {target_name}.")
        weights.tensors[target_name] = _fuse_qkv(parts)
        weights.adapted[target_name] = "query, key and value projections concatenated"

    patch_name = "patch_embed.proj.weight"
    if patch_name in weights.tensors:
        num_frames = target[patch_name].shape[2]
        weights.tensors[patch_name] = inflate_patch_embedding(weights.tensors[patch_name], num_frames)
        weights.adapted[patch_name] = f"2-D kernel repeated over {num_frames} frames and divided by {num_frames}"

    window_sizes = {
        name: module.window_size
        for name, module in backbone.named_modules()
        if isinstance(module, ShiftedWindowAttention3d)
    }
    for target_name in [name for name in weights.tensors if name.endswith("relative_position_bias_table")]:
        window_size = window_sizes[target_name.removesuffix(".relative_position_bias_table")]
        weights.tensors[target_name] = tile_relative_position_bias(weights.tensors[target_name], window_size)
        weights.adapted[target_name] = f"2-D table tiled over the {2 * window_size[0] - 1} temporal offsets"
    return weights


def visual_branch_weights(checkpoint: SourceCheckpoint, backbone: nn.Module) -> BranchWeights:
    """The visual source's tensors for the visual backbone, in its own names."""
    if checkpoint.format in (SWIN2D_ORIGINAL, SWIN2D_TRANSFORMERS):
        return inflate_swin_2d(checkpoint, backbone)
    # torchvision swin3d and transformers video models share the backbone's names
    return _by_name(checkpoint.state_dict, backbone.state_dict(), checkpoint.unused)


def audio_branch_weights(checkpoint: SourceCheckpoint, backbone: nn.Module) -> BranchWeights:
    """
    ImageNet ResNet tensors for the audio ResNet, by name; the classifier `fc` has no counterpart (the branch ends
    in its own projection) and the RGB stem is adapted to the one-channel (7, 1) stem.
    """
    target = backbone.state_dict()
    weights = _by_name(checkpoint.state_dict, target, checkpoint.unused)
    stem = weights.tensors.get("conv1.weight")
    if stem is not None and stem.shape != target["conv1.weight"].shape:
        weights.tensors["conv1.weight"] = adapt_audio_stem(stem, target["conv1.weight"].shape)
        weights.adapted["conv1.weight"] = (
            f"{tuple(stem.shape)} RGB 7x7 kernel summed over its 3 input channels and its 7 columns (mel axis) "
            f"to {tuple(target['conv1.weight'].shape)}"
        )
    return weights


# ---------------------------------------------------------------------------------------------------------------
# Building the model
# ---------------------------------------------------------------------------------------------------------------


def _copy_into(module: nn.Module, weights: BranchWeights, origin: str):
    """Copies the tensors into the module, after checking every shape (one error lists all mismatches)."""
    target = module.state_dict(keep_vars=True)
    mismatched = [
        f"{name}: source {tuple(tensor.shape)}, model {tuple(target[name].shape)}"
        for name, tensor in weights.tensors.items()
        if tensor.shape != target[name].shape
    ]
    if mismatched:
        raise ValueError(
            f"{origin} does not fit the model's configuration; shape mismatches:\n  " + "\n  ".join(mismatched)
        )
    with torch.no_grad():
        for name, tensor in weights.tensors.items():
            target[name].copy_(tensor)


def _record(report: BackboneLoadingReport, branch: str, prefix: str, checkpoint: SourceCheckpoint, weights):
    report.sources[branch] = checkpoint.origin
    report.formats[branch] = checkpoint.format
    for name in weights.tensors:
        if name in weights.adapted:
            report.adapted[prefix + name] = weights.adapted[name]
        else:
            report.loaded.append(prefix + name)
    report.unused[branch] = weights.unused


def _composite_config(model_class, config, config_kwargs) -> AVCANetConfig:
    if config is None:
        return model_class.config_class(**config_kwargs)
    if config_kwargs:
        raise TypeError(f"Pass either `config` or config keyword arguments, not both (got {sorted(config_kwargs)}).")
    return copy.deepcopy(config)


def load_pretrained_backbones(model_class, visual=None, audio=None, config=None, **config_kwargs):
    """
    Builds `model_class` from `config` (or `config_kwargs`) and initialises its branches from pretrained backbones.
    See `AVCANetForVideoClassification.from_pretrained_backbones`. Returns `(model, BackboneLoadingReport)`.
    """
    config = _composite_config(model_class, config, config_kwargs)
    visual_checkpoint = None if visual is None else read_visual_source(visual, config)
    if visual_checkpoint is not None:
        if visual_checkpoint.format == TRANSFORMERS_VIDEO:
            config.vision_config = visual_checkpoint.config
        elif config.vision_config is not None:
            raise ValueError(
                f"{visual_checkpoint.origin} is a Swin checkpoint ({visual_checkpoint.format}); it initialises the "
                "Swin branch, but config.vision_config replaces that branch with a transformers model."
            )
    audio_checkpoint = None if audio is None else read_audio_source(audio)

    model = model_class(config)
    base = model.base_model
    module_names = {module: name for name, module in model.named_modules()}
    report = BackboneLoadingReport()
    for branch, checkpoint, backbone, branch_weights in (
        ("visual", visual_checkpoint, base.visual_branch.encoder.backbone, visual_branch_weights),
        ("audio", audio_checkpoint, base.audio_branch.backbone, audio_branch_weights),
    ):
        if checkpoint is not None:
            weights = branch_weights(checkpoint, backbone)
            _copy_into(backbone, weights, checkpoint.origin)
            _record(report, branch, f"{module_names[backbone]}.", checkpoint, weights)

    initialised = set(report.loaded) | set(report.adapted)
    report.fresh = [name for name in model.state_dict() if name not in initialised]
    report.parameter_sizes = {name: parameter.numel() for name, parameter in model.named_parameters()}
    logger.info(str(report))
    return model.eval(), report


__all__ = [
    "BackboneLoadingReport",
    "load_pretrained_backbones",
    "load_state_dict_file",
    "inflate_patch_embedding",
    "tile_relative_position_bias",
    "adapt_audio_stem",
]
