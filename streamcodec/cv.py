"""The OpenCV-shaped face of streamcodec: :class:`VideoWriter`, :class:`VideoCapture`, :func:`imencode`,
:func:`imdecode`, for applications written against ``cv2``.

Frames are BGR uint8 HxWx3 arrays, as in cv2; :meth:`VideoWriter.write` also takes an RGB float tensor on the
model's device (3xHxW or 1x3xHxW in [0, 1]) and skips the conversion. Property ids are cv2's numbers where cv2
has the property, so ``cap.get(cv2.CAP_PROP_FPS)`` works too; streamcodec's own ids lie outside cv2's range::

    writer = streamcodec.VideoWriter("out.scv", streamcodec.VideoWriter_fourcc(*"SCV1"), 25, (640, 480),
                                     params=[streamcodec.VIDEOWRITER_PROP_BITRATE, 500_000])
    writer.write(bgr)
    writer.release()
    cap = streamcodec.VideoCapture("out.scv")
    ok, frame = cap.read()

Like cv2, failures are quiet unless asked otherwise: a writer or capture that cannot open reports
``isOpened() == False`` (the reason is in :attr:`~VideoWriter.error`), a frame of the wrong size is dropped and
counted. ``strict=True`` raises instead. Outputs and inputs go through the pipeline's sinks and sources
(``tcp://``, ``udp://``, ``.ts``) and the ``.scv`` reader; rate control uses the controllers of
``streamcodec encode --rc``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
import torch

from . import bitstream
from .bitstream import Packet, StreamReader
from .bitstream.format import PACKET_HEADER_SIZE
from .codec.evc import EVC
from .codec.quality import check_quality
from .codec.registry import load_model, resolve_device
from .codec.stream import FrameDecoder, FrameEncoder
from .errors import FrameSizeError, StreamError
from .pipeline import Item, PacketSource, PipelineError, Sink, TcpServerSink, open_packet_sink, open_packet_source
from .ratecontrol import MODES, RateController, infer_mode, make_controller

log = logging.getLogger(__name__)
T = TypeVar("T")

# -- property ids: cv2's numbers ---------------------------------------------------------------------------------
CAP_PROP_POS_MSEC = 0
CAP_PROP_POS_FRAMES = 1
CAP_PROP_FRAME_WIDTH = 3
CAP_PROP_FRAME_HEIGHT = 4
CAP_PROP_FPS = 5
CAP_PROP_FRAME_COUNT = 7
#: qp 0..63 (trained; -64..96 extended), higher is better (the crf under VIDEOWRITER_RC_CRF)
VIDEOWRITER_PROP_QUALITY = 1
VIDEOWRITER_PROP_FRAMEBYTES = 2  #: bytes of the last packet written (read-only)
VIDEOWRITER_PROP_IS_COLOR = 4  #: read-only
IMREAD_UNCHANGED = -1
IMREAD_COLOR = 1

# -- streamcodec's own ids --------------------------------------------------------------------------------------
VIDEOWRITER_PROP_BITRATE = 0x5C01  #: target bits per second (abr, cbr); setting it alone selects abr, as --bitrate
VIDEOWRITER_PROP_RC_MODE = 0x5C02  #: one of VIDEOWRITER_RC_CQP/CRF/ABR/CBR
VIDEOWRITER_PROP_BUFSIZE = 0x5C03  #: cbr's VBV size in bits (default: one second at the bitrate)
VIDEOWRITER_PROP_DROPPED = 0x5C04  #: frames dropped for a wrong size or type (read-only)
VIDEOWRITER_RC_CQP, VIDEOWRITER_RC_CRF, VIDEOWRITER_RC_ABR, VIDEOWRITER_RC_CBR = range(len(MODES))

#: FourCCs a :class:`VideoWriter` accepts.
FOURCCS = frozenset({"SCV1", "scv1"})
DEFAULT_QUALITY = 32.0


def VideoWriter_fourcc(c1: str, c2: str, c3: str, c4: str) -> int:
    """The FourCC code of four characters, as ``cv2.VideoWriter_fourcc`` computes it."""
    return sum((ord(c) & 0xFF) << (8 * i) for i, c in enumerate((c1, c2, c3, c4)))


def fourcc_text(code: int) -> str:
    """The four characters of a FourCC code."""
    return "".join(chr((int(code) >> (8 * i)) & 0xFF) for i in range(4))


@lru_cache(maxsize=4)
def _load(name: str, device: str) -> EVC:
    return load_model(name, device)


def _model(model: str | EVC, device: str | torch.device | None) -> EVC:
    """``model`` itself, or the named model loaded once per process and device."""
    if isinstance(model, EVC):
        return model
    return _load(model, str(resolve_device(device)))


class _LoopThread:
    """An asyncio loop running in a daemon thread, so that blocking cv2-style calls can drive the pipeline's
    coroutine sinks and sources; it keeps running between calls, so a TCP server accepts clients at any time.
    (``asyncio.Runner`` runs the loop only inside each call.)"""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="streamcodec-cv", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


@dataclass(frozen=True)
class _RateSettings:
    """A writer's rate-control settings; ``mode`` None follows the options, as ``encode`` without ``--rc``."""

    quality: float = DEFAULT_QUALITY
    mode: str | None = None
    bitrate: float | None = None
    bufsize: float | None = None

    @property
    def effective_mode(self) -> str:
        return self.mode or infer_mode(bitrate=self.bitrate)

    def controller(self, fps: Fraction) -> RateController | None:
        """The controller ``streamcodec encode --rc`` builds for the same settings (None for cqp: constant q)."""
        mode = self.effective_mode
        if mode == "cqp":
            return None
        if mode != "crf" and self.bitrate is None:
            raise ValueError(f"rate-control mode {mode} needs VIDEOWRITER_PROP_BITRATE")
        return make_controller(
            mode,
            fps=fps,
            q=self.quality,
            crf=self.quality if mode == "crf" else None,
            bitrate=None if mode == "crf" else self.bitrate,
            bufsize=self.bufsize if mode == "cbr" else None,
        )

    def with_property(self, prop: int, value: float) -> _RateSettings:
        if prop == VIDEOWRITER_PROP_QUALITY:
            check_quality(value)
            return replace(self, quality=float(value))
        if prop == VIDEOWRITER_PROP_BITRATE:
            return replace(self, bitrate=float(value) if value > 0 else None)
        if prop == VIDEOWRITER_PROP_BUFSIZE:
            return replace(self, bufsize=float(value) if value > 0 else None)
        if prop == VIDEOWRITER_PROP_RC_MODE:
            if value not in range(len(MODES)):
                raise ValueError(f"rate-control mode must be one of 0..{len(MODES) - 1} ({', '.join(MODES)})")
            return replace(self, mode=MODES[int(value)])
        raise ValueError(f"property {prop} cannot be set on a VideoWriter")


