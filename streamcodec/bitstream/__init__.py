"""The ``.scv`` container ("streamcodec video"): a checked header, then one CRC-protected packet per frame.

Open a stream as PyAV opens a container::

    with bitstream.open("clip.scv", "w", header=header) as out:
        out.write(Packet(PacketType.KEY, pts=0, q_index=150, payload=data))
    with bitstream.open("clip.scv") as stream:
        for packet in stream:
            ...

Byte layouts are in :mod:`streamcodec.bitstream.format`. This package imports no torch.
"""

from __future__ import annotations

from typing import Literal, overload

from .format import (
    FOOTER_MAGIC,
    FORMAT_VERSION,
    MAGIC,
    MAX_DIMENSION,
    MAX_PAYLOAD_SIZE,
    SYNC,
    ColorFormat,
    FileArg,
    Packet,
    PacketType,
    StreamHeader,
)
from .reader import Damage, StreamReader
from .writer import StreamWriter


@overload
def open(
    file: FileArg, mode: Literal["r"] = "r", header: None = None, *, on_error: Literal["resync", "raise"] = ...
) -> StreamReader: ...
@overload
def open(file: FileArg, mode: Literal["w"], header: StreamHeader, *, index_every: int = ...) -> StreamWriter: ...
def open(
    file: FileArg, mode: Literal["r", "w"] = "r", header: StreamHeader | None = None, **kwargs: object
) -> StreamReader | StreamWriter:
    """Open a ``.scv`` stream (a path or a binary file object) for reading (``"r"``) or writing (``"w"``).

    Writing needs ``header``; other keywords go to :class:`StreamReader` (``on_error``) or :class:`StreamWriter`
    (``index_every``).
    """
    if mode == "r":
        if header is not None:
            raise ValueError("header is only for mode 'w'")
        return StreamReader(file, **kwargs)  # type: ignore[arg-type]
    if mode == "w":
        if header is None:
            raise ValueError("mode 'w' needs a header")
        return StreamWriter(file, header, **kwargs)  # type: ignore[arg-type]
    raise ValueError(f"mode must be 'r' or 'w', not {mode!r}")


__all__ = [
    "FOOTER_MAGIC",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_DIMENSION",
    "MAX_PAYLOAD_SIZE",
    "SYNC",
    "ColorFormat",
    "Damage",
    "Packet",
    "PacketType",
    "StreamHeader",
    "StreamReader",
    "StreamWriter",
    "open",
]
