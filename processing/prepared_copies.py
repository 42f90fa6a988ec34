"""What marks a prepared copy (`dataset_scripts.prepare`) and what it can provide.

A prepared copy is an mp4 with small short-GOP H.264 frames (4:4:4, or 4:2:0 on request) and 16 kHz mono FLAC,
carrying the processor settings it was made for and its frames' size as a JSON tag (the container's `comment`).
`open_video` reads such copies with PyAV (see `video_decoding.PyAVVideoReader`), and every reader refuses a size or
audio rate the copy cannot provide.
"""

import json

from .errors import PreparedVideoMismatchError


PREPARED_FORMAT = "avcanet-prepared"  # the `format` of the JSON settings tag (mp4 `comment`) of a prepared copy
# Pixel formats of prepared copies. 4:4:4 (the default) keeps the colour resolution the model sees; 4:2:0 halves
# it for reads 1.2-1.3x faster (benchmarks/README.md), and is coded at even sides (the tag holds the real size).
PREPARED_PIXEL_FORMATS = ("yuv444p", "yuv420p")


def parse_prepared_tag(metadata) -> dict | None:
    """The settings in a container's tags (`av.container.Container.metadata`), or `None` when it is no prepared copy."""
    try:
        tag = json.loads(metadata.get("comment", ""))
    except ValueError:
        return None
    return tag if isinstance(tag, dict) and tag.get("format") == PREPARED_FORMAT else None


def check_prepared_settings(settings: dict, name: str, short_side: int | None = None, sampling_rate: int | None = None):
    """Raise `PreparedVideoMismatchError` when a copy prepared with `settings` lacks the frames (`short_side`) or
    audio (`sampling_rate`) asked for."""
    if short_side is not None and short_side > settings["short_side"]:
        raise PreparedVideoMismatchError(
            name, f"its frames have a short side of {settings['short_side']} px, the processor needs {short_side} px"
        )
    if sampling_rate is not None and sampling_rate != settings["sampling_rate"]:
        raise PreparedVideoMismatchError(
            name, f"its audio is at {settings['sampling_rate']} Hz, the feature extractor reads {sampling_rate} Hz"
        )
