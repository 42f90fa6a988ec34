"""Video processor (frame sampling), audio feature extractor (log-mel) and the combined AV-CANet processor."""
