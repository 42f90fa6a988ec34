"""The one exception the AV-CANet processor raises for input it cannot read."""


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
