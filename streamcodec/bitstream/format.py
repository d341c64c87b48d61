"""Byte layout of the ``.scv`` container: constants, the header and packet records, and their (de)serialisation.

Every integer is little-endian; every CRC is CRC32C. A stream is a header, then packets, and, once the writer
closed it, an EOS packet, an INDEX packet and a footer.

Header (96 bytes in version 1; ``header length`` counts all of them, CRC included)::

    magic "SCV1" 4s · version u16 · header length u16 · codec FourCC 4s · model name 32s (UTF-8, NUL-padded)
    · weights hash 16s · coder id u16 · width u32 · height u32 · pad multiple u8 · colour format u8
    · time base num u32 · den u32 · fps num u32 · den u32 (0/0: unknown) · flags u32
    · CRC32C of all bytes before u32

A later revision of version 1 may append fields before the CRC (a longer header length); readers skip them.

Packet (28-byte packet header, then the payload)::

    sync b"\\xffSCP" · type u8 · flags u8 · pts i64 · q_index u16 · payload length u32 · payload CRC32C u32
    · CRC32C of the 24 bytes before u32 · payload

INDEX payload: (pts i64, byte offset u64) per indexed data packet, offsets counted from the first header byte.
Footer (16 bytes, last in a closed stream): INDEX packet offset u64 · "SCVX" · CRC32C of the 12 bytes before u32.
"""

from __future__ import annotations

import builtins
import enum
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO, NamedTuple

import crc32c

from ..errors import (
    CorruptStreamError,
    FrameSizeError,
    StreamError,
    TruncatedStreamError,
    UnsupportedVersionError,
)

MAGIC = b"SCV1"
FORMAT_VERSION = 1
SYNC = b"\xffSCP"
FOOTER_MAGIC = b"SCVX"

MAX_DIMENSION = 16384
MAX_PAYLOAD_SIZE = 64 * 1024 * 1024
MODEL_NAME_SIZE = 32
WEIGHTS_HASH_SIZE = 16

_HEADER_PREFIX = struct.Struct("<4sHH")
_HEADER_FIELDS = struct.Struct("<4s32s16sHIIBBIIIII")
_CRC = struct.Struct("<I")
_PACKET_HEAD = struct.Struct("<4sBBqHII")
_INDEX_ENTRY = struct.Struct("<qQ")
_FOOTER_BODY = struct.Struct("<Q4s")

HEADER_PREFIX_SIZE = _HEADER_PREFIX.size
HEADER_SIZE = _HEADER_PREFIX.size + _HEADER_FIELDS.size + _CRC.size
PACKET_HEADER_SIZE = _PACKET_HEAD.size + _CRC.size
INDEX_ENTRY_SIZE = _INDEX_ENTRY.size
FOOTER_SIZE = _FOOTER_BODY.size + _CRC.size

_U8, _U16, _U32 = 0xFF, 0xFFFF, 0xFFFF_FFFF
_I64_MIN, _I64_MAX = -(1 << 63), (1 << 63) - 1

FileArg = str | os.PathLike[str] | BinaryIO


class PacketType(enum.IntEnum):
    """Packet kinds; the numbers are part of the format and never change."""

    KEY = 1
    KEY_MASKED = 2
    HEADER_REPEAT = 3
    INDEX = 4
    EOS = 5


class ColorFormat(enum.IntEnum):
    """Pixel formats of :attr:`StreamHeader.color_format`; the numbers are part of the format."""

    RGB = 0
    BGR = 1
    YUV420 = 2


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], not {value}")


def _check_fraction(name: str, value: Fraction) -> None:
    if value <= 0 or value.numerator > _U32 or value.denominator > _U32:
        raise ValueError(f"{name} must be positive with a u32 numerator and denominator, not {value}")


