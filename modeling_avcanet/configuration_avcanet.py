"""AV-CANet model configuration."""

import copy

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig, PreTrainedConfig
from transformers.configuration_utils import SubConfigSpec

POLARITIES = ("positive", "neutral", "negative")

AUTO_MAP = {
    "AutoConfig": "configuration_avcanet.AVCANetConfig",
    "AutoModel": "modeling_avcanet.AVCANetModel",
    "AutoModelForVideoClassification": "modeling_avcanet.AVCANetForVideoClassification",
}
# What `Pipeline.save_pretrained` writes for a registered custom pipeline: `pipeline("video-classification", model=
# <saved folder>, trust_remote_code=True)` then runs the AV-CANet pipeline that the processor saves beside its code.
CUSTOM_PIPELINES = {
    "video-classification": {
        "impl": "pipeline_avcanet.AVCANetVideoClassificationPipeline",
        "pt": ["AutoModelForVideoClassification"],
        "type": "multimodal",
    }
}

# Label sets of the data sets AV-CANet reports on, in the class-index order of their annotation files, with the
# polarity of every label. eMotions follows the authors' `core/loss.py`. The papers' tripolar sets for VideoEmotion-8
# and Ekman-6 were not released; these follow VAANet's bipolar split (no neutral class exists in either set).
EMOTION_LABEL_SETS = {
    "emotions": {
        "Excitation": "positive",
        "Fear": "negative",
        "Neutral": "neutral",
        "Relaxation": "positive",
        "Sadness": "negative",
        "Tension": "negative",
    },
    "ve8": {
        "Anger": "negative",
        "Anticipation": "positive",
        "Disgust": "negative",
        "Fear": "negative",
        "Joy": "positive",
        "Sadness": "negative",
        "Surprise": "positive",
        "Trust": "positive",
    },
    "ekman6": {
        "anger": "negative",
        "disgust": "negative",
        "fear": "negative",
        "joy": "positive",
        "sadness": "negative",
        "surprise": "positive",
    },
}


