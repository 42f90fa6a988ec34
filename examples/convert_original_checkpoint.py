"""
Turns a state dict saved by the authors' AV-CANet code (eMotions repository, `AV-CANet/`) into a `save_pretrained`
folder (weights, config, code, and a processor set to the release's audio layout), printing every tensor it mapped and
every one it left unused. A file with a tensor it cannot place, or of the wrong shape, is refused.

    python examples/convert_original_checkpoint.py release_checkpoint.pth avcanet-emotions-release --label-set emotions

The release's network was trained on MFCC-32 of the whole track at 44.1 kHz, tiled to 4096 frames and cut into 16
equal parts, not on our time-aligned log-mel: the folder's processor computes that layout
(`AVCANetFeatureExtractor.release_compatible()`, release-compatible, not time-aligned), and the config has
`num_mel_bins=32, audio_frames_per_segment=256`. The release's key layout is in `../shared/docs/release-parity.md`.
"""

import argparse
import re
import sys
from dataclasses import dataclass, field

import torch

from modeling_avcanet import EMOTION_LABEL_SETS, AVCANetConfig, AVCANetForVideoClassification
from processing import AVCANetFeatureExtractor, AVCANetProcessor

SWIN = "avcanet.visual_branch.encoder.backbone."
PYRAMID = "avcanet.fusion.pyramid."
GLOBAL = "avcanet.fusion.global_attention."

# inside each of the release's `TransformerLayer`s
ATTENTION_LAYER_RULES = [
    (r"self_attn\.linears\.0\.", "attention.q_proj."),
    (r"self_attn\.linears\.1\.", "attention.k_proj."),
    (r"self_attn\.linears\.2\.", "attention.v_proj."),
    (r"self_attn\.linears\.3\.", "attention.o_proj."),
    (r"sublayer\.0\.norm\.", "attention_norm."),
    (r"sublayer\.1\.norm\.", "feed_forward_norm."),
    (r"feed_forward\.w_1\.", "feed_forward.0."),
    (r"feed_forward\.w_2\.", "feed_forward.3."),
]
PYRAMID_BLOCKS = {"vsablock": "visual_self_attention", "asablock": "audio_self_attention", "cmablock": "cross_modal_attention"}
PYRAMID_GATES = {"lv1": "visual_self_gate", "lv2": "visual_cross_gate", "la1": "audio_self_gate", "la2": "audio_cross_gate"}

# (release pattern, our name); `{n}` groups are substituted, `{2i}` / `{2i+1}` come from the Swin stage index
RULES = [
    (r"VideoSwinT\.patch_embed\.(proj|norm)\.(\w+)", SWIN + "patch_embed.{0}.{1}"),
    (r"VideoSwinT\.layers\.(\d+)\.blocks\.(\d+)\.(norm1|norm2)\.(\w+)", SWIN + "features.{2i}.{1}.{2}.{3}"),
    (
        r"VideoSwinT\.layers\.(\d+)\.blocks\.(\d+)\.attn\.(qkv\.\w+|proj\.\w+|relative_position_bias_table|relative_position_index)",
        SWIN + "features.{2i}.{1}.attn.{2}",
    ),
    (r"VideoSwinT\.layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc1\.(\w+)", SWIN + "features.{2i}.{1}.mlp.0.{2}"),
    (r"VideoSwinT\.layers\.(\d+)\.blocks\.(\d+)\.mlp\.fc2\.(\w+)", SWIN + "features.{2i}.{1}.mlp.3.{2}"),
    (r"VideoSwinT\.layers\.(\d+)\.downsample\.(norm|reduction)\.(\w+)", SWIN + "features.{2i+1}.{1}.{2}"),
    (r"VideoSwinT\.norm\.(\w+)", SWIN + "norm.{0}"),
    (r"v_fc\.(\w+)", "avcanet.visual_branch.projection.{0}"),
    (r"a_resnet\.a_conv1\.weight", "avcanet.audio_branch.backbone.conv1.weight"),
    (r"a_resnet\.(bn1\.\w+|layer[1-4]\..+)", "avcanet.audio_branch.backbone.{0}"),
    (r"a_fc\.([01])\.(\w+)", "avcanet.audio_branch.projection.{0}.{1}"),
    (r"MMP_Module\.capture\.msa\.(\d+)\.(vsablock|asablock|cmablock)\.layer\.(.+)", "pyramid-layer"),
    (r"MMP_Module\.capture\.msa\.(\d+)\.(lv1|lv2|la1|la2)\.(\w+)", "pyramid-gate"),
    (r"MMP_Module\.capture\.(vnetwork|anetwork)\.(\d+)\.(conv1|conv2)\.(\w+)", "pyramid-conv"),
    (r"MMP_Module\.fusion\.(vselectfusion|aselectfusion)\.(\w+)", "level-score"),
    (r"MMP_Module\.fusion\.weight_interaction\.(.+)", "level-attention"),
    (r"CrossAttentionFusion_Layer\.attention_module\.(in_proj_weight|in_proj_bias)", "global-in-proj"),
    (r"CrossAttentionFusion_Layer\.attention_module\.out_proj\.(\w+)", GLOBAL + "attention.o_proj.{0}"),
    (r"CrossAttentionFusion_Layer\.linear_a\.(\w+)", GLOBAL + "audio_output.{0}"),
    (r"CrossAttentionFusion_Layer\.linear_v\.(\w+)", GLOBAL + "visual_output.{0}"),
    (r"fusion_module\.fc_out\.(\w+)", "classifier.{0}"),
]

