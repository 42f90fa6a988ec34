"""AV-CANet for transformers: configuration, model and EP-CE loss (the files a checkpoint carries as remote code).

The processor lives in `processing/` (remote-code files of its own) and is re-exported here, so the whole public API
imports from `modeling_avcanet`.
"""

from processing import AVCANetFeatureExtractor, AVCANetProcessor, AVCANetVideoProcessor, VideoDecodingError

from .configuration_avcanet import EMOTION_LABEL_SETS, POLARITIES, AVCANetConfig
from .loss_avcanet import ep_ce_loss
from .modeling_avcanet import (
    AVCANetForVideoClassification,
    AVCANetModel,
    AVCANetModelOutput,
    AVCANetPreTrainedModel,
    AVCANetVideoClassifierOutput,
)

# `save_pretrained` copies the code of registered classes next to the weights, so checkpoints load anywhere with
# `trust_remote_code=True`. Nothing is registered with the Auto factories themselves: a checkpoint always runs its
# own code, never whatever version of this package happens to be installed.
AVCANetConfig.register_for_auto_class()
AVCANetModel.register_for_auto_class("AutoModel")
AVCANetForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")

__all__ = [
    "EMOTION_LABEL_SETS",
    "POLARITIES",
    "AVCANetConfig",
    "AVCANetFeatureExtractor",
    "AVCANetForVideoClassification",
    "AVCANetModel",
    "AVCANetModelOutput",
    "AVCANetPreTrainedModel",
    "AVCANetProcessor",
    "AVCANetVideoClassifierOutput",
    "AVCANetVideoProcessor",
    "VideoDecodingError",
    "ep_ce_loss",
]
