"""Sinks: where packets go (``.scv`` file, TCP server, MPEG-TS, the application) and where decoded frames go.

Packet sinks take items whose ``data`` is a :class:`~streamcodec.bitstream.Packet`:

* :class:`ScvFileSink` - a ``.scv`` file or pipe, flushed per packet (a killed encoder leaves a decodable file);
* :class:`TcpServerSink` - serves the stream; clients join at any time and get the header first; a client that
  cannot keep up skips packets (or is cut), it never stalls the encoder;
* :class:`TsSink` - MPEG-TS with the packets on a data stream, to a file or ``udp://``; the header is repeated
  so a receiver may join late;
* :class:`CallbackSink`, :class:`IteratorSink` - hand items to the application.

Frame sinks (the decoding mirror) take HxWx3 uint8 RGB frames: :class:`FrameFileSink` (H.264 or FFV1 video, Y4M,
PNG, raw on stdout), :func:`opencv_window` (a :class:`CallbackSink` showing frames), :class:`IteratorSink`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import urlsplit

import numpy as np

from .. import bitstream
from ..bitstream import StreamHeader, StreamWriter
from .core import EOS, Item, Sink, SinkError, Worker

log = logging.getLogger("streamcodec.pipeline")

TS_TIME_BASE = Fraction(1, 90000)
#: The longest hello line (the token and its newline) a TCP client may send.
HELLO_LIMIT = 1024


@contextlib.contextmanager
def _write_errors(name: str) -> Iterator[None]:
    """A full disk, a file size limit or an unwritable path as one clear :class:`SinkError` naming ``name``. A
    closed pipe stays a BrokenPipeError (the command line ends quietly, as ``cat`` does)."""
    try:
        yield
    except (BrokenPipeError, SinkError):
        raise
    except OSError as error:  # PyAV's errors with an errno are OSErrors too
        raise SinkError(f"cannot write {name}: {error.strerror or error}") from error


class ScvFileSink(Sink):
    """A ``.scv`` stream to a path, ``-`` (stdout) or a binary file object; every packet is flushed at once and
    :meth:`close` appends EOS, the index and the footer."""

    name = "scv"

    def __init__(self, file: str | Path | BinaryIO, header: StreamHeader, *, index_every: int = 1) -> None:
        self.file = sys.stdout.buffer if file == "-" else file
        self.header = header
        self.index_every = index_every
        self._writer: StreamWriter | None = None
        self._worker = Worker("sink:scv")  # a pipe reader may be slow: never block the loop on it

    @property
    def bytes_written(self) -> int:
        """Bytes of the stream written so far, header included (0 before :meth:`open`)."""
        return 0 if self._writer is None else self._writer.bytes_written

    async def open(self) -> None:
        with self._errors():
            self._writer = await self._worker.call(
                lambda: bitstream.open(self.file, "w", header=self.header, index_every=self.index_every)
            )

    async def write(self, item: Item) -> None:
        assert self._writer is not None, "sink is not open"
        with self._errors():
            await self._worker.call(self._writer.write, item.data)

    def _errors(self) -> contextlib.AbstractContextManager[None]:
        """Write errors as one :class:`SinkError` (:func:`_write_errors`); the packets before stay decodable."""
        return _write_errors("stdout" if self.file is sys.stdout.buffer else getattr(self.file, "name", self.file))

    async def close(self) -> None:
        if self._writer is not None and not self._writer.closed:
            try:
                await self._worker.call(self._writer.close)
            except BrokenPipeError:  # the reader of a pipe went away: nothing left to finalise
                pass
        self._worker.close()


# -- TCP ------------------------------------------------------------------------------------------------------


class _TransportFile:
    """A write-only binary file over an asyncio transport, for :class:`StreamWriter` (writes never block)."""

    def __init__(self, transport: asyncio.WriteTransport) -> None:
        self._transport = transport

    def write(self, data: bytes | memoryview) -> int:
        self._transport.write(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


@dataclass
class _Client:
    address: str
    writer: asyncio.StreamWriter
    stream: StreamWriter
    sent: int = 0
    skipped: int = 0


class TcpServerSink(Sink):
    """Serves the stream over TCP (``tcp://host:port`` clients, :class:`~.sources.TcpClientSource`).

    Binds ``host`` (default 127.0.0.1, this machine only; ``port=0`` picks a free port, see :attr:`port`). Each
    client that connects gets the stream header at once and then every packet from its join point, as a normal
    ``.scv`` stream (it ends with EOS, index and footer when the pipeline ends). Writes never wait: a client whose
    unsent data exceeds ``max_buffer`` bytes skips packets until it catches up (``slow_client="skip"``) or is
    disconnected (``"cut"``), so each client's buffer stays below ``max_buffer`` plus one packet.
    ``wait_for_clients`` makes :meth:`open` wait until that many clients have connected.

    At most ``max_clients`` connections are open at once (clients still sending their hello included); more are
    closed at once. With a ``token``, a client must first send it on one line (:data:`HELLO_LIMIT` bytes at most)
    within ``hello_timeout`` seconds, or it is closed without a byte of the stream. Whatever else clients send
    is read and dropped.
    """

    name = "tcp"

    def __init__(
        self,
        header: StreamHeader,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_buffer: int = 4 << 20,
        slow_client: Literal["skip", "cut"] = "skip",
        wait_for_clients: int = 0,
        max_clients: int = 16,
        token: str | None = None,
        hello_timeout: float = 5.0,
    ) -> None:
        if slow_client not in ("skip", "cut"):
            raise ValueError(f"slow_client must be 'skip' or 'cut', not {slow_client!r}")
        if max_clients < 1:
            raise ValueError(f"max_clients must be at least 1, not {max_clients}")
        if token is not None and (not token or "\n" in token or len(token.encode()) >= HELLO_LIMIT):
            raise ValueError(f"a token must be 1 to {HELLO_LIMIT - 1} bytes without a newline")
        self.header = header
        self.host = host
        self.port = port
        self.max_buffer = max_buffer
        self.slow_client = slow_client
        self.wait_for_clients = wait_for_clients
        self.max_clients = max_clients
        self.hello_timeout = hello_timeout
        self._token = None if token is None else token.encode()
        self.clients_total = 0
        self.skipped = 0
        self.cut = 0
        self.refused = 0  #: connections closed for the client limit or a wrong, missing or late token
        self._connections = 0
        self._clients: list[_Client] = []
        self._server: asyncio.base_events.Server | None = None
        self._joined = asyncio.Condition()
        self._closed = False

    @property
    def clients(self) -> int:
        """Clients connected now."""
        return len(self._clients)

    @property
    def connections(self) -> int:
        """Connections open now: the clients and those still to send their hello."""
        return self._connections

    @property
    def url(self) -> str:
        """The ``tcp://host:port`` address clients connect to (the real port once open)."""
        return f"tcp://{self.host}:{self.port}"

    async def open(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=HELLO_LIMIT)
        except OSError as error:
            raise SinkError(f"cannot listen on {self.host}:{self.port}: {error.strerror or error}") from error
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("serving %s", self.url)
        if self._token is None and not _is_loopback(self.host):
            log.warning("serving %s to the network without a token: anyone who reaches the port can watch", self.url)
        if self.wait_for_clients:
            async with self._joined:
                await self._joined.wait_for(lambda: self.clients_total >= self.wait_for_clients)

    async def wait_clients(self, count: int) -> None:
        """Wait until ``count`` clients are connected."""
        async with self._joined:
            await self._joined.wait_for(lambda: len(self._clients) >= count)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = f"{peer[0]}:{peer[1]}" if peer else "?"
        if self._closed or self._connections >= self.max_clients:
            if not self._closed:
                self.refused += 1
                log.info("client %s refused: %d clients already", address, self._connections)
            writer.transport.abort()
            return
        self._connections += 1
        try:
            if self._token is None or await self._hello(reader, address):
                await self._stream_to(reader, writer, address)
            else:
                self.refused += 1
                writer.transport.abort()
        finally:
            self._connections -= 1

    async def _hello(self, reader: asyncio.StreamReader, address: str) -> bool:
        """Whether the client sent the token on its first line within the hello timeout."""
        try:
            line = await asyncio.wait_for(reader.readuntil(b"\n"), self.hello_timeout)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError, OSError):
            log.info("client %s refused: no token line within %g s", address, self.hello_timeout)
            return False
        assert self._token is not None
        if hmac.compare_digest(line.rstrip(b"\r\n"), self._token):
            return True
        log.warning("client %s refused: wrong token", address)
        return False

    async def _stream_to(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: str) -> None:
        stream = StreamWriter(_TransportFile(writer.transport), self.header)  # type: ignore[arg-type]
        client = _Client(address, writer, stream)
        self._clients.append(client)
        self.clients_total += 1
        log.info("client %s joined", client.address)
        async with self._joined:
            self._joined.notify_all()
        try:
            while await reader.read(HELLO_LIMIT):  # clients send nothing more; this notices when they leave
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            if client in self._clients:
                self._clients.remove(client)
                log.info("client %s left after %d packets", client.address, client.sent)
                writer.close()

    async def write(self, item: Item) -> None:
        for client in list(self._clients):
            transport = client.writer.transport
            if transport.is_closing():
                self._clients.remove(client)
                continue
            if transport.get_write_buffer_size() > self.max_buffer:
                if self.slow_client == "cut":
                    log.warning("client %s cut: %d bytes behind", client.address, transport.get_write_buffer_size())
                    self._clients.remove(client)
                    self.cut += 1
                    transport.abort()
                else:
                    client.skipped += 1
                    self.skipped += 1
                continue
            client.stream.write(item.data)
            client.sent += 1

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._server is not None:
            self._server.close()
        clients, self._clients = self._clients, []
        for client in clients:
            client.stream.close()  # EOS, index, footer
            client.writer.close()

        async def closed(client: _Client) -> None:
            try:
                await asyncio.wait_for(client.writer.wait_closed(), 5.0)
            except (TimeoutError, asyncio.TimeoutError, ConnectionError, OSError):
                client.writer.transport.abort()

        await asyncio.gather(*(closed(c) for c in clients))
        if self._server is not None:
            await self._server.wait_closed()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# -- MPEG-TS --------------------------------------------------------------------------------------------------


