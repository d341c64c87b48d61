"""Frame sinks: write RGB ``uint8`` frames as raw bytes, PNG files, Y4M, H.264 or lossless FFV1 video."""

from __future__ import annotations

import re
import sys
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, ColorTrc

from streamcodec.io.readers import DEFAULT_FPS

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov"})
FFV1_SUFFIXES = frozenset({".mkv", ".avi", ".nut"})
H264_OPTIONS = {"crf": "18", "preset": "fast"}

_PATTERN = re.compile(r"%0?\d*d")
_AVCOL_SPC_SMPTE170M = 6  # AVColorSpace of BT.601 (525/625 lines share the matrix)

# BT.601 full-range ("JPEG") RGB -> YCbCr: rows give Y, Cb, Cr; Cb and Cr are offset by 128.
_RGB_TO_YCBCR = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168736, -0.331264, 0.5],
        [0.5, -0.418688, -0.081312],
    ],
    dtype=np.float32,
)
_YCBCR_OFFSET = np.array([0.0, 128.0, 128.0], dtype=np.float32)


class FrameSink:
    """Takes ``(height, width, 3)`` RGB ``uint8`` images of one size; close it (or use ``with``)."""

    def __init__(self, width: int, height: int, fps: Fraction | None) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"frame size must be positive, not {width}x{height}")
        self.width = width
        self.height = height
        self.fps = Fraction(fps or DEFAULT_FPS)
        self.frames_written = 0

    def write(self, image: np.ndarray) -> None:
        """Append one frame."""
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"expected a ({self.height}, {self.width}, 3) uint8 image, "
                f"got {image.shape} {image.dtype}"
            )
        self._write(np.ascontiguousarray(image))
        self.frames_written += 1

    def _write(self, image: np.ndarray) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release the output."""

    def __enter__(self) -> FrameSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class RawSink(FrameSink):
    """Bare rgb24 frames, one after another with no header (``ffplay -f rawvideo`` reads them)."""

    def __init__(self, stream: BinaryIO, width: int, height: int, fps: Fraction | None) -> None:
        super().__init__(width, height, fps)
        self._stream = stream

    def _write(self, image: np.ndarray) -> None:
        self._stream.write(image.data)

    def close(self) -> None:
        self._stream.flush()


class PngSink(FrameSink):
    """One PNG per frame from a printf pattern (``out_%05d.png``, numbered from 1 as FFmpeg
    does), or a single PNG when the name has no pattern."""

    def __init__(self, output: str, width: int, height: int, fps: Fraction | None) -> None:
        super().__init__(width, height, fps)
        self._output = output
        self._numbered = bool(_PATTERN.search(output))
        if self._numbered:
            try:
                output % 1
            except (TypeError, ValueError) as error:
                raise ValueError(f"{output} is not a valid %d file name pattern") from error
        self._encoder = av.CodecContext.create("png", "w")
        self._encoder.width = width
        self._encoder.height = height
        self._encoder.pix_fmt = "rgb24"

    def _write(self, image: np.ndarray) -> None:
        if self._numbered:
            path = Path(self._output % (self.frames_written + 1))
        elif self.frames_written:
            stem = Path(self._output)
            raise ValueError(
                f"{self._output} holds a single image; to write several frames, "
                f"name the output like {stem.with_name(stem.stem + '_%05d.png')}"
            )
        else:
            path = Path(self._output)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        path.write_bytes(b"".join(bytes(packet) for packet in self._encoder.encode(frame)))


class Y4mSink(FrameSink):
    """YUV4MPEG2 in 4:4:4 BT.601 full range, written by hand: the format is one text header
    then, per frame, ``FRAME\\n`` and the Y, Cb, Cr planes. 4:4:4 keeps the colour resolution
    that 4:2:0 would halve; ``XCOLORRANGE=FULL`` tells FFmpeg the range."""

    def __init__(self, output: str, width: int, height: int, fps: Fraction | None) -> None:
        super().__init__(width, height, fps)
        self._file = open(output, "wb")
        rate = f"{self.fps.numerator}:{self.fps.denominator}"
        header = f"YUV4MPEG2 W{width} H{height} F{rate} Ip A1:1 C444 XCOLORRANGE=FULL\n"
        self._file.write(header.encode("ascii"))

    def _write(self, image: np.ndarray) -> None:
        ycbcr = image.astype(np.float32) @ _RGB_TO_YCBCR.T + _YCBCR_OFFSET
        planes = np.clip(np.rint(ycbcr), 0, 255).astype(np.uint8).transpose(2, 0, 1)
        self._file.write(b"FRAME\n")
        self._file.write(np.ascontiguousarray(planes).data)

    def close(self) -> None:
        self._file.close()


class _EncodedVideoSink(FrameSink):
    """A PyAV container with one encoded video stream (``_container``, ``_stream``)."""

    _container: av.container.OutputContainer | None
    _stream: av.VideoStream

    def _encode(self, frame: av.VideoFrame) -> None:
        """Encode ``frame`` as the next frame (pts counted in frames) and mux what the encoder gives."""
        frame.pts = self.frames_written
        self._container.mux(self._stream.encode(frame))

    def close(self) -> None:
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            container.mux(self._stream.encode(None))  # the encoder's delayed frames
        finally:
            container.close()


class VideoSink(_EncodedVideoSink):
    """H.264 (libx264, yuv420p, BT.601 limited range, tagged as such) in MP4, MKV or MOV.

    4:2:0 needs even sizes, so odd frames are padded by repeating their last row/column:
    the video is then ``width + width % 2`` by ``height + height % 2``.
    """

    def __init__(self, output: str, width: int, height: int, fps: Fraction | None) -> None:
        super().__init__(width, height, fps)
        self._pad = ((0, height % 2), (0, width % 2), (0, 0)) if width % 2 or height % 2 else None
        self._container = av.open(output, "w")
        self._stream = self._container.add_stream("libx264", rate=self.fps)
        self._stream.width = width + width % 2
        self._stream.height = height + height % 2
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = dict(H264_OPTIONS)
        codec = self._stream.codec_context
        codec.colorspace = _AVCOL_SPC_SMPTE170M
        codec.color_range = ColorRange.MPEG
        codec.color_primaries = ColorPrimaries.SMPTE170M
        codec.color_trc = ColorTrc.SMPTE170M

    def _write(self, image: np.ndarray) -> None:
        if self._pad:
            image = np.pad(image, self._pad, mode="edge")
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
            format="yuv420p", dst_colorspace="ITU601", dst_color_range=ColorRange.MPEG
        )
        self._encode(frame)



class Ffv1Sink(_EncodedVideoSink):
    """Lossless FFV1 (RGB, as bgr0) in Matroska, AVI or NUT."""

    def __init__(self, output: str, width: int, height: int, fps: Fraction | None) -> None:
        super().__init__(width, height, fps)
        self._container = av.open(output, "w")
        self._stream = self._container.add_stream("ffv1", rate=self.fps)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "bgr0"

    def _write(self, image: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="bgr0")
        self._encode(frame)



def check_video_codec(output: str, codec: str) -> None:
    """ValueError unless ``codec`` (``h264`` or ``ffv1``) can write ``output``."""
    if codec not in ("h264", "ffv1"):
        raise ValueError(f"codec must be 'h264' or 'ffv1', not {codec!r}")
    if codec == "ffv1" and Path(output).suffix.lower() not in FFV1_SUFFIXES:
        raise ValueError(f"FFV1 needs a .mkv, .avi or .nut output, not {output}")


def open_sink(output: str, width: int, height: int, fps: Fraction | None, codec: str = "h264") -> FrameSink:
    """Open where decoded frames go, chosen by ``output``.

    ``-`` is raw rgb24 on stdout; ``*.png`` is one PNG, or one per frame with a ``%05d``
    pattern; ``*.y4m`` is YUV4MPEG2 4:4:4; ``*.mp4``/``*.mkv``/``*.mov`` is H.264, or with ``codec="ffv1"``
    ``*.mkv``/``*.avi``/``*.nut`` is lossless FFV1. ``fps`` (default 25) is the rate of Y4M and video outputs.
    """
    check_video_codec(output, codec)
    if codec == "ffv1":
        return Ffv1Sink(output, width, height, fps)
    if output == "-":
        return RawSink(sys.stdout.buffer, width, height, fps)
    suffix = Path(output).suffix.lower()
    if suffix == ".png":
        return PngSink(output, width, height, fps)
    if suffix == ".y4m":
        return Y4mSink(output, width, height, fps)
    if suffix in VIDEO_SUFFIXES:
        return VideoSink(output, width, height, fps)
    raise ValueError(
        f"cannot tell how to write {output}: use -, .png, .y4m, "
        + ", ".join(sorted(VIDEO_SUFFIXES))
    )
