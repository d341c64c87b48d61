"""The exceptions streamcodec raises.

Every problem with a stream's bytes is a :class:`StreamError`; each kind also subclasses the builtin
that fits it, so callers may catch either (as PyAV's errors do).
"""

from __future__ import annotations


class StreamError(Exception):
    """Base class of every error about a ``.scv`` stream's content."""


class TruncatedStreamError(StreamError, EOFError):
    """The stream ends in the middle of a header or packet."""


class CorruptStreamError(StreamError, ValueError):
    """Bytes of the stream fail their checks (bad magic, CRC mismatch, impossible field)."""


class UnsupportedVersionError(StreamError, ValueError):
    """The stream was written by a format version or coder this build does not know."""


class FrameSizeError(StreamError, ValueError):
    """A header or frame claims dimensions outside the limits this decoder accepts."""


class WrongModelError(StreamError, ValueError):
    """The stream was encoded with other weights than the model asked to decode it."""


class DesyncError(StreamError, RuntimeError):
    """The decoder's entropy parameters differ from the encoder's: the latents' checksum failed."""

    def __init__(self, message: str, frame: int | None = None) -> None:
        super().__init__(message)
        self.frame = frame


class ModelNotFoundError(LookupError):
    """No model of that name is registered."""


__all__ = [
    "StreamError",
    "TruncatedStreamError",
    "CorruptStreamError",
    "UnsupportedVersionError",
    "FrameSizeError",
    "WrongModelError",
    "DesyncError",
    "ModelNotFoundError",
]
