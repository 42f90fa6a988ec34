"""Video processor (frame sampling), audio feature extractor (log-mel) and the combined AV-CANet processor."""

from .errors import PreparedVideoMismatchError, VideoDecodingError
from .feature_extraction_avcanet import AVCANetFeatureExtractor
from .onnx_avcanet import AVCANetOnnxModel
from .processing_avcanet import AVCANetProcessor
from .video_processing_avcanet import AVCANetVideoProcessor

# `save_pretrained` copies the code of registered classes next to their configs, so a saved processor loads
# anywhere with `AutoProcessor.from_pretrained(..., trust_remote_code=True)`. As for the model, nothing is registered
# with the Auto factories themselves: a checkpoint always runs its own code.
AVCANetVideoProcessor.register_for_auto_class("AutoVideoProcessor")
AVCANetFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
AVCANetProcessor.register_for_auto_class("AutoProcessor")

__all__ = [
    "AVCANetFeatureExtractor",
    "AVCANetOnnxModel",
    "AVCANetProcessor",
    "AVCANetVideoProcessor",
    "PreparedVideoMismatchError",
    "VideoDecodingError",
]
