"""What marks a prepared copy (`dataset_scripts.prepare`) and what it can provide.

A prepared copy is an mp4 with small short-GOP H.264 4:4:4 frames and 16 kHz mono FLAC, carrying the processor
settings it was made for as a JSON tag (the container's `comment`). `open_video` reads such copies with PyAV (see
`video_decoding.PyAVVideoReader`), and every reader refuses a size or audio rate the copy cannot provide.
"""

import io
import json

from .errors import PreparedVideoMismatchError


try:
    import av
except ImportError:
    av = None


PREPARED_FORMAT = "avcanet-prepared"  # the `format` of the JSON settings tag (mp4 `comment`) of a prepared copy
PREPARED_PIXEL_FORMAT = "yuv444p"  # what prepared copies are encoded in


def parse_prepared_tag(metadata) -> dict | None:
    """The settings in a container's tags (`av.container.Container.metadata`), or `None` when it is no prepared copy."""
    try:
        tag = json.loads(metadata.get("comment", ""))
    except ValueError:
        return None
    return tag if isinstance(tag, dict) and tag.get("format") == PREPARED_FORMAT else None


def read_prepared_settings(source) -> dict | None:
    """The settings tag of a prepared copy (a path, bytes or a binary file object), or `None` for any other file,
    including files FFmpeg cannot open (their reader gives the error). Costs one container open, no decoding."""
    if av is None:
        return None
    try:
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else source) as container:
            return parse_prepared_tag(container.metadata)
    except Exception:  # noqa: BLE001 - whatever FFmpeg cannot open is no prepared copy; its reader says why
        return None
    finally:
        if hasattr(source, "seek"):
            source.seek(0)


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