# tensors the release builds and never uses (release-parity.md), and aliases of tensors mapped under another name
UNUSED = [
    r"fc\..+",  # the visual stream's own head
    r"a_resnet\.fc\..+",
    r"MMP_Module\.capture\.(multiheadattn|feedforward)\..+",  # templates copied into the levels, never called
    r"MMP_Module\.fusion\.(multiheadattn_weight|feedforward_weight)\..+",
    r".*\.self_attn\.layer_norm\..+",  # built, never applied
]
# the TCN blocks register `conv1` / `conv2` a second time inside `net`: the same tensors
ALIASES = [(r"(MMP_Module\.capture\.(?:vnetwork|anetwork)\.\d+)\.net\.0\.(\w+)", r"\1.conv1.\2"),
           (r"(MMP_Module\.capture\.(?:vnetwork|anetwork)\.\d+)\.net\.2\.(\w+)", r"\1.conv2.\2")]


def _attention_layer(rest: str) -> str | None:
    for pattern, replacement in ATTENTION_LAYER_RULES:
        if re.match(pattern, rest):
            return re.sub(pattern, replacement, rest, count=1)
    return None


def _target(key: str, groups: tuple, target: str) -> list[str] | None:
    """Our name(s) for a release key matched by a rule; `None` when its inner part is unknown."""
    if target == "pyramid-layer":
        inner = _attention_layer(groups[2])
        return None if inner is None else [f"{PYRAMID}{groups[0]}.cross_modal_block.{PYRAMID_BLOCKS[groups[1]]}.{inner}"]
    if target == "pyramid-gate":
        return [f"{PYRAMID}{groups[0]}.cross_modal_block.{PYRAMID_GATES[groups[1]]}.{groups[2]}"]
    if target == "pyramid-conv":
        stream = "visual" if groups[0] == "vnetwork" else "audio"
        conv = "dilated_conv" if groups[2] == "conv1" else "pointwise_conv"
        return [f"{PYRAMID}{groups[1]}.{stream}_temporal.{conv}.{groups[3]}"]
    if target == "level-score":
        score = "visual_score" if groups[0] == "vselectfusion" else "audio_score"
        return [f"avcanet.fusion.level_weighting.{score}.{groups[1]}"]
    if target == "level-attention":
        inner = _attention_layer(groups[0])
        return None if inner is None else [f"avcanet.fusion.level_weighting.cross_modal_attention.{inner}"]
    if target == "global-in-proj":
        suffix = "weight" if groups[0] == "in_proj_weight" else "bias"
        return [f"{GLOBAL}attention.{name}.{suffix}" for name in ("q_proj", "k_proj", "v_proj")]
    stage = int(groups[0]) if "{2i" in target else 0
    return [target.replace("{2i}", str(2 * stage)).replace("{2i+1}", str(2 * stage + 1)).format(*groups)]


@dataclass
class ConversionReport:
    mapped: list[tuple[str, str]] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"mapped {len(self.mapped)} release tensors:"]
        lines += [f"  {source} -> {target}" for source, target in self.mapped]
        lines.append(f"left unused {len(self.unused)} (built by the release, never used by its forward):")
        lines += [f"  {key}" for key in self.unused]
        lines.append(f"skipped {len(self.aliases)} aliases (the same tensors under a second name):")
        lines += [f"  {key}" for key in self.aliases]
        lines.append(f"fresh in ours (the release has no such tensor): {', '.join(self.fresh) or 'none'}")
        return "\n".join(lines)