@dataclass(frozen=True)
class StreamHeader:
    """What a decoder must know before the first packet: codec, model, entropy coder, frame size and timing."""

    codec_id: str
    model_name: str
    weights_hash: bytes
    coder_id: int
    width: int
    height: int
    pad_multiple: int = 64
    color_format: int = ColorFormat.RGB
    time_base: Fraction = Fraction(1, 25)
    fps: Fraction | None = None
    flags: int = 0

    def __post_init__(self) -> None:
        if len(self.codec_id) != 4 or not self.codec_id.isascii() or not self.codec_id.isprintable():
            raise ValueError(f"codec_id must be 4 printable ASCII characters, not {self.codec_id!r}")
        name = self.model_name.encode("utf-8")
        if len(name) > MODEL_NAME_SIZE or b"\0" in name:
            raise ValueError(f"model_name must be at most {MODEL_NAME_SIZE} UTF-8 bytes without NUL")
        object.__setattr__(self, "weights_hash", bytes(self.weights_hash))
        if len(self.weights_hash) != WEIGHTS_HASH_SIZE:
            raise ValueError(f"weights_hash must be {WEIGHTS_HASH_SIZE} bytes, not {len(self.weights_hash)}")
        _check_range("coder_id", self.coder_id, 0, _U16)
        for label, size in (("width", self.width), ("height", self.height)):
            if not 0 < size <= MAX_DIMENSION:
                raise FrameSizeError(f"{label} {size} is outside 1..{MAX_DIMENSION}")
        _check_range("pad_multiple", self.pad_multiple, 1, _U8)
        _check_range("color_format", self.color_format, 0, _U8)
        object.__setattr__(self, "time_base", Fraction(self.time_base))
        _check_fraction("time_base", self.time_base)
        if self.fps is not None:
            object.__setattr__(self, "fps", Fraction(self.fps))
            _check_fraction("fps", self.fps)
        _check_range("flags", self.flags, 0, _U32)


@dataclass(frozen=True)
class Packet:
    """One container packet; a data packet (KEY, KEY_MASKED) holds one coded frame."""

    type: PacketType
    pts: int
    q_index: int
    payload: bytes = field(repr=False)
    flags: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "type", PacketType(self.type))
        object.__setattr__(self, "payload", bytes(self.payload))
        _check_range("pts", self.pts, _I64_MIN, _I64_MAX)
        _check_range("q_index", self.q_index, 0, _U16)
        _check_range("payload length", len(self.payload), 0, MAX_PAYLOAD_SIZE)
        _check_range("flags", self.flags, 0, _U8)


class PacketHead(NamedTuple):
    """The fields of a validated packet header."""

    type: int
    flags: int
    pts: int
    q_index: int
    length: int
    payload_crc: int


def _with_crc(body: bytes) -> bytes:
    return body + _CRC.pack(crc32c.crc32c(body))


def pack_header(header: StreamHeader) -> bytes:
    """Serialise a stream header."""
    fps_num, fps_den = (header.fps.numerator, header.fps.denominator) if header.fps else (0, 0)
    fields = _HEADER_FIELDS.pack(
        header.codec_id.encode("ascii"),
        header.model_name.encode("utf-8"),
        header.weights_hash,
        header.coder_id,
        header.width,
        header.height,
        header.pad_multiple,
        header.color_format,
        header.time_base.numerator,
        header.time_base.denominator,
        fps_num,
        fps_den,
        header.flags,
    )
    return _with_crc(_HEADER_PREFIX.pack(MAGIC, FORMAT_VERSION, HEADER_SIZE) + fields)


def header_size(prefix: bytes) -> int:
    """Check a header's first :data:`HEADER_PREFIX_SIZE` bytes (magic, version) and return the header's size."""
    magic, version, size = _HEADER_PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise CorruptStreamError(f"not an SCV stream (magic {magic!r})")
    if version != FORMAT_VERSION:
        raise UnsupportedVersionError(f"SCV format version {version} (this build reads {FORMAT_VERSION})")
    if size < HEADER_SIZE:
        raise CorruptStreamError(f"header length {size} is below the {HEADER_SIZE} bytes of version 1")
    return size