@strict
class AVCANetConfig(PreTrainedConfig):
    r"""
    Configuration of AV-CANet (eMotions, Wu et al.): a Video Swin-T visual branch and a ResNet-34 audio branch, both
    applied per temporal segment, fused by the Local-Global Fusion module and trained with the EP-CE loss. The
    defaults reproduce the authors' eMotions setting (`../shared/docs/avcanet-spec.md` gives the source of each).

    Input layout:
        num_segments (`int`, defaults to 16):
            Number of temporal segments a video is cut into; both modalities are embedded per segment.
        frames_per_segment (`int`, defaults to 8):
            Consecutive frames sampled in each segment, so `pixel_values_videos` holds
            `num_segments * frames_per_segment` frames.
        image_size (`int`, defaults to 112):
            Side of the square frames.
        num_channels (`int`, defaults to 3):
            Colour channels of the frames.
        num_mel_bins (`int`, defaults to 128):
            Mel bins of the log-mel spectrogram in `input_features`.
        audio_frames_per_segment (`int`, defaults to 64):
            Spectrogram frames in each audio segment, so `input_features` holds
            `num_segments * audio_frames_per_segment` frames.

    Visual branch (torchvision's `SwinTransformer3d`; the defaults are exactly `swin3d_t`):
        swin_patch_size (`list[int]`, defaults to `[2, 4, 4]`), swin_embed_dim (`int`, defaults to 96),
        swin_depths (`list[int]`, defaults to `[2, 2, 6, 2]`), swin_num_heads (`list[int]`, defaults to
        `[3, 6, 12, 24]`), swin_window_size (`list[int]`, defaults to `[8, 7, 7]`):
            Video Swin-T geometry; the feature width is `swin_embed_dim * 2 ** (len(swin_depths) - 1)` (768).
        swin_drop_path_rate (`float`, defaults to 0.1):
            Stochastic depth of the Swin blocks.
        vision_config (`dict` or `PreTrainedConfig`, *optional*):
            A transformers video model (VideoMAE, TimeSformer, ViViT, ...) that replaces the Swin branch. It receives
            each segment as `(frames_per_segment, num_channels, image_size, image_size)`; its tokens are mean-pooled.
        visual_dropout (`float`, defaults to 0.5):
            Dropout on the pooled visual features of each segment.

    Audio branch (torchvision's ResNet with a one-channel stem):
        audio_resnet_layers (`list[int]`, defaults to `[3, 4, 6, 3]`):
            Basic blocks per ResNet stage; the default is ResNet-34.

    Local-Global Fusion:
        hidden_size (`int`, defaults to 512):
            Width of both modality embeddings and of the fusion module.
        num_pyramid_levels (`int`, defaults to 4):
            Levels of the local pyramid; level `i` attends within +-2**i segments and convolves with dilation 2**i.
        num_attention_heads (`int`, defaults to 8):
            Heads of the banded attention in the local pyramid.
        intermediate_size (`int`, defaults to 512):
            Feed-forward width of the pyramid's attention layers.
        attention_dropout (`float`, defaults to 0.1):
            Dropout on the attention probabilities of the pyramid and of the level weighting (the release's 0.1).
        fusion_dropout (`float`, defaults to 0.5):
            Dropout on the residual branches of the pyramid's attention layers.
        temporal_kernel_size (`int`, defaults to 3):
            Kernel of the dilated temporal convolutions.
        global_num_attention_heads (`int`, defaults to 8):
            Heads of the global bidirectional cross-attention.

    Loss:
        classification_loss (`str`, defaults to `"ep_ce"`):
            `"ep_ce"` (emotion-polarity cross-entropy) or `"ce"`.
        label_polarities (`dict[str, str]`, *optional*):
            Polarity (`"positive"`, `"neutral"` or `"negative"`) of every label in `id2label`. Defaults to the eMotions
            label set when neither `id2label`, `num_labels` nor `label_polarities` is given. EP-CE needs one for every
            label and says which are missing when the loss is computed; plain `"ce"` needs none.
        polarity_penalties (`dict[str, float]`, *optional*):
            EP-CE's lambda per true polarity: a sample whose predicted polarity differs from its true polarity has its
            cross-entropy multiplied by `1 + lambda`. Defaults to 0.5 each.
        auxiliary_loss_weight (`float`, defaults to 1.0):
            Weight of the audio-only and visual-only classification losses added to the fused one.
        initializer_range (`float`, defaults to 0.02):
            Standard deviation of the normal initialiser of linear layers.

    Pixel values are expected as the authors normalise them, `x / 255 - 100 / 255` per channel (the processor's
    `image_mean = 100 / 255`, `image_std = 1`); use ImageNet statistics instead with Kinetics or ImageNet weights.
    """

    model_type = "avcanet"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(config_class=AutoConfig, model_type="videomae", optional=True),
    }

    num_segments: int = 16
    frames_per_segment: int = 8
    image_size: int = 112
    num_channels: int = 3
    num_mel_bins: int = 128
    audio_frames_per_segment: int = 64

    swin_patch_size: list[int] | tuple[int, ...] = (2, 4, 4)
    swin_embed_dim: int = 96
    swin_depths: list[int] | tuple[int, ...] = (2, 2, 6, 2)
    swin_num_heads: list[int] | tuple[int, ...] = (3, 6, 12, 24)
    swin_window_size: list[int] | tuple[int, ...] = (8, 7, 7)
    swin_drop_path_rate: float = 0.1
    vision_config: dict | PreTrainedConfig | None = None
    visual_dropout: float = 0.5

    audio_resnet_layers: list[int] | tuple[int, ...] = (3, 4, 6, 3)

    hidden_size: int = 512
    num_pyramid_levels: int = 4
    num_attention_heads: int = 8
    intermediate_size: int = 512
    attention_dropout: float = 0.1
    fusion_dropout: float = 0.5
    temporal_kernel_size: int = 3
    global_num_attention_heads: int = 8

    classification_loss: str = "ep_ce"
    label_polarities: dict[str, str] | None = None
    polarity_penalties: dict[str, float] | None = None
    auxiliary_loss_weight: float = 1.0
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        if self.id2label is None and self.label_polarities is None and "num_labels" not in kwargs:
            self.label_polarities = dict(EMOTION_LABEL_SETS["emotions"])
        if self.id2label is None and self.label_polarities is not None:
            self.id2label = dict(enumerate(self.label_polarities))
            self.label2id = {label: index for index, label in self.id2label.items()}
        if self.polarity_penalties is None:
            self.polarity_penalties = dict.fromkeys(POLARITIES, 0.5)
        for name in ("swin_patch_size", "swin_depths", "swin_num_heads", "swin_window_size", "audio_resnet_layers"):
            setattr(self, name, list(getattr(self, name)))
        super().__post_init__(**kwargs)
        # a saved checkpoint must load through all three Auto classes, not only the one of the saved model
        self.auto_map = {**AUTO_MAP, **(getattr(self, "auto_map", None) or {})}
        # a deep copy: `pipeline()` turns the "pt" names of the config's entry into classes in place
        self.custom_pipelines = {**copy.deepcopy(CUSTOM_PIPELINES), **(getattr(self, "custom_pipelines", None) or {})}
        self.validate_architecture()

    @classmethod
    def for_label_set(cls, name: str, **kwargs) -> "AVCANetConfig":
        """A config whose labels and polarities are those of a known data set (`"emotions"`, `"ve8"`, `"ekman6"`)."""
        if name not in EMOTION_LABEL_SETS:
            raise ValueError(f"Unknown label set {name!r}; known: {sorted(EMOTION_LABEL_SETS)}.")
        return cls(label_polarities=dict(EMOTION_LABEL_SETS[name]), **kwargs)

    @property
    def visual_feature_size(self) -> int:
        if self.vision_config is not None:
            return self.vision_config.hidden_size
        return self.swin_embed_dim * 2 ** (len(self.swin_depths) - 1)

    @property
    def polarity_ids(self) -> list[int]:
        """Index into `POLARITIES` of each class, in class-index order. Raises, naming them, for labels that have no
        polarity (a new label set: `num_labels`, `id2label`, or re-heading a checkpoint)."""
        labels = [self.id2label[index] for index in range(self.num_labels)]
        missing = [label for label in labels if label not in (self.label_polarities or {})]
        if missing:
            raise ValueError(
                f"EP-CE needs the polarity of every label, and {missing} have none (label_polarities: "
                f"{self.label_polarities}). Give them as `config.label_polarities = {{label: 'positive' | 'neutral' | "
                f"'negative', ...}}` for all of {labels} (or `AVCANetConfig.for_label_set(...)`, or pass "
                "`label_polarities=` to `from_pretrained`), or train with `classification_loss='ce'`."
            )
        return [POLARITIES.index(self.label_polarities[label]) for label in labels]

    def validate_architecture(self):
        super().validate_architecture()
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})."
            )
        if self.hidden_size % self.global_num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by global_num_attention_heads "
                f"({self.global_num_attention_heads})."
            )
        if len(self.swin_depths) != len(self.swin_num_heads):
            raise ValueError(f"swin_depths {self.swin_depths} and swin_num_heads {self.swin_num_heads} differ in length.")
        if self.num_pyramid_levels < 1 or self.num_segments < 1 or self.frames_per_segment < 1:
            raise ValueError("num_pyramid_levels, num_segments and frames_per_segment must be at least 1.")
        if self.classification_loss not in ("ep_ce", "ce"):
            raise ValueError(f"classification_loss must be 'ep_ce' or 'ce', got {self.classification_loss!r}.")
        if set(self.polarity_penalties) != set(POLARITIES):
            raise ValueError(f"polarity_penalties needs exactly the keys {POLARITIES}, got {sorted(self.polarity_penalties)}.")
        # labels without a polarity are allowed here (a new label set is set up in steps: `num_labels`, then
        # `id2label`, then `label_polarities`); EP-CE raises, naming them, when its loss is built (`polarity_ids`)
        unknown = sorted(label for label, polarity in (self.label_polarities or {}).items() if polarity not in POLARITIES)
        if unknown:
            raise ValueError(f"Polarity of {unknown} must be one of {POLARITIES}.")


__all__ = ["AVCANetConfig", "EMOTION_LABEL_SETS", "POLARITIES"]