class _Collector:
    """A write-only binary file that keeps what is written until :meth:`take`."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data: bytes | memoryview) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data, self._parts = b"".join(self._parts), []
        return data


class TsSink(Sink):
    """MPEG-TS with the ``.scv`` bytes on a data stream (stream_type 0x06), to a ``.ts`` path or ``udp://`` URL.

    Each TS packet holds whole ``.scv`` packets; the first holds the stream header and a HEADER_REPEAT precedes
    a data packet every ``header_every`` seconds, so a receiver (:class:`~.sources.TsSource`) may join late.
    pts are carried in 90 kHz. ``options`` go to the muxer; UDP datagrams carry 7 TS packets (``pkt_size=1316``)
    unless the URL says otherwise, and every packet is flushed to the file or socket at once (``flush_packets``),
    so an encoder killed mid-stream leaves what it had muxed.
    """

    name = "ts"

    def __init__(
        self,
        target: str | Path,
        header: StreamHeader,
        *,
        header_every: float = 1.0,
        options: dict[str, str] | None = None,
    ) -> None:
        self.target = str(target)
        self.header = header
        self.header_every = header_every
        self.options = {"flush_packets": "1", **(options or {})}
        if self.target.startswith("udp://") and "pkt_size" not in self.target:
            self.target += ("&" if "?" in self.target else "?") + "pkt_size=1316"  # 7 TS packets per datagram
        self._worker = Worker("sink:ts")
        self._bytes = _Collector()
        self._stream_writer: StreamWriter | None = None
        self._container: Any = None
        self._stream: Any = None
        self._last_header: float | None = None
        self._last_pts = -1
        self._closed = False

    async def open(self) -> None:
        await self._worker.call(self._open)

    def _open(self) -> None:
        import av

        try:
            with _write_errors(self.target):
                self._container = av.open(self.target, "w", format="mpegts", options=self.options)
        except av.FFmpegError as error:  # not an OSError: an option or URL FFmpeg refuses
            raise SinkError(f"cannot write {self.target}: {error.strerror}") from error
        self._stream = self._container.add_data_stream()
        self._stream_writer = StreamWriter(self._bytes, self.header)  # type: ignore[arg-type]

    async def write(self, item: Item) -> None:
        with _write_errors(self.target):
            await self._worker.call(self._write, item)

    def _write(self, item: Item) -> None:
        assert self._stream_writer is not None
        seconds = float(item.pts * item.time_base)
        if self._last_header is not None and seconds - self._last_header >= self.header_every:
            self._stream_writer.repeat_header()
            self._last_header = seconds
        elif self._last_header is None:
            self._last_header = seconds
        self._stream_writer.write(item.data)
        self._mux(round(item.pts * item.time_base / TS_TIME_BASE))

    def _mux(self, pts: int) -> None:
        import av

        data = self._bytes.take()
        if not data:
            return
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        packet = av.Packet(data)
        packet.stream = self._stream
        packet.pts = packet.dts = pts
        packet.time_base = TS_TIME_BASE
        self._container.mux(packet)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            with _write_errors(self.target):
                await self._worker.call(self._close)
        finally:
            self._worker.close()

    def _close(self) -> None:
        if self._container is None:
            return
        try:
            if self._stream_writer is not None and not self._stream_writer.closed:
                self._stream_writer.close()  # EOS, index, footer: the end of the stream for the receiver
                self._mux(self._last_pts + 1)
        finally:
            self._container.close()
            self._container = None


# -- the application ------------------------------------------------------------------------------------------


class CallbackSink(Sink):
    """Calls ``callback(item)`` for each item (a coroutine function is awaited). ``thread=True`` runs a plain
    function in a worker thread of its own (e.g. GUI calls that must stay on one thread, or slow ones)."""

    name = "callback"

    def __init__(
        self,
        callback: Callable[[Item], Awaitable[None] | None],
        *,
        thread: bool = False,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.callback = callback
        self.on_close = on_close
        self._worker = Worker("sink:callback") if thread else None

    async def write(self, item: Item) -> None:
        if self._worker is not None:
            await self._worker.call(self.callback, item)
            return
        result = self.callback(item)
        if asyncio.iscoroutine(result):
            await result

    async def close(self) -> None:
        if self._worker is not None:
            if self.on_close is not None:
                await self._worker.call(self.on_close)
                self.on_close = None
            self._worker.close()
        elif self.on_close is not None:
            self.on_close()
            self.on_close = None


class IteratorSink(Sink):
    """``async for item in sink`` while the pipeline runs; the iteration ends with the stream.

    At most ``maxsize`` items wait for the consumer; beyond that the pipeline waits (back-pressure).
    """

    name = "iterator"

    def __init__(self, maxsize: int = 8) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be at least 1, not {maxsize}")
        # The queue itself is unbounded so that closing never waits for a consumer that stopped iterating;
        # the semaphore bounds the items waiting.
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._room = asyncio.Semaphore(maxsize)
        self._closed = False

    async def write(self, item: Item) -> None:
        await self._room.acquire()
        self._queue.put_nowait(item)

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(EOS)

    def __aiter__(self) -> IteratorSink:
        return self

    async def __anext__(self) -> Item:
        item = await self._queue.get()
        if item is EOS:
            self._queue.put_nowait(EOS)  # later iterations end too
            raise StopAsyncIteration
        self._room.release()
        return item


# -- decoded frames -------------------------------------------------------------------------------------------


class FrameFileSink(Sink):
    """Decoded frames to a file through :func:`streamcodec.io.open_sink` (``-`` raw rgb24 on stdout, ``.png``
    (``%05d`` pattern for several), ``.y4m``, H.264 ``.mp4``/``.mkv``/``.mov``, or with ``codec="ffv1"``
    lossless FFV1 in ``.mkv``/``.avi``/``.nut``), written in a worker thread."""

    name = "frames"

    def __init__(
        self, output: str, width: int, height: int, fps: Fraction | None, *, codec: Literal["h264", "ffv1"] = "h264"
    ) -> None:
        from ..io.writers import check_video_codec

        check_video_codec(output, codec)
        self.output = output
        self.size = (width, height)
        self.fps = fps
        self.codec = codec
        self.frames_written = 0
        self._writer: Any = None
        self._worker = Worker("sink:frames")

    async def open(self) -> None:
        with _write_errors("stdout" if self.output == "-" else self.output):
            await self._worker.call(self._open)

    def _open(self) -> None:
        from ..io import open_sink

        self._writer = open_sink(self.output, *self.size, self.fps, codec=self.codec)

    async def write(self, item: Item) -> None:
        with _write_errors(self.output):
            await self._worker.call(self._writer.write, item.data)
        self.frames_written += 1

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                with _write_errors(self.output):
                    await self._worker.call(writer.close)
            except BrokenPipeError:
                pass
        self._worker.close()


def opencv_window(title: str = "streamcodec") -> CallbackSink:
    """A sink showing each decoded RGB frame in an OpenCV window (needs a GUI build of OpenCV)."""

    def show(item: Item) -> None:
        import cv2

        cv2.imshow(title, np.ascontiguousarray(item.data[..., ::-1]))
        cv2.waitKey(1)

    def close() -> None:
        import cv2

        cv2.destroyWindow(title)

    return CallbackSink(show, thread=True, on_close=close)


def open_packet_sink(output: str | Path | BinaryIO, header: StreamHeader, **options: Any) -> Sink:
    """A packet sink for ``output``: ``tcp://host:port`` (serve; an empty host is 127.0.0.1), ``udp://...`` or a
    ``.ts`` path (MPEG-TS), else a ``.scv`` path, ``-`` (stdout) or binary file object. ``options`` go to the
    sink's class."""
    if not isinstance(output, (str, Path)):
        return ScvFileSink(output, header, **options)
    name = str(output)
    if name.startswith("tcp://"):
        parts = urlsplit(name)
        if parts.port is None:
            raise ValueError(f"{name} needs a port: tcp://127.0.0.1:9000")
        return TcpServerSink(header, parts.hostname or "127.0.0.1", parts.port, **options)
    if name.startswith("udp://") or name.lower().endswith((".ts", ".m2ts")):
        return TsSink(name, header, **options)
    if "://" in name:
        raise ValueError(f"cannot write a stream to {name}: use a path, -, tcp://, udp:// or a .ts file")
    return ScvFileSink(name, header, **options)


__all__ = [
    "CallbackSink",
    "FrameFileSink",
    "IteratorSink",
    "ScvFileSink",
    "TcpServerSink",
    "TsSink",
    "open_packet_sink",
    "opencv_window",
]