def unpack_header(data: bytes) -> StreamHeader:
    """Parse and validate exactly one serialised header (fields of a later revision are skipped)."""
    if len(data) < HEADER_PREFIX_SIZE:
        raise TruncatedStreamError("stream ends inside its header")
    size = header_size(data[:HEADER_PREFIX_SIZE])
    if len(data) < size:
        raise TruncatedStreamError("stream ends inside its header")
    if len(data) > size:
        raise CorruptStreamError(f"{len(data) - size} bytes after the header")
    if crc32c.crc32c(data[: -_CRC.size]) != _CRC.unpack_from(data, size - _CRC.size)[0]:
        raise CorruptStreamError("stream header CRC mismatch")
    (codec_id, name, weights_hash, coder_id, width, height, pad, color, tb_num, tb_den, fps_num, fps_den, flags) = (
        _HEADER_FIELDS.unpack_from(data, HEADER_PREFIX_SIZE)
    )
    if tb_den == 0 or (fps_den == 0 and fps_num != 0):
        raise CorruptStreamError("zero denominator in the header's time base or fps")
    try:
        return StreamHeader(
            codec_id=codec_id.decode("ascii"),
            model_name=name.rstrip(b"\0").decode("utf-8"),
            weights_hash=weights_hash,
            coder_id=coder_id,
            width=width,
            height=height,
            pad_multiple=pad,
            color_format=color,
            time_base=Fraction(tb_num, tb_den),
            fps=Fraction(fps_num, fps_den) if fps_den else None,
            flags=flags,
        )
    except StreamError:
        raise
    except ValueError as exc:  # UnicodeDecodeError included
        raise CorruptStreamError(f"invalid header field: {exc}") from None


def pack_packet(packet: Packet) -> bytes:
    """Serialise a packet: packet header, then payload."""
    head = _PACKET_HEAD.pack(
        SYNC, packet.type, packet.flags, packet.pts, packet.q_index, len(packet.payload), crc32c.crc32c(packet.payload)
    )
    return _with_crc(head) + packet.payload


def unpack_packet_head(data: bytes) -> PacketHead:
    """Validate a :data:`PACKET_HEADER_SIZE`-byte packet header (sync word, CRC, length limit)."""
    if data[: len(SYNC)] != SYNC:
        raise CorruptStreamError("bad sync word")
    body = data[: _PACKET_HEAD.size]
    if crc32c.crc32c(body) != _CRC.unpack_from(data, _PACKET_HEAD.size)[0]:
        raise CorruptStreamError("packet header CRC mismatch")
    head = PacketHead(*_PACKET_HEAD.unpack(body)[1:])
    if head.length > MAX_PAYLOAD_SIZE:
        raise CorruptStreamError(f"payload length {head.length} exceeds {MAX_PAYLOAD_SIZE}")
    return head


def check_payload(head: PacketHead, payload: bytes) -> None:
    """Raise :class:`CorruptStreamError` unless ``payload`` matches the CRC in ``head``."""
    if crc32c.crc32c(payload) != head.payload_crc:
        raise CorruptStreamError("payload CRC mismatch")


def pack_index(entries: Iterable[tuple[int, int]]) -> bytes:
    """Serialise (pts, byte offset) pairs as an INDEX payload."""
    return b"".join(_INDEX_ENTRY.pack(pts, offset) for pts, offset in entries)


def unpack_index(payload: bytes) -> list[tuple[int, int]]:
    """Parse an INDEX payload into (pts, byte offset) pairs."""
    if len(payload) % INDEX_ENTRY_SIZE:
        raise CorruptStreamError(f"index payload of {len(payload)} bytes is not a whole number of entries")
    return list(_INDEX_ENTRY.iter_unpack(payload))


def pack_footer(index_offset: int) -> bytes:
    """Serialise the footer pointing at the INDEX packet."""
    return _with_crc(_FOOTER_BODY.pack(index_offset, FOOTER_MAGIC))


def unpack_footer(data: bytes) -> int:
    """Validate a footer and return the INDEX packet's byte offset."""
    if len(data) != FOOTER_SIZE:
        raise TruncatedStreamError("no complete footer")
    index_offset, magic = _FOOTER_BODY.unpack_from(data)
    if magic != FOOTER_MAGIC or crc32c.crc32c(data[: -_CRC.size]) != _CRC.unpack_from(data, _FOOTER_BODY.size)[0]:
        raise CorruptStreamError("no valid footer")
    return index_offset


def open_file(file: FileArg, mode: str) -> tuple[BinaryIO, bool]:
    """Open ``file`` in binary ``mode`` if it is a path; also return whether the caller owns (closes) it."""
    if isinstance(file, (str, os.PathLike)):
        return builtins.open(file, mode), True  # type: ignore[return-value]
    return file, False
