"""Sources: frames from files, URLs, devices, FFmpeg filters, OpenCV and iterators; ``.scv`` packets back.

Frame sources wrap the synchronous readers of :mod:`streamcodec.io` and run them in a :class:`~.core.Worker`
thread. :func:`open_source` picks one from what it is given::

    open_source("clip.mp4")                          # file: back-pressure, every frame
    open_source("rtsp://127.0.0.1:8554/cam")         # live: TCP, timeouts, reconnect with back-off
    open_source("/dev/video0", options={"video_size": "640x480", "framerate": "30"})
    open_source("lavfi:testsrc2=size=320x240:rate=25", frames=100)
    open_source(cv2.VideoCapture(0))                 # OpenCV
    open_source(generator_of_rgb_arrays, fps=30)     # sync or async iterator of arrays/tensors

Packet sources (the decoding mirror) yield :class:`~streamcodec.bitstream.Packet` items:
:func:`open_packet_source` takes a ``.scv`` path or ``-``, ``tcp://host:port`` (joins a live server mid-stream) or
MPEG-TS (a ``.ts`` path or ``udp://`` URL).
"""

from __future__ import annotations

import logging
import re
import socket
import sys
import threading
import time
from collections.abc import AsyncIterable, Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import urlsplit

import numpy as np

from ..bitstream import StreamHeader, StreamReader
from ..bitstream.format import PACKET_HEADER_SIZE
from ..codec.quality import index_to_q
from .core import Item, Source, SourceError, SourceTimeoutError, Worker

log = logging.getLogger("streamcodec.pipeline")

#: FFmpeg input formats that capture live (never throttled, never seekable).
LIVE_FORMATS = frozenset(
    {"v4l2", "video4linux2", "dshow", "avfoundation", "x11grab", "gdigrab", "kmsgrab", "decklink", "android_camera"}
)
#: URL schemes of live network streams; http(s) may be a file, so it is not live unless asked.
LIVE_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "rtp", "udp", "srt", "tcp"})
DEFAULT_TIMEOUT = 10.0
DEFAULT_RECONNECT_DELAY = (0.5, 8.0)
DEFAULT_FPS = Fraction(25)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def _scheme(name: str) -> str | None:
    return name.split("://", 1)[0].lower() if _URL.match(name) else None


# -- a source whose reads block -------------------------------------------------------------------------------


