"""Reading ``.scv`` streams: :class:`StreamReader` iterates a stream's data packets and survives damage."""

from __future__ import annotations

import io
from bisect import bisect_right
from dataclasses import dataclass
from operator import itemgetter
from types import TracebackType
from typing import BinaryIO, Literal

from ..errors import CorruptStreamError, StreamError, TruncatedStreamError
from .format import (
    FOOTER_SIZE,
    HEADER_PREFIX_SIZE,
    MAGIC,
    PACKET_HEADER_SIZE,
    SYNC,
    FileArg,
    Packet,
    PacketType,
    StreamHeader,
    check_payload,
    header_size,
    open_file,
    unpack_footer,
    unpack_header,
    unpack_index,
    unpack_packet_head,
)

_CHUNK = 64 * 1024
_DATA_TYPES = frozenset({PacketType.KEY, PacketType.KEY_MASKED})
_KNOWN_TYPES = frozenset(PacketType)


@dataclass(frozen=True)
class Damage:
    """A damaged byte range the reader skipped: ``[offset_start, offset_end)`` from the stream's first byte."""

    offset_start: int
    offset_end: int
    after_pts: int | None
    reason: str


class _PacketSource:
    """Headers and packets parsed from a binary file through a read-ahead buffer.

    ``offset`` is the stream offset of the next unread byte. Reads use ``read1`` where the file has it, so a pipe
    or socket delivers each packet as soon as its bytes arrive.
    """

    def __init__(self, file: BinaryIO, offset: int) -> None:
        self._read = getattr(file, "read1", file.read)
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self.offset = offset

    def startswith(self, prefix: bytes) -> bool:
        """Whether the unread bytes begin with ``prefix``."""
        return self._fill(len(prefix)) and self._peek(len(prefix)) == prefix

    def read_header(self) -> StreamHeader:
        """Parse the stream header."""
        if not self._fill(HEADER_PREFIX_SIZE):
            if MAGIC.startswith(self._peek(len(MAGIC))):
                raise TruncatedStreamError("stream ends inside its header")
            raise CorruptStreamError("not an SCV stream")
        size = header_size(self._peek(HEADER_PREFIX_SIZE))
        if not self._fill(size):
            raise TruncatedStreamError("stream ends inside its header")
        header = unpack_header(self._peek(size))
        self._consume(size)
        return header

    def read_packet(self) -> tuple[int, Packet] | None:
        """Parse the next packet and return it with its offset; None at the end of input.

        Packets of types this build does not know are skipped. On damage, raise a :class:`StreamError` with the
        input left at the start of the damaged packet (skipped packets before it stay consumed).
        """
        while True:
            if not self._fill(PACKET_HEADER_SIZE):
                rest = self._peek(len(SYNC))
                if not rest:
                    return None
                if not SYNC.startswith(rest):
                    raise CorruptStreamError("bad sync word")
                raise TruncatedStreamError("stream ends inside a packet header")
            head = unpack_packet_head(self._peek(PACKET_HEADER_SIZE))
            size = PACKET_HEADER_SIZE + head.length
            if not self._fill(size):
                raise TruncatedStreamError("stream ends inside a packet payload")
            payload = self._peek(size, start=PACKET_HEADER_SIZE)
            check_payload(head, payload)
            offset = self.offset
            self._consume(size)
            if head.type in _KNOWN_TYPES:
                return offset, Packet(PacketType(head.type), head.pts, head.q_index, payload, head.flags)

    def resync(self) -> None:
        """Skip to the next sync word after the current byte, or to the end of input."""
        self._consume(1)
        while (found := self._buf.find(SYNC, self._pos)) < 0:
            self._consume(max(0, len(self._buf) - self._pos - (len(SYNC) - 1)))
            if not self._fill(len(self._buf) - self._pos + 1):
                self._consume(len(self._buf) - self._pos)
                return
        self._consume(found - self._pos)

    def _fill(self, size: int) -> bool:
        """Buffer ``size`` unread bytes; False when the input ends first."""
        while len(self._buf) - self._pos < size and not self._eof:
            del self._buf[: self._pos]
            self._pos = 0
            chunk = self._read(max(size - len(self._buf), _CHUNK))
            if chunk:
                self._buf += chunk
            else:
                self._eof = True
        return len(self._buf) - self._pos >= size

    def _peek(self, end: int, start: int = 0) -> bytes:
        return bytes(self._buf[self._pos + start : self._pos + end])

    def _consume(self, size: int) -> None:
        self._pos += size
        self.offset += size


