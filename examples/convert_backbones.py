"""
Writes a ready-to-fine-tune AV-CANet folder (weights, config, code, and the processor when available) whose
branches start from pretrained backbones, and prints where every tensor came from.

The paper's initialisation (2-D Swin-T ImageNet-22K inflated to 3-D, ImageNet ResNet-34):

    python examples/convert_backbones.py --visual-swin2d swin_tiny_patch4_window7_224_22k.pth \
        --audio-resnet34-imagenet --label-set emotions --output avcanet-emotions-init

Kinetics-400 Video Swin-T instead (torchvision downloads it):

    python examples/convert_backbones.py --visual-torchvision-k400 --audio-resnet34-imagenet --output avcanet-k400

A transformers video model as the visual branch (its config becomes `vision_config`):

    python examples/convert_backbones.py --visual-transformers MCG-NJU/videomae-base --audio-resnet34-imagenet \
        --output avcanet-videomae

The folder loads with `AVCANetForVideoClassification.from_pretrained(folder)`, or anywhere with
`AutoModelForVideoClassification.from_pretrained(folder, trust_remote_code=True)`.
"""

import argparse
import sys

from torchvision.models import ResNet34_Weights
from torchvision.models.video import Swin3D_T_Weights

from modeling_avcanet import EMOTION_LABEL_SETS, AVCANetConfig, AVCANetForVideoClassification

try:  # the processor is optional here: the model folder is complete without it
    from processing import AVCANetProcessor
except ImportError:
    AVCANetProcessor = None

# the formats each visual option accepts (`BackboneLoadingReport.formats["visual"]`)
VISUAL_FORMATS = {
    "visual_torchvision_k400": {"torchvision-swin3d"},
    "visual_swin3d": {"torchvision-swin3d"},
    "visual_swin2d": {"swin2d-original", "swin2d-transformers"},
    "visual_transformers": {"transformers-video"},
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    visual = parser.add_mutually_exclusive_group()
    visual.add_argument(
        "--visual-torchvision-k400", action="store_true", help="torchvision's Kinetics-400 swin3d_t (downloaded)."
    )
    visual.add_argument(
        "--visual-swin3d", metavar="FILE", help="A torchvision swin3d state dict (.pth or .safetensors)."
    )
    visual.add_argument(
        "--visual-swin2d",
        metavar="PATH_OR_ID",
        help="A 2-D Swin to inflate: the original .pth, or a transformers Swin folder, hub id or safetensors file.",
    )
    visual.add_argument(
        "--visual-transformers",
        metavar="PATH_OR_ID",
        help="A transformers video model (VideoMAE, ...) folder or hub id.",
    )
    audio = parser.add_mutually_exclusive_group()
    audio.add_argument(
        "--audio-resnet34-imagenet", action="store_true", help="torchvision's ImageNet ResNet-34 (downloaded)."
    )
    audio.add_argument(
        "--audio-resnet34", metavar="FILE", help="A torchvision ResNet-34 state dict (.pth or .safetensors)."
    )
    labels = parser.add_mutually_exclusive_group()
    labels.add_argument("--label-set", choices=sorted(EMOTION_LABEL_SETS), help="Label preset (default: emotions).")
    labels.add_argument(
        "--config", metavar="PATH", help="An AV-CANet config.json (or its folder) to start from, labels included."
    )
    parser.add_argument("--output", required=True, help="Folder to write.")
    return parser.parse_args(argv)


def visual_source(args: argparse.Namespace):
    if args.visual_torchvision_k400:
        return Swin3D_T_Weights.KINETICS400_V1
    return args.visual_swin3d or args.visual_swin2d or args.visual_transformers


def audio_source(args: argparse.Namespace):
    return ResNet34_Weights.IMAGENET1K_V1 if args.audio_resnet34_imagenet else args.audio_resnet34


def visual_option(args: argparse.Namespace) -> str | None:
    return next((option for option in VISUAL_FORMATS if getattr(args, option)), None)


def build_config(args: argparse.Namespace) -> AVCANetConfig:
    if args.config:
        return AVCANetConfig.from_pretrained(args.config)
    return AVCANetConfig.for_label_set(args.label_set or "emotions")


def main(argv=None) -> int:
    args = parse_args(argv)
    model, report = AVCANetForVideoClassification.from_pretrained_backbones(
        visual=visual_source(args), audio=audio_source(args), config=build_config(args)
    )
    option = visual_option(args)
    if option and report.formats["visual"] not in VISUAL_FORMATS[option]:
        flag = "--" + option.replace("_", "-")
        print(f"{flag} expects {sorted(VISUAL_FORMATS[option])}, but the source is {report.formats['visual']}.")
        return 1
    print(report)
    model.save_pretrained(args.output)
    if AVCANetProcessor is None:
        print(f"Saved the model to {args.output} (the processor package is not available: no processor saved).")
    else:
        AVCANetProcessor.from_model_config(model.config).save_pretrained(args.output)
        print(f"Saved the model and the processor to {args.output}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