class BlockingSource(Source):
    """A source read by blocking calls in its own worker thread; subclasses implement the ``_blocking`` methods."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._worker = Worker(f"source:{name}"[:60])
        self._stop = threading.Event()
        self._opened = False
        self._closed = False

    async def open(self) -> None:
        if not self._opened:
            self._opened = True
            await self._worker.call(self._open_blocking)

    async def read(self) -> Item | None:
        await self.open()
        if self._stop.is_set():
            return None
        return await self._worker.call(self._read_blocking)

    def stop(self) -> None:
        self._stop.set()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        try:  # queued behind a read in flight, so PyAV never sees a close during a read
            await self._worker.call(self._close_blocking)
        finally:
            self._worker.close()

    def _open_blocking(self) -> None:
        pass

    def _read_blocking(self) -> Item | None:
        raise NotImplementedError

    def _close_blocking(self) -> None:
        pass


# -- PyAV (files, URLs, devices, lavfi) and images through streamcodec.io -------------------------------------


class MediaSource(BlockingSource):
    """Frames from anything :func:`streamcodec.io.open_source` reads, with what live inputs need on top.

    * ``open_timeout`` / ``read_timeout`` (seconds) bound every wait on a network or device input: a camera that
      accepts a connection and sends nothing raises :class:`SourceTimeoutError` after ``open_timeout``.
    * ``rtsp://`` uses TCP, FFmpeg's ``nobuffer`` flag and 0.5 s of stream probing unless ``options`` says
      otherwise.
    * ``reconnect`` (default: on for live network streams and devices) reopens the input after an error or an
      end, waiting ``reconnect_delay = (first, max)`` seconds, doubling; ``reconnect_attempts`` failed attempts in
      a row (None: no limit) raise :class:`SourceError`. pts stay increasing across reconnects (the outage shows
      as a gap of its wall-clock length); :attr:`reconnects` counts them and :attr:`outages` holds, per
      reconnect, the seconds from the loss to the first new frame.
    * ``realtime`` (default: live but not a capture format, e.g. ``--live`` on a file) paces frames by their pts,
      like a camera.
    """

    def __init__(
        self,
        input: str | Path,
        *,
        format: str | None = None,
        options: dict[str, str] | None = None,
        frames: int | None = None,
        scale: tuple[int, int] | None = None,
        fps: Fraction | int | None = None,
        live: bool | None = None,
        realtime: bool | None = None,
        open_timeout: float = DEFAULT_TIMEOUT,
        read_timeout: float = DEFAULT_TIMEOUT,
        reconnect: bool | None = None,
        reconnect_delay: tuple[float, float] = DEFAULT_RECONNECT_DELAY,
        reconnect_attempts: int | None = None,
    ) -> None:
        name = str(input)
        super().__init__(name)
        if frames is not None and frames < 1:
            raise ValueError(f"frames must be at least 1, not {frames}")
        scheme = _scheme(name)
        if name.startswith("lavfi:") and format is None:
            name, format = name[len("lavfi:") :], "lavfi"
        elif format is None and name.startswith("/dev/video"):
            format = "v4l2"
        self.input = name
        self.format = format
        self.options = dict(options or {})
        capture = format in LIVE_FORMATS
        network = scheme in LIVE_SCHEMES
        self.live = (capture or network) if live is None else live
        self.realtime = (self.live and not capture and not network) if realtime is None else realtime
        self.reconnect_enabled = (self.live and (capture or network)) if reconnect is None else reconnect
        self.reconnect_delay = reconnect_delay
        self.reconnect_attempts = reconnect_attempts
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.outages: list[float] = []
        if scheme in ("rtsp", "rtsps"):
            self.options.setdefault("rtsp_transport", "tcp")
            self.options.setdefault("fflags", "nobuffer")
            self.options.setdefault("analyzeduration", "500000")  # 0.5 s of probing, not 5: reconnects 1 s faster
        self._av_open = format is not None or scheme is not None or name == "-"
        self._frames = frames
        self._scale = scale
        self._fps_arg = fps
        self._reader: Any = None  # streamcodec.io FrameSource
        self._frame_iter: Iterator[Any] | None = None
        self._emitted = 0
        self._last_pts: int | None = None
        self._last_time = 0.0
        self._step = 1
        self._rebase: int | None = 0  # added to the connection's pts; None: set at the next frame
        self._lost_at: float | None = None
        self._t0: float | None = None

    def _connect(self) -> Any:
        from ..io.readers import ContainerSource, open_source  # PyAV loads only when media is read

        if not self._av_open:
            return open_source(self.input, scale=self._scale, fps=self._fps_arg)
        import av

        started = time.monotonic()
        name = "pipe:0" if self.input == "-" else self.input
        try:
            container = av.open(
                name, format=self.format, options=self.options, timeout=(self.open_timeout, self.read_timeout)
            )
        except av.FFmpegError as error:
            waited = time.monotonic() - started
            if isinstance(error, av.ExitError) or waited >= 0.9 * self.open_timeout:
                raise SourceTimeoutError(
                    f"{self.input}: nothing received within the {self.open_timeout:g} s open timeout"
                ) from error
            raise SourceError(f"cannot open {self.input}: {error.strerror}") from error
        return ContainerSource(container, self.input, None, self._scale)

    def _open_blocking(self) -> None:
        self._reader = self._connect()
        reader = self._reader
        self.width, self.height = reader.width, reader.height
        self.fps = reader.fps or (Fraction(self._fps_arg) if self._fps_arg else None)
        self.time_base = reader.time_base
        self.other_streams = reader.other_streams
        count = reader.frame_count
        self.frame_count = count if self._frames is None else min(count or self._frames, self._frames)
        self._step = max(1, round(1 / (self.fps * self.time_base))) if self.fps else 1
        self._frame_iter = iter(reader)
        if self._scale is None:  # a reconnected stream must keep the size the encoder was made for
            self._scale = (self.width, self.height)

    def _read_blocking(self) -> Item | None:
        import av

        while not self._stop.is_set():
            if self._frames is not None and self._emitted >= self._frames:
                return None
            if self._frame_iter is None and not self._reconnect():
                return None
            assert self._frame_iter is not None
            try:
                frame = next(self._frame_iter)
            except StopIteration:
                if not self.reconnect_enabled:
                    return None
                reason = "the stream ended"
            except (ValueError, OSError, av.FFmpegError) as error:
                if not self.reconnect_enabled:
                    if isinstance(error, ValueError) and isinstance(error.__cause__, av.ExitError):
                        raise SourceTimeoutError(
                            f"{self.input}: no data within the {self.read_timeout:g} s read timeout"
                        ) from error
                    raise
                reason = str(error)
            else:
                return self._item(frame)
            log.warning("%s: connection lost (%s); reconnecting", self.input, reason)
            self._disconnect()
            self._lost_at = time.perf_counter()
        return None

    def _item(self, frame: Any) -> Item:
        now = time.perf_counter()
        pts = frame.pts if frame.pts is not None else frame.index * self._step
        if frame.time_base is not None and frame.time_base != self.time_base:
            pts = round(pts * frame.time_base / self.time_base)
        if self._rebase is None:  # first frame after a reconnect: continue after the outage's wall-clock gap
            gap = max(self._step, round((now - self._last_time) / self.time_base))
            self._rebase = (self._last_pts if self._last_pts is not None else -gap) + gap - pts
            if self._lost_at is not None:
                self.outages.append(now - self._lost_at)
                self._lost_at = None
        pts += self._rebase
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        if self.realtime:
            self._pace(pts)
            now = time.perf_counter()
        self._last_pts, self._last_time = pts, now
        item = Item(frame.image, pts, self._emitted, self.time_base, created=now)
        self._emitted += 1
        return item

    def _pace(self, pts: int) -> None:
        if self._t0 is None:
            self._t0 = time.perf_counter() - float(pts * self.time_base)
        delay = self._t0 + float(pts * self.time_base) - time.perf_counter()
        if delay > 0:
            self._stop.wait(delay)

    def _reconnect(self) -> bool:
        """Reopen with back-off; False if stopped first. Raises after ``reconnect_attempts`` failures."""
        first, most = self.reconnect_delay
        failures = 0
        while True:
            if self._stop.wait(min(most, first * 2**failures)):
                return False
            try:
                self._reader = self._connect()
            except (SourceError, ValueError, OSError) as error:
                failures += 1
                log.warning("%s: reconnect attempt %d failed: %s", self.input, failures, error)
                if self.reconnect_attempts is not None and failures >= self.reconnect_attempts:
                    raise SourceError(f"{self.input}: gave up after {failures} reconnect attempts: {error}") from error
                continue
            self._frame_iter = iter(self._reader)
            self._rebase = None
            self.reconnects += 1
            log.info("%s: reconnected (%d)", self.input, self.reconnects)
            return True

    def _disconnect(self) -> None:
        reader, self._reader, self._frame_iter = self._reader, None, None
        if reader is not None:
            try:
                reader.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close; it is gone either way
                pass

    def _close_blocking(self) -> None:
        self._disconnect()


# -- OpenCV ---------------------------------------------------------------------------------------------------


class CaptureSource(BlockingSource):
    """Frames from a ``cv2.VideoCapture`` (an open one, or a device index / file / URL to open).

    Captures from an index or a network URL count as live. BGR frames are converted to RGB once. Live frames get
    wall-clock pts in milliseconds (time base 1/1000); others count frames at the capture's fps.
    """

    def __init__(
        self,
        capture: Any,
        *,
        live: bool | None = None,
        frames: int | None = None,
        fps: Fraction | int | None = None,
        open_timeout: float = DEFAULT_TIMEOUT,
        read_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        super().__init__(f"cv2:{capture!r}" if not isinstance(capture, (str, int)) else f"cv2:{capture}")
        self._arg = capture
        self._frames = frames
        self._fps_arg = fps
        self._timeouts = (open_timeout, read_timeout)
        network = isinstance(capture, str) and _scheme(capture) in LIVE_SCHEMES
        self.live = (isinstance(capture, int) or network) if live is None else live
        self._cap: Any = None
        self._first: np.ndarray | None = None
        self._emitted = 0
        self._last_pts = -1
        self._t0 = 0.0

    def _open_blocking(self) -> None:
        import cv2

        if isinstance(self._arg, (str, int)):
            ms = [int(1000 * t) for t in self._timeouts]
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms[0], cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms[1]]
            self._cap = cv2.VideoCapture(self._arg, cv2.CAP_ANY, params)
        else:
            self._cap = self._arg
        if not self._cap.isOpened():
            raise SourceError(f"OpenCV cannot open {self._arg!r}")
        ok, bgr = self._cap.read()
        if not ok:
            raise SourceError(f"OpenCV read no frame from {self._arg!r}")
        self._first = bgr
        self.height, self.width = bgr.shape[:2]
        rate = self._fps_arg or self._cap.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
        self.fps = Fraction(rate).limit_denominator(1001)
        self.time_base = Fraction(1, 1000) if self.live else 1 / self.fps
        count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = None if self.live or count <= 0 else min(count, self._frames or count)
        self._t0 = time.perf_counter()

    def _read_blocking(self) -> Item | None:
        if self._frames is not None and self._emitted >= self._frames:
            return None
        if self._first is not None:
            bgr, self._first = self._first, None
        else:
            ok, bgr = self._cap.read()
            if not ok:
                return None
        now = time.perf_counter()
        pts = round(1000 * (now - self._t0)) if self.live else self._emitted
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        item = Item(np.ascontiguousarray(bgr[..., ::-1]), pts, self._emitted, self.time_base, created=now)
        self._emitted += 1
        return item

    def _close_blocking(self) -> None:
        if self._cap is not None and self._cap is not self._arg:
            self._cap.release()


# -- iterators ------------------------------------------------------------------------------------------------


class IteratorSource(Source):
    """Frames from an application: any sync or async iterable of RGB images.

    An element is an HxWx3 uint8 array, a (3, H, W) or (1, 3, H, W) float tensor in [0, 1], a ``(image, pts)``
    pair, or a :class:`streamcodec.io.Frame`. Without pts, frames are numbered in ``time_base`` (default 1/fps).
    A sync iterator is pulled in a worker thread, so it may block (e.g. wait for a camera).
    """

    def __init__(
        self,
        frames: Iterable[Any] | AsyncIterable[Any],
        *,
        fps: Fraction | int | float = DEFAULT_FPS,
        time_base: Fraction | None = None,
        live: bool = False,
        name: str = "iterator",
    ) -> None:
        self.name = name
        self.live = live
        self.fps = Fraction(fps).limit_denominator(1001)
        self.time_base = time_base or 1 / self.fps
        self._step = max(1, round(1 / (self.fps * self.time_base)))
        self._async = isinstance(frames, AsyncIterable)
        self._iter: Any = aiter(frames) if self._async else iter(frames)  # type: ignore[arg-type]
        self._worker = None if self._async else Worker(f"source:{name}")
        self._peeked: Any = None
        self._opened = False
        self._done = False
        self._emitted = 0
        self._last_pts: int | None = None

    async def _next(self) -> Any:
        if self._async:
            try:
                return await anext(self._iter)
            except StopAsyncIteration:
                return None
        assert self._worker is not None
        return await self._worker.call(next, self._iter, None)

    async def open(self) -> None:
        if self._opened:
            return
        self._opened = True
        self._peeked = await self._next()
        if self._peeked is None:
            raise SourceError(f"{self.name} yielded no frame")
        image = _image_of(self._peeked)
        self.height, self.width = (image.shape[:2] if isinstance(image, np.ndarray) else tuple(image.shape[-2:]))

    async def read(self) -> Item | None:
        await self.open()
        if self._done:
            return None
        element, self._peeked = (self._peeked, None) if self._peeked is not None else (await self._next(), None)
        if element is None:
            self._done = True
            return None
        image, pts = _image_of(element), _pts_of(element)
        if pts is None:
            pts = self._emitted * self._step
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"{self.name}: pts {pts} does not follow pts {self._last_pts}")
        self._last_pts = pts
        item = Item(image, pts, self._emitted, self.time_base)
        self._emitted += 1
        return item

    def stop(self) -> None:
        self._done = True

    async def close(self) -> None:
        self._done = True
        if self._worker is not None:
            self._worker.close()
        closer = getattr(self._iter, "aclose", None)
        if closer is not None:
            await closer()


def _image_of(element: Any) -> Any:
    if isinstance(element, tuple):
        return element[0]
    return getattr(element, "image", element)


def _pts_of(element: Any) -> int | None:
    if isinstance(element, tuple):
        return int(element[1])
    pts = getattr(element, "pts", None)
    return None if pts is None or isinstance(element, np.ndarray) else int(pts)


def open_source(
    input: Any,
    *,
    live: bool | None = None,
    frames: int | None = None,
    scale: tuple[int, int] | None = None,
    options: dict[str, str] | None = None,
    format: str | None = None,
    fps: Fraction | int | None = None,
    open_timeout: float = DEFAULT_TIMEOUT,
    read_timeout: float = DEFAULT_TIMEOUT,
    **live_options: Any,
) -> Source:
    """A source for ``input``: a :class:`Source` (returned as is), a ``cv2.VideoCapture``, an iterable of frames,
    or a path / URL / device / ``lavfi:GRAPH`` / ``-`` (stdin) for :class:`MediaSource`.

    ``live`` overrides the policy the input implies; ``live_options`` go to :class:`MediaSource` (``realtime``,
    ``reconnect``, ``reconnect_delay``, ``reconnect_attempts``). Options the input cannot honour (``scale`` for a
    capture or an iterable, ``frames`` for an iterable, FFmpeg options for anything but a path or URL) raise
    ValueError rather than being ignored.
    """
    if isinstance(input, Source):
        return input
    if not isinstance(input, (str, Path)):
        given = {"scale": scale, "options": options, "format": format, **live_options}
        if type(input).__name__ != "VideoCapture":
            given["frames"] = frames
        unused = sorted(name for name, value in given.items() if value is not None)
        if unused:
            raise ValueError(f"{', '.join(unused)}: not for a {type(input).__name__} input (paths, URLs and devices)")
    if type(input).__name__ == "VideoCapture":
        timeouts = {"open_timeout": open_timeout, "read_timeout": read_timeout}
        return CaptureSource(input, live=live, frames=frames, fps=fps, **timeouts)
    if isinstance(input, (str, Path)):
        return MediaSource(
            input, live=live, frames=frames, scale=scale, options=options, format=format, fps=fps,
            open_timeout=open_timeout, read_timeout=read_timeout, **live_options,
        )  # fmt: skip
    if isinstance(input, (Iterable, AsyncIterable)):
        return IteratorSource(input, fps=fps or DEFAULT_FPS, live=bool(live))
    raise TypeError(f"cannot read frames from a {type(input).__name__}")


# -- packet sources: the decoding mirror ----------------------------------------------------------------------


class PacketSource(BlockingSource):
    """Data packets of a ``.scv`` stream read by :class:`~streamcodec.bitstream.StreamReader` from a binary file.

    :attr:`header` is known after :meth:`open`; :attr:`damage` and :attr:`complete` are the reader's.
    """

    def __init__(self, name: str, *, live: bool = False, on_error: Literal["resync", "raise"] = "resync") -> None:
        super().__init__(name)
        self.live = live
        self._on_error = on_error
        self._reader: StreamReader | None = None
        self._emitted = 0

    @property
    def header(self) -> StreamHeader:
        """The stream header read by :meth:`open` (the latest one, if a HEADER_REPEAT changed it)."""
        if self._reader is None:
            raise RuntimeError("the source is not open")
        return self._reader.header

    @property
    def damage(self) -> list[Any]:
        """The damaged ranges the reader skipped so far, in the order met."""
        return [] if self._reader is None else self._reader.damage

    @property
    def complete(self) -> bool:
        """Whether the EOS packet was read: the writer closed the stream properly."""
        return self._reader is not None and self._reader.complete

    def _open_file(self) -> BinaryIO:
        raise NotImplementedError

    def _open_blocking(self) -> None:
        file = self._open_file()
        try:
            self._reader = self._guard(lambda: StreamReader(file, on_error=self._on_error))
        except BaseException:
            self._file_close()
            raise
        header = self._reader.header
        self.width, self.height = header.width, header.height
        self.fps, self.time_base = header.fps, header.time_base

    def _read_blocking(self) -> Item | None:
        assert self._reader is not None
        packet = self._guard(lambda: next(self._reader, None))  # type: ignore[arg-type]
        if packet is None:
            return None
        item = Item(packet, packet.pts, self._emitted, self.time_base)
        item.info["bytes"] = PACKET_HEADER_SIZE + len(packet.payload)
        item.info["q"] = index_to_q(packet.q_index)
        self._emitted += 1
        return item

    def _guard(self, call: Any) -> Any:
        try:
            return call()
        except TimeoutError as error:
            raise SourceTimeoutError(f"{self.name}: no data within the read timeout") from error

    def _close_blocking(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._file_close()

    def _file_close(self) -> None:
        pass


class ScvSource(PacketSource):
    """A ``.scv`` file, a binary file object, or ``-`` (stdin)."""

    def __init__(self, file: str | Path | BinaryIO, *, on_error: Literal["resync", "raise"] = "resync") -> None:
        super().__init__("-" if file == "-" else str(getattr(file, "name", file)), on_error=on_error)
        self._file = file
        self._owned: BinaryIO | None = None

    def _open_file(self) -> BinaryIO:
        if self._file == "-":
            return sys.stdin.buffer
        if isinstance(self._file, (str, Path)):
            if not Path(self._file).exists():
                raise FileNotFoundError(f"no such file: {self._file}")
            self._owned = open(self._file, "rb")  # noqa: SIM115 - closed in _file_close
            return self._owned
        return self._file

    def _file_close(self) -> None:
        if self._owned is not None:
            self._owned.close()


class TcpClientSource(PacketSource):
    """A client of :class:`~.sinks.TcpServerSink` (``tcp://host:port``): it may join mid-stream, the server
    repeats the header to each new client. ``token`` is sent first, on one line, to a server that asks for one."""

    def __init__(
        self,
        url: str,
        *,
        open_timeout: float = DEFAULT_TIMEOUT,
        read_timeout: float = DEFAULT_TIMEOUT,
        live: bool = False,
        on_error: Literal["resync", "raise"] = "resync",
        token: str | None = None,
    ) -> None:
        super().__init__(url, live=live, on_error=on_error)
        parts = urlsplit(url)
        if parts.scheme != "tcp" or not parts.port:
            raise ValueError(f"expected tcp://HOST:PORT, not {url!r}")
        self._address = (parts.hostname or "127.0.0.1", parts.port)
        self._timeouts = (open_timeout, read_timeout)
        self._token = token
        self._sock: socket.socket | None = None
        self._file: BinaryIO | None = None

    def _open_file(self) -> BinaryIO:
        try:
            self._sock = socket.create_connection(self._address, timeout=self._timeouts[0])
        except TimeoutError as error:
            raise SourceTimeoutError(f"{self.name}: no connection within {self._timeouts[0]:g} s") from error
        except OSError as error:
            raise SourceError(f"cannot connect to {self.name}: {error.strerror or error}") from error
        try:
            self._sock.settimeout(self._timeouts[1])
            if self._token is not None:
                self._sock.sendall(self._token.encode() + b"\n")
            first = self._sock.recv(1, socket.MSG_PEEK)
        except TimeoutError as error:
            self._sock.close()
            raise SourceTimeoutError(f"{self.name}: no data within the read timeout") from error
        except OSError:
            first = b""
        if not first:  # a server closes at once a client it refuses; it never sends an empty stream
            self._sock.close()
            raise SourceError(f"{self.name} closed the connection: a wrong or missing token, or too many clients")
        self._file = self._sock.makefile("rb")
        return self._file

    def stop(self) -> None:
        super().stop()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read with EOF
            except OSError:
                pass

    def _file_close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._sock is not None:
            self._sock.close()


class _DemuxedBytes:
    """The bytes of one data stream of a PyAV container, as a file for :class:`StreamReader`."""

    def __init__(self, container: Any, stream: Any) -> None:
        self._packets = container.demux(stream)
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        while not self._pending:
            packet = next(self._packets, None)
            if packet is None:
                return b""
            if packet.size:
                self._pending = bytes(packet)
        cut = len(self._pending) if size < 0 else size
        data, self._pending = self._pending[:cut], self._pending[cut:]
        return data


class TsSource(PacketSource):
    """``.scv`` packets carried on an MPEG-TS data stream (see :class:`~.sinks.TsSink`): a ``.ts`` file or a
    ``udp://`` URL. A receiver joining mid-stream starts at the next repeated header."""

    def __init__(
        self,
        target: str | Path,
        *,
        open_timeout: float = DEFAULT_TIMEOUT,
        read_timeout: float = DEFAULT_TIMEOUT,
        options: dict[str, str] | None = None,
        live: bool | None = None,
        on_error: Literal["resync", "raise"] = "resync",
    ) -> None:
        name = str(target)
        super().__init__(name, live=(_scheme(name) == "udp") if live is None else live, on_error=on_error)
        self._timeouts = (open_timeout, read_timeout)
        self._options = dict(options or {})
        # FFmpeg probes a private-data stream's codec from up to 2500 packets: a live receiver would wait minutes.
        self._options.setdefault("max_probe_packets", "1")
        self._container: Any = None

    def _open_file(self) -> BinaryIO:
        import av

        if _scheme(self.name) is None and not Path(self.name).exists():
            raise FileNotFoundError(f"no such file: {self.name}")
        started = time.monotonic()
        try:
            self._container = av.open(self.name, format="mpegts", options=self._options, timeout=self._timeouts)
        except av.FFmpegError as error:
            waited = time.monotonic() - started
            if isinstance(error, av.ExitError) or waited >= 0.9 * self._timeouts[0]:
                raise SourceTimeoutError(
                    f"{self.name}: nothing received (open timeout {self._timeouts[0]:g} s, waited {waited:.1f} s)"
                ) from error
            raise SourceError(f"cannot open {self.name}: {error.strerror}") from error
        if not self._container.streams.data:
            self._container.close()
            raise SourceError(f"{self.name} carries no data stream")
        return _DemuxedBytes(self._container, self._container.streams.data[0])  # type: ignore[return-value]

    def _guard(self, call: Any) -> Any:
        import av

        try:
            return super()._guard(call)
        except av.ExitError as error:
            raise SourceTimeoutError(f"{self.name}: no data within the read timeout") from error

    def _file_close(self) -> None:
        if self._container is not None:
            self._container.close()


def open_packet_source(
    input: str | Path | BinaryIO,
    *,
    open_timeout: float = DEFAULT_TIMEOUT,
    read_timeout: float = DEFAULT_TIMEOUT,
    live: bool | None = None,
    on_error: Literal["resync", "raise"] = "resync",
    token: str | None = None,
) -> PacketSource:
    """A packet source for ``input``: ``tcp://host:port`` (sending ``token`` first, if given), ``udp://...`` or
    ``*.ts`` (MPEG-TS), or a ``.scv`` path, ``-`` (stdin) or binary file object."""
    name = str(input) if isinstance(input, (str, Path)) else ""
    scheme = _scheme(name)
    timeouts = {"open_timeout": open_timeout, "read_timeout": read_timeout}
    if scheme == "tcp":
        return TcpClientSource(name, live=bool(live), on_error=on_error, token=token, **timeouts)
    if scheme == "udp" or (scheme is None and name.lower().endswith((".ts", ".m2ts"))):
        return TsSource(name, live=live, on_error=on_error, **timeouts)
    if scheme is not None:
        raise ValueError(f"cannot read .scv packets from {name}: use a path, -, tcp://, udp:// or a .ts file")
    return ScvSource(input, on_error=on_error)


__all__ = [
    "BlockingSource",
    "CaptureSource",
    "IteratorSource",
    "MediaSource",
    "PacketSource",
    "ScvSource",
    "TcpClientSource",
    "TsSource",
    "open_packet_source",
    "open_source",
]
