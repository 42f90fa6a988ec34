"""The exceptions the AV-CANet processor raises for input it cannot read or cannot use."""

import re


def ffmpeg_reason(error: Exception) -> str:
    """The FFmpeg part of a decoder error, without torchcodec's C++ source location."""
    message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
    return re.sub(r"^\w+, \S+\.cpp:\d+, ", "", message)


class VideoDecodingError(ValueError):
    """A video (or its audio track) cannot be decoded.

    Decoders fail on bad files with messages that name neither the file nor the problem ("This should never happen",
    "Invalid data found when processing input"). Every such failure is re-raised as this one type, whose message
    names the input and the cause, so a data pipeline can catch exactly this and skip or report the sample.

    Attributes:
        source (`str`): a printable name of the input (its path, or a description of bytes or a file object).
        cause (`str`): what is wrong with it.
    """

    def __init__(self, source: str, cause: str):
        self.source = source
        self.cause = cause
        super().__init__(f"Cannot decode video {source}: {cause}")


class PreparedVideoMismatchError(ValueError):
    """A prepared copy of a video (`dataset_scripts.prepare`) cannot give what the processor needs: its frames are
    smaller than the processor's crops or resize, or its audio has another sampling rate. Prepare the data set again
    for these settings (or use the original files); skipping such samples would silently train on nothing.

    Attributes:
        source (`str`): a printable name of the input.
        cause (`str`): what the copy lacks.
    """

    def __init__(self, source: str, cause: str):
        self.source = source
        self.cause = cause
        super().__init__(
            f"Prepared video {source} was made for other processor settings: {cause}. Prepare the data set again "
            "for this model (`python -m dataset_scripts.prepare SRC --output DST --model MODEL`) or train on the "
            "original files."
        )
