"""Writing ``.scv`` streams: :class:`StreamWriter` appends packets to any binary sink, pipes and sockets included."""

from __future__ import annotations

from array import array
from types import TracebackType

from .format import (
    INDEX_ENTRY_SIZE,
    MAX_PAYLOAD_SIZE,
    FileArg,
    Packet,
    PacketType,
    StreamHeader,
    open_file,
    pack_footer,
    pack_header,
    pack_index,
    pack_packet,
)

_MAX_INDEX_ENTRIES = MAX_PAYLOAD_SIZE // INDEX_ENTRY_SIZE
_DATA_TYPES = (PacketType.KEY, PacketType.KEY_MASKED)


class StreamWriter:
    """Writes a ``.scv`` stream: the header at once, then one packet per :meth:`write`, each flushed.

    The writer never seeks or asks the position, so any binary sink works; a process killed mid-stream leaves
    a stream readable up to its last written packet. :meth:`close` appends EOS, the index (every
    ``index_every``-th data packet; thinned to fit one INDEX packet) and the footer.
    """

    def __init__(self, file: FileArg, header: StreamHeader, *, index_every: int = 1) -> None:
        if index_every < 1:
            raise ValueError(f"index_every must be at least 1, not {index_every}")
        header_bytes = pack_header(header)
        self._file, self._owns_file = open_file(file, "wb")
        self._header = header
        self._index_every = index_every
        self._index_pts = array("q")
        self._index_offsets = array("Q")
        self._data_packets = 0
        self._last_pts: int | None = None
        self._offset = 0
        self._closed = False
        self._broken = False
        try:
            self._emit(header_bytes)
        except BaseException:
            self.close()
            raise

    @property
    def header(self) -> StreamHeader:
        """The stream header written first."""
        return self._header

    @property
    def bytes_written(self) -> int:
        """Bytes written so far, header included."""
        return self._offset

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def write(self, packet: Packet) -> int:
        """Append a data packet (KEY or KEY_MASKED, pts strictly increasing); return the bytes written."""
        self._check_open()
        if packet.type not in _DATA_TYPES:
            raise ValueError(f"write() takes KEY or KEY_MASKED packets, not {packet.type.name}")
        if self._last_pts is not None and packet.pts <= self._last_pts:
            raise ValueError(f"pts {packet.pts} does not follow pts {self._last_pts}")
        if self._data_packets % self._index_every == 0:
            self._add_index_entry(packet.pts)
        written = self._emit(pack_packet(packet))
        self._data_packets += 1
        self._last_pts = packet.pts
        return written

    def repeat_header(self) -> int:
        """Append a HEADER_REPEAT packet so a reader joining mid-stream can start here; return the bytes written."""
        self._check_open()
        return self._emit(pack_packet(Packet(PacketType.HEADER_REPEAT, self._pts_now(), 0, pack_header(self._header))))

    def close(self) -> None:
        """Append EOS, the index and the footer, then close the file if the writer opened it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if not self._broken:
                self._emit(pack_packet(Packet(PacketType.EOS, self._pts_now(), 0, b"")))
                index_offset = self._offset
                index = pack_index(zip(self._index_pts, self._index_offsets, strict=True))
                self._emit(pack_packet(Packet(PacketType.INDEX, self._pts_now(), 0, index)))
                self._emit(pack_footer(index_offset))
        finally:
            if self._owns_file:
                try:
                    self._file.close()
                except OSError:  # the failed write already raised; closing retries its flush (disk still full)
                    if not self._broken:
                        raise

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("I/O operation on a closed StreamWriter")

    def _pts_now(self) -> int:
        return 0 if self._last_pts is None else self._last_pts

    def _add_index_entry(self, pts: int) -> None:
        self._index_pts.append(pts)
        self._index_offsets.append(self._offset)
        if len(self._index_pts) == _MAX_INDEX_ENTRIES:
            self._index_pts = self._index_pts[::2]
            self._index_offsets = self._index_offsets[::2]
            self._index_every *= 2

    def _emit(self, data: bytes) -> int:
        """Write all of ``data`` (looping over short writes of raw files) and flush."""
        try:
            view = memoryview(data)
            while view:
                count = self._file.write(view)  # raw files may write less; None: a wrapper wrote all
                view = view[len(view) if count is None else count :]
            self._file.flush()
        except BaseException:
            self._broken = True
            raise
        self._offset += len(data)
        return len(data)