def convert_state_dict(release: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Our state dict (`AVCANetForVideoClassification` names) of a release state dict, and what was done with each
    tensor. Raises `ValueError` naming every tensor no rule places."""
    release = {key.removeprefix("module."): value for key, value in release.items()}  # nn.DataParallel's prefix
    ours, report, unplaced = {}, ConversionReport(), []
    for key, value in release.items():
        alias = next((re.sub(p, r, key) for p, r in ALIASES if re.fullmatch(p, key)), None)
        if alias is not None:
            if alias not in release or not torch.equal(release[alias], value):
                unplaced.append(f"{key} (an alias of {alias}, which is missing or differs)")
            else:
                report.aliases.append(key)
            continue
        if any(re.fullmatch(pattern, key) for pattern in UNUSED):
            report.unused.append(key)
            continue
        names = None
        for pattern, target in RULES:
            match = re.fullmatch(pattern, key)
            if match:
                names = _target(key, match.groups(), target)
                break
        if names is None:
            unplaced.append(key)
            continue
        # the packed in-projection of nn.MultiheadAttention is [q; k; v] along its first axis
        parts = value.chunk(3) if len(names) == 3 else [value]
        for name, part in zip(names, parts):
            ours[name] = part.clone()
            report.mapped.append((key, name))
    if unplaced:
        raise ValueError(f"Cannot place {len(unplaced)} tensors of the release checkpoint: {unplaced}")
    return ours, report


def config_for(state_dict: dict[str, torch.Tensor], label_set: str) -> AVCANetConfig:
    """The release geometry (defaults), with its MFCC audio input and the label count of its classifier."""
    num_labels = state_dict["classifier.weight"].shape[0]
    config = AVCANetConfig.for_label_set(label_set, num_mel_bins=32, audio_frames_per_segment=256)
    if config.num_labels != num_labels:
        raise ValueError(f"The checkpoint's classifier has {num_labels} classes; label set {label_set!r} has {config.num_labels}.")
    return config


def convert(release: dict[str, torch.Tensor], label_set: str = "emotions", config: AVCANetConfig | None = None):
    """`(model, processor, report)` of a release state dict; every tensor of ours must come from it except the
    missing-audio embedding (our addition), and every shape must match."""
    state_dict, report = convert_state_dict(release)
    config = config or config_for(state_dict, label_set)
    model = AVCANetForVideoClassification(config)
    expected = model.state_dict()
    wrong_shape = [
        f"{name}: {tuple(value.shape)} in the checkpoint, {tuple(expected[name].shape)} here"
        for name, value in state_dict.items()
        if name in expected and value.shape != expected[name].shape
    ]
    if wrong_shape:
        raise ValueError(f"Tensors of the wrong shape for this config: {wrong_shape}")
    result = model.load_state_dict(state_dict, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"Mapped tensors this model does not have: {result.unexpected_keys}")
    allowed_fresh = {"avcanet.missing_audio_embedding"}
    missing = [name for name in result.missing_keys if name not in allowed_fresh and not name.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"The checkpoint lacks {len(missing)} tensors of the model: {missing}")
    report.fresh = sorted(result.missing_keys)
    processor = AVCANetProcessor.from_model_config(config)
    processor = AVCANetProcessor(
        processor.video_processor, AVCANetFeatureExtractor.release_compatible(num_segments=config.num_segments)
    )
    return model.eval(), processor, report


def load_release_file(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle arbitrary objects
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError(f"{path} holds no state dict of tensors.")
    return checkpoint


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="the release's state dict (.pth / .pt / .safetensors)")
    parser.add_argument("output", help="folder to write the converted model and processor into")
    parser.add_argument("--label-set", default="emotions", choices=sorted(EMOTION_LABEL_SETS))
    args = parser.parse_args(argv)
    try:
        model, processor, report = convert(load_release_file(args.checkpoint), args.label_set)
    except ValueError as error:
        sys.exit(f"{args.checkpoint}: {error}")
    print(report)
    model.save_pretrained(args.output)
    processor.save_pretrained(args.output)
    print(f"wrote {args.output} (audio: release-compatible MFCC layout, not time-aligned)")


if __name__ == "__main__":
    main()