class StreamReader:
    """Reads a ``.scv`` stream; iterating it yields the data packets (KEY, KEY_MASKED) in stream order.

    The header is read and checked at once; its errors always raise. Damage in packets (CRC mismatch, bad sync
    word, impossible length, a stream ending mid-packet) raises with ``on_error="raise"``; with ``"resync"`` the
    reader notes it in :attr:`damage` and goes on at the next valid packet. A damaged packet is never returned.
    Plain iteration never seeks, so pipes and sockets work; :meth:`seek` needs a seekable input.

    A stream may also start at a packet (a late joiner on a live stream): packets before the first HEADER_REPEAT
    are then skipped. A later HEADER_REPEAT that differs replaces :attr:`header`.
    """

    def __init__(self, file: FileArg, on_error: Literal["resync", "raise"] = "resync") -> None:
        if on_error not in ("resync", "raise"):
            raise ValueError(f"on_error must be 'resync' or 'raise', not {on_error!r}")
        self._resync = on_error == "resync"
        self._file, self._owns_file = open_file(file, "rb")
        self._closed = False
        self._damage: list[Damage] = []
        self._damage_start: tuple[int, str] | None = None
        self._last_pts: int | None = None
        self._packets_read = 0
        self._complete = False
        self._ended = False
        self._index: list[tuple[int, int]] | None = None
        try:
            seekable = getattr(self._file, "seekable", None)
            self._seekable = bool(seekable and seekable())
            self._base = self._file.tell() if self._seekable else 0
            self._source = _PacketSource(self._file, 0)
            self._header = self._read_header()
        except BaseException:
            self.close()
            raise
        self._data_start = self._source.offset

    @property
    def header(self) -> StreamHeader:
        """The stream header (the latest one, if a HEADER_REPEAT changed it)."""
        return self._header

    @property
    def damage(self) -> list[Damage]:
        """The damaged ranges skipped so far, each once, in the order met."""
        return list(self._damage)

    @property
    def packets_read(self) -> int:
        """How many data packets iteration returned."""
        return self._packets_read

    @property
    def complete(self) -> bool:
        """Whether the EOS packet was read: the writer closed the stream properly."""
        return self._complete

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def __iter__(self) -> StreamReader:
        return self

    def __next__(self) -> Packet:
        self._check_open()
        while not self._ended:
            try:
                item = self._source.read_packet()
            except StreamError as exc:
                self._on_damage(exc, self._source.offset)  # where the damaged packet starts
                self._source.resync()
                continue
            if item is None:
                self._end_damage(self._source.offset)
                self._ended = True
                break
            offset, packet = item
            self._end_damage(offset)
            if packet.type in _DATA_TYPES:
                self._last_pts = packet.pts
                self._packets_read += 1
                return packet
            if packet.type is PacketType.HEADER_REPEAT:
                try:
                    self._header = unpack_header(packet.payload)
                except StreamError as exc:
                    self._on_damage(exc, offset)
                    self._end_damage(self._source.offset)
            else:  # EOS, or INDEX, which only follows EOS: the data is over
                if packet.type is PacketType.EOS:
                    self._complete = True
                self._ended = True
        raise StopIteration

    @property
    def index(self) -> list[tuple[int, int]]:
        """``(pts, offset)`` of the indexed data packets (every one unless the writer thinned a very long index).

        Read from the footer on first use; a stream without a valid footer (cut, or still being written) is
        scanned once instead. Needs a seekable input.
        """
        self._check_open()
        if not self._seekable:
            raise io.UnsupportedOperation("the index needs a seekable input")
        if self._index is None:
            ended, last_pts = self._ended, self._last_pts
            self._index = self._read_index()
            self._restart(self._source.offset)  # reading the index moved the file: back to where iteration was
            self._ended, self._last_pts = ended, last_pts
        return list(self._index)

    def seek(self, pts: int) -> None:
        """Position at the last indexed data packet with pts <= ``pts`` (the first packet if none has).

        Uses :attr:`index`. Needs a seekable input.
        """
        index = self.index
        found = bisect_right(index, pts, key=itemgetter(0))
        self._restart(index[found - 1][1] if found else self._data_start)

    def close(self) -> None:
        """Close the file if the reader opened it. Idempotent."""
        if not self._closed:
            self._closed = True
            if self._owns_file:
                self._file.close()

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on a closed StreamReader")

    def _read_header(self) -> StreamHeader:
        if not self._source.startswith(SYNC):
            return self._source.read_header()
        while True:
            offset = self._source.offset
            try:
                item = self._source.read_packet()
            except StreamError as exc:
                raise type(exc)(f"{exc} at byte {offset}, before any stream header") from None
            if item is None:
                raise TruncatedStreamError("stream ends before any stream header")
            if item[1].type is PacketType.HEADER_REPEAT:
                return unpack_header(item[1].payload)

    def _on_damage(self, exc: StreamError, offset: int) -> None:
        if not self._resync:
            after = "no good packet before" if self._last_pts is None else f"last good pts {self._last_pts}"
            raise type(exc)(f"{exc} at byte {offset} ({after})") from None
        if self._damage_start is None:
            self._damage_start = (offset, str(exc))

    def _end_damage(self, offset: int) -> None:
        if self._damage_start is not None:
            start, reason = self._damage_start
            if all(known.offset_start != start for known in self._damage):  # not met before a seek back
                self._damage.append(Damage(start, offset, self._last_pts, reason))
            self._damage_start = None

    def _restart(self, offset: int) -> None:
        self._file.seek(self._base + offset)
        self._source = _PacketSource(self._file, offset)
        self._last_pts = None
        self._ended = False

    def _read_index(self) -> list[tuple[int, int]]:
        """The footer's index, or one built by scanning every packet if the footer is missing or damaged."""
        end = self._file.seek(0, io.SEEK_END) - self._base
        if end - FOOTER_SIZE >= self._data_start:
            try:
                self._file.seek(self._base + end - FOOTER_SIZE)
                index_offset = unpack_footer(self._file.read(FOOTER_SIZE))
                if not self._data_start <= index_offset < end - FOOTER_SIZE:
                    raise CorruptStreamError(f"footer points outside the stream ({index_offset})")
                self._file.seek(self._base + index_offset)
                item = _PacketSource(self._file, index_offset).read_packet()
                if item is not None and item[1].type is PacketType.INDEX:
                    index = unpack_index(item[1].payload)
                    # entries point at packets before the index, in pts order (a crafted offset past 2**63 once
                    # made seek() raise OverflowError)
                    if any(not self._data_start <= offset < index_offset for _, offset in index):
                        raise CorruptStreamError("index entry points outside the stream")
                    if any(a[0] > b[0] for a, b in zip(index, index[1:])):
                        raise CorruptStreamError("index entries are not in pts order")
                    return index
            except StreamError:
                pass
        return self._scan_index()

    def _scan_index(self) -> list[tuple[int, int]]:
        self._file.seek(self._base + self._data_start)
        source = _PacketSource(self._file, self._data_start)
        index = []
        while True:
            try:
                item = source.read_packet()
            except StreamError:
                source.resync()
                continue
            if item is None or item[1].type in (PacketType.EOS, PacketType.INDEX):
                return sorted(index)  # a damaged stream may hold packets out of order: seek bisects by pts
            if item[1].type in _DATA_TYPES:
                index.append((item[1].pts, item[0]))