class _CvObject:
    """What the writer and the capture share with cv2's objects: ``with`` calls :meth:`release`, and failures
    are quiet (a False result, the reason in :attr:`error`) unless ``strict``."""

    strict = False
    #: why the last open, set or read failed (non-strict mode), else None
    error: str | None = None

    def release(self) -> None:
        raise NotImplementedError

    def _fail(self, exc: Exception) -> bool:
        if self.strict:
            raise exc
        self.error = str(exc)
        log.warning("%s", exc)
        return False

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _pairs(params: Sequence[float]) -> list[tuple[int, float]]:
    if len(params) % 2:
        raise ValueError(f"params is a flat [key, value, ...] list; got {len(params)} numbers")
    return [(int(params[i]), params[i + 1]) for i in range(0, len(params), 2)]


class VideoWriter(_CvObject):
    """Encodes BGR frames into a ``.scv`` stream: a path, a binary file object, ``tcp://HOST:PORT`` (serves
    clients, port 0 picks one: see :attr:`url`), or MPEG-TS (``udp://`` or a ``.ts`` path).

    ``fourcc`` must be ``VideoWriter_fourcc(*"SCV1")``; ``params`` is cv2's flat ``[key, value, ...]`` list of
    ``VIDEOWRITER_PROP_*`` settings (quality, bitrate, rate-control mode, VBV size); :meth:`set` changes them
    between frames (the rate controller then starts afresh). With ``isColor=False`` frames are HxW grey images.
    ``model`` is a model name or a loaded model; ``device`` defaults to CUDA when present.
    """

    def __init__(
        self,
        filename: str | Path | BinaryIO | None = None,
        fourcc: int = 0,
        fps: float = 0.0,
        frameSize: tuple[int, int] = (0, 0),
        isColor: bool = True,
        params: Sequence[float] = (),
        *,
        strict: bool = False,
        model: str | EVC = "evc-s",
        device: str | torch.device | None = None,
    ) -> None:
        self.strict = strict
        self.model = model
        self.device = device
        self.error = None
        self.frames_written = 0
        self.frames_dropped = 0
        self.is_color = bool(isColor)
        self._settings = _RateSettings()
        self._encoder: FrameEncoder | None = None
        self._sink: Sink | None = None
        self._loop: _LoopThread | None = None
        self._last_bytes = 0
        if filename is not None:
            self.open(filename, fourcc, fps, frameSize, isColor, params)

    def open(
        self,
        filename: str | Path | BinaryIO,
        fourcc: int,
        fps: float,
        frameSize: tuple[int, int],
        isColor: bool = True,
        params: Sequence[float] = (),
    ) -> bool:
        """(Re)open the writer; False (or, if strict, an exception) when the arguments or output are bad."""
        self.release()
        self.frames_written = self.frames_dropped = 0
        self.is_color = bool(isColor)
        try:
            if fourcc_text(fourcc) not in FOURCCS:
                raise ValueError(f"unknown fourcc {fourcc_text(fourcc)!r}: streamcodec writes 'SCV1'")
            if not fps or fps <= 0:
                raise ValueError(f"fps must be positive, not {fps}")
            width, height = (int(n) for n in frameSize)
            settings = self._settings
            for key, value in _pairs(params):
                settings = settings.with_property(key, value)
            rate = Fraction(fps).limit_denominator(1001)
            encoder = FrameEncoder(_model(self.model, self.device), width, height, settings.quality, 1 / rate, rate)
            encoder.controller = settings.controller(rate)
            self._loop = _LoopThread()
            self._sink = open_packet_sink(filename, encoder.header)
            self._loop.run(self._sink.open())
        except (ValueError, OSError, PipelineError, StreamError, LookupError) as exc:
            self.release()  # closes a sink that failed to open, too
            return self._fail(exc)
        self._settings, self._encoder = settings, encoder
        self.error = None
        return True

    def isOpened(self) -> bool:
        """Whether the writer is open (a successful :meth:`open`, not yet released)."""
        return self._encoder is not None

    @property
    def url(self) -> str | None:
        """The ``tcp://`` address served (with the port picked for port 0), else None."""
        return self._sink.url if isinstance(self._sink, TcpServerSink) else None

    @property
    def encoder(self) -> FrameEncoder | None:
        """The frame encoder (its ``controller`` is the rate controller in use), None when not open."""
        return self._encoder

    def write(self, image: np.ndarray | torch.Tensor) -> None:
        """Encode one frame: BGR uint8 HxWx3 (HxW grey if ``isColor`` is False), or an RGB float tensor.

        A frame of another size or type is dropped and counted (:attr:`frames_dropped`), or raises
        :class:`FrameSizeError` / ``ValueError`` if strict. A closed writer ignores frames, as cv2's does."""
        if self._encoder is None or self._sink is None or self._loop is None:
            return
        frame = self._rgb(image)
        if frame is None:
            return
        pts = self.frames_written
        packet, _, _ = self._encoder.encode(frame, pts)
        self._loop.run(self._sink.write(Item(packet, pts, pts, self._encoder.header.time_base)))
        self._last_bytes = PACKET_HEADER_SIZE + len(packet.payload)
        self.frames_written += 1

    def _rgb(self, image: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor | None:
        """The frame as the encoder takes it, or None if it was dropped."""
        assert self._encoder is not None
        size = (self._encoder.height, self._encoder.width)
        if isinstance(image, torch.Tensor):
            got = tuple(image.shape)
            if image.dim() in (3, 4) and got[-3:] == (3, *size) and image.is_floating_point():
                return image
            return self._drop(FrameSizeError(f"tensor frame of shape {got}; this writer takes 3x{size[0]}x{size[1]}"))
        image = np.asarray(image)
        if image.dtype != np.uint8:
            return self._drop(ValueError(f"frames must be uint8, not {image.dtype}"))
        expected = (*size, 3) if self.is_color else size
        if image.shape != expected:
            takes = "x".join(map(str, expected))
            return self._drop(FrameSizeError(f"frame of shape {image.shape}; this writer takes {takes} (HxW...)"))
        return image[..., ::-1] if self.is_color else np.repeat(image[..., None], 3, axis=2)

    def _drop(self, exc: Exception) -> None:
        if self.strict:
            raise exc
        self.frames_dropped += 1

    def get(self, propId: int) -> float:
        """A ``VIDEOWRITER_PROP_*`` value; 0 for a property this writer does not have (as cv2)."""
        s = self._settings
        values = {
            VIDEOWRITER_PROP_QUALITY: s.quality,
            VIDEOWRITER_PROP_BITRATE: s.bitrate or 0.0,
            VIDEOWRITER_PROP_BUFSIZE: s.bufsize or 0.0,
            VIDEOWRITER_PROP_RC_MODE: MODES.index(s.effective_mode),
            VIDEOWRITER_PROP_FRAMEBYTES: self._last_bytes,
            VIDEOWRITER_PROP_IS_COLOR: int(self.is_color),
            VIDEOWRITER_PROP_DROPPED: self.frames_dropped,
        }
        return float(values.get(int(propId), 0.0))

    def set(self, propId: int, value: float) -> bool:
        """Change quality, bitrate, VBV size or rate-control mode from the next frame on; False (or, if strict,
        ``ValueError``) if the property cannot be set or the settings would be inconsistent (they stay as they
        were)."""
        try:
            settings = self._settings.with_property(int(propId), value)
            controller = settings.controller(self._encoder.header.fps if self._encoder else Fraction(25))
        except ValueError as exc:
            return self._fail(exc)
        self._settings = settings
        if self._encoder is not None:
            self._encoder.q, self._encoder.controller = settings.quality, controller
        return True

    def release(self) -> None:
        """Finish the output (EOS, index, footer; TCP clients get the end of the stream). Idempotent."""
        sink, loop, self._sink, self._loop, self._encoder = self._sink, self._loop, None, None, None
        try:
            if sink is not None and loop is not None:
                loop.run(sink.close())
        finally:
            if loop is not None:
                loop.close()


class _SourcePackets:
    """A pipeline packet source (TCP, MPEG-TS) read by blocking calls: an iterator of packets."""

    def __init__(self, source: PacketSource) -> None:
        self._source = source
        self._loop = _LoopThread()
        try:
            self._loop.run(source.open())
        except BaseException:
            self.close()
            raise
        self.header = source.header

    def __iter__(self) -> _SourcePackets:
        return self

    def __next__(self) -> Packet:
        item = self._loop.run(self._source.read())
        if item is None:
            raise StopIteration
        return item.data

    def close(self) -> None:
        try:
            self._loop.run(self._source.close())
        finally:
            self._loop.close()


class VideoCapture(_CvObject):
    """Decodes a ``.scv`` stream into BGR frames: a path or binary file object (seekable: frame count and
    ``set(CAP_PROP_POS_FRAMES)`` use the stream's index), ``tcp://HOST:PORT`` (joins a live server), or MPEG-TS
    (``udp://`` or a ``.ts`` path).

    The model is the one the stream names unless ``model`` is given. ``open_timeout``/``read_timeout`` bound the
    waits on network inputs. Failures are quiet (``isOpened()``/``read()`` False, reason in :attr:`error`) unless
    ``strict``; :meth:`read` skips a frame that cannot be decoded (a damaged packet) and goes on with the next,
    counting it in :attr:`skipped`, where ``strict`` raises.
    """

    def __init__(
        self,
        source: str | Path | BinaryIO | None = None,
        *,
        strict: bool = False,
        model: str | EVC | None = None,
        device: str | torch.device | None = None,
        open_timeout: float = 10.0,
        read_timeout: float = 10.0,
    ) -> None:
        self.strict = strict
        self.model = model
        self.device = device
        self.timeouts = {"open_timeout": open_timeout, "read_timeout": read_timeout}
        self.error = None
        #: frames :meth:`read` skipped because they could not be decoded
        self.skipped = 0
        self._packets: StreamReader | _SourcePackets | None = None
        self._decoder: FrameDecoder | None = None
        self._grabbed: Packet | None = None
        self._position = 0
        self._last_pts: int | None = None
        self._pts_list: list[int] | None = None
        if source is not None:
            self.open(source)

    def open(self, source: str | Path | BinaryIO) -> bool:
        """(Re)open on ``source``; False (or, if strict, an exception) if it cannot be read or decoded."""
        self.release()
        try:
            name = str(source) if isinstance(source, (str, Path)) else ""
            if "://" in name or name.lower().endswith((".ts", ".m2ts")):
                self._packets = _SourcePackets(open_packet_source(name, on_error="resync", **self.timeouts))
            else:
                self._packets = bitstream.open(source)  # type: ignore[arg-type]
            header = self._packets.header
            self._decoder = FrameDecoder(_model(self.model or header.model_name, self.device), header)
        except (ValueError, OSError, PipelineError, StreamError, LookupError) as exc:
            self.release()
            return self._fail(exc)
        self.error = None
        return True

    def isOpened(self) -> bool:
        """Whether a stream is open for reading (a successful :meth:`open`, not yet released)."""
        return self._decoder is not None

    def grab(self) -> bool:
        """Read the next packet without decoding it; False at the end of the stream."""
        self._grabbed = None
        if self._packets is None:
            return False
        try:
            self._grabbed = next(self._packets, None)
        except (OSError, PipelineError, StreamError) as exc:
            return self._fail(exc)
        if self._grabbed is None:
            return False
        self._position += 1
        self._last_pts = self._grabbed.pts
        return True

    def retrieve(self, image: np.ndarray | None = None, flag: int = 0) -> tuple[bool, np.ndarray | None]:
        """Decode the grabbed packet into a BGR uint8 HxWx3 frame."""
        if self._grabbed is None or self._decoder is None:
            return False, None
        try:
            rgb = self._decoder.decode(self._grabbed, self._position - 1)
        except StreamError as exc:
            return self._fail(exc), None
        bgr = rgb[..., ::-1]
        if image is not None and image.shape == bgr.shape and image.dtype == bgr.dtype:
            image[...] = bgr
            return True, image
        return True, np.ascontiguousarray(bgr)

    def read(self, image: np.ndarray | None = None) -> tuple[bool, np.ndarray | None]:
        """The next frame that decodes: ``(True, bgr)``, or ``(False, None)`` at the end of the stream."""
        while self.grab():
            ok, frame = self.retrieve(image)
            if ok:
                return True, frame
            self.skipped += 1  # not strict (retrieve raised otherwise): this frame only is lost
        return False, None

    def _index_pts(self) -> list[int] | None:
        """The pts of every indexed frame, or None when the input cannot seek."""
        if self._pts_list is None and isinstance(self._packets, StreamReader):
            try:
                self._pts_list = [pts for pts, _ in self._packets.index]
            except io.UnsupportedOperation:
                return None
        return self._pts_list

    def get(self, propId: int) -> float:
        """A ``CAP_PROP_*`` value (cv2's ids): FPS, FRAME_COUNT (-1 when unknown: a live stream), POS_FRAMES
        (the index of the next frame), POS_MSEC (the time of the last frame read), FRAME_WIDTH/HEIGHT;
        0 for others, as cv2."""
        if self._decoder is None:
            return 0.0
        header = self._decoder.header
        prop = int(propId)
        if prop == CAP_PROP_FPS:
            return float(header.fps or 0)
        if prop == CAP_PROP_FRAME_COUNT:
            pts = self._index_pts()
            return -1.0 if pts is None else float(len(pts))
        if prop == CAP_PROP_POS_FRAMES:
            return float(self._position)
        if prop == CAP_PROP_POS_MSEC:
            return 0.0 if self._last_pts is None else 1000.0 * float(self._last_pts * header.time_base)
        sizes = {CAP_PROP_FRAME_WIDTH: header.width, CAP_PROP_FRAME_HEIGHT: header.height}
        return float(sizes.get(prop, 0))

    def set(self, propId: int, value: float) -> bool:
        """``CAP_PROP_POS_FRAMES``: seek to a frame through the stream's index (seekable inputs only)."""
        if int(propId) != CAP_PROP_POS_FRAMES or self._decoder is None:
            return False
        pts = self._index_pts()
        frame = int(value)
        if pts is None or not 0 <= frame < len(pts):
            return False
        assert isinstance(self._packets, StreamReader)
        self._packets.seek(pts[frame])
        self._position, self._grabbed, self._last_pts = frame, None, None
        return True

    def release(self) -> None:
        """Close the input. Idempotent."""
        packets, self._packets, self._decoder, self._grabbed = self._packets, None, None, None
        self._position, self._last_pts, self._pts_list = 0, None, None
        if packets is not None:
            packets.close()


def imencode(
    ext: str, img: np.ndarray | torch.Tensor, params: Sequence[float] = (), *, model: str | EVC = "evc-s",
    device: str | torch.device | None = None,
) -> tuple[bool, np.ndarray]:  # fmt: skip
    """Encode one image (BGR uint8 HxWx3, HxW grey, or an RGB float tensor) as a one-frame ``.scv`` stream:
    ``(True, uint8 buffer)``. ``ext`` must be ``".scv"``; ``params`` as :class:`VideoWriter`'s. Raises on bad
    input, as cv2's does."""
    if ext.lower() != ".scv":
        raise ValueError(f"imencode writes '.scv', not {ext!r}")
    height, width = img.shape[-2:] if isinstance(img, torch.Tensor) else img.shape[:2]
    buffer = io.BytesIO()
    fourcc = VideoWriter_fourcc(*"SCV1")
    grey = not isinstance(img, torch.Tensor) and img.ndim == 2
    with VideoWriter(
        buffer, fourcc, 1, (width, height), not grey, params, strict=True, model=model, device=device
    ) as writer:
        writer.write(img)
    return True, np.frombuffer(buffer.getvalue(), np.uint8)


def imdecode(
    buf: np.ndarray | bytes, flags: int = IMREAD_COLOR, *, model: str | EVC | None = None,
    device: str | torch.device | None = None,
) -> np.ndarray | None:  # fmt: skip
    """The first frame of a ``.scv`` buffer as a BGR uint8 HxWx3 image, or None if it cannot be decoded (as
    cv2). ``flags``: ``IMREAD_COLOR`` or ``IMREAD_UNCHANGED`` (streams are always colour)."""
    if flags not in (IMREAD_COLOR, IMREAD_UNCHANGED):
        raise ValueError(f"imdecode decodes colour images (IMREAD_COLOR, IMREAD_UNCHANGED), not flags={flags}")
    with VideoCapture(io.BytesIO(memoryview(buf).tobytes()), model=model, device=device) as cap:
        return cap.read()[1]


__all__ = [
    "CAP_PROP_FPS",
    "CAP_PROP_FRAME_COUNT",
    "CAP_PROP_FRAME_HEIGHT",
    "CAP_PROP_FRAME_WIDTH",
    "CAP_PROP_POS_FRAMES",
    "CAP_PROP_POS_MSEC",
    "FOURCCS",
    "IMREAD_COLOR",
    "IMREAD_UNCHANGED",
    "VIDEOWRITER_PROP_BITRATE",
    "VIDEOWRITER_PROP_BUFSIZE",
    "VIDEOWRITER_PROP_DROPPED",
    "VIDEOWRITER_PROP_FRAMEBYTES",
    "VIDEOWRITER_PROP_IS_COLOR",
    "VIDEOWRITER_PROP_QUALITY",
    "VIDEOWRITER_PROP_RC_MODE",
    "VIDEOWRITER_RC_ABR",
    "VIDEOWRITER_RC_CBR",
    "VIDEOWRITER_RC_CQP",
    "VIDEOWRITER_RC_CRF",
    "VideoCapture",
    "VideoWriter",
    "VideoWriter_fourcc",
    "fourcc_text",
    "imdecode",
    "imencode",
]
