"""Classical image codecs used as rate–distortion baselines, behind the small :class:`Codec` protocol.

JPEG and WebP go through OpenCV; H.264, HEVC and AV1 code one intra frame with PyAV's encoders and decode
the raw bitstream (no container) with PyAV's decoders. Every ``code`` returns the real size in bytes of
what a decoder needs and the decoded picture, so colour conversion and chroma subsampling count as the
codec's loss.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from typing import ClassVar, Protocol, runtime_checkable

import av
import cv2
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, Interpolation

Setting = int | float


@runtime_checkable
class Codec(Protocol):
    """A lossy image codec swept over quality settings.

    ``version`` must change whenever the output for a given setting may change (library versions,
    parameters, model weights): evaluation results are cached under it.
    """

    @property
    def name(self) -> str:
        """The codec's name in results and cache keys; unique within an evaluation."""

    @property
    def version(self) -> str:
        """A tag that changes whenever the output for a setting may change; results are cached under it."""

    @property
    def settings(self) -> Sequence[Setting]:
        """The quality settings an RD sweep codes every image with."""

    def code(self, img: np.ndarray, setting: Setting) -> tuple[int, np.ndarray]:
        """Code a uint8 RGB HxWx3 image; return (bitstream bytes, uint8 RGB HxWx3 reconstruction)."""


class JpegCodec:
    """Baseline JPEG via OpenCV's libjpeg: 4:4:4 (no chroma subsampling), optimised Huffman tables.

    The size is the whole JFIF file, headers included; settings are JPEG qualities (1-100).
    """

    name = "jpeg"

    def __init__(self, settings: Sequence[int] = (3, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80)) -> None:
        self.settings = tuple(settings)

    @property
    def version(self) -> str:
        return f"opencv {cv2.__version__}; 444; optimize"

    def code(self, img: np.ndarray, setting: Setting) -> tuple[int, np.ndarray]:
        params = [
            cv2.IMWRITE_JPEG_QUALITY, int(setting),
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
            cv2.IMWRITE_JPEG_OPTIMIZE, 1,
        ]  # fmt: skip
        return _opencv_code(".jpg", img, params)


class WebpCodec:
    """Lossy WebP via OpenCV's libwebp (always 4:2:0).

    The size is the whole RIFF file; settings are WebP qualities (1-100).
    """

    name = "webp"

    def __init__(self, settings: Sequence[int] = (1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90)) -> None:
        self.settings = tuple(settings)

    @property
    def version(self) -> str:
        return f"opencv {cv2.__version__}"

    def code(self, img: np.ndarray, setting: Setting) -> tuple[int, np.ndarray]:
        return _opencv_code(".webp", img, [cv2.IMWRITE_WEBP_QUALITY, int(setting)])


def _opencv_code(ext: str, img: np.ndarray, params: list[int]) -> tuple[int, np.ndarray]:
    ok, buf = cv2.imencode(ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise RuntimeError(f"OpenCV failed to encode {ext}")
    rec = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return int(buf.size), cv2.cvtColor(rec, cv2.COLOR_BGR2RGB)


# RGB <-> YUV through swscale: BT.601 matrix, limited ("TV") range as usual for video, the same both
# ways; with accurate, bit-exact rounding and full chroma interpolation, since swscale's fast defaults
# make the 4:2:0 round trip alone lose ~5 dB on Kodak (42 instead of 48 dB).
_COLORSPACE = Colorspace.ITU601
_RANGE = ColorRange.MPEG
_SWS = (
    Interpolation.BICUBIC
    | Interpolation.ACCURATE_RND
    | Interpolation.BITEXACT
    | Interpolation.FULL_CHR_H_INT
    | Interpolation.FULL_CHR_H_INP
)


class _PyAVIntraCodec:
    """One frame through a PyAV (FFmpeg) encoder, intra-only, decoded back from the raw packets.

    Odd sides are padded to even (and up to the encoder's minimum) by repeating the edge pixels; the
    padded pixels' bits are counted, the reconstruction is cropped back. Settings are the encoder's
    quantiser option, listed from low to high quality.
    """

    name: ClassVar[str]
    encoder: ClassVar[str]
    decoder: ClassVar[str]
    pix_fmt: ClassVar[str]
    quality_option: ClassVar[str]
    min_side: ClassVar[int] = 2

    def __init__(self, settings: Sequence[int], preset: str) -> None:
        self.settings = tuple(settings)
        self.preset = preset

    def options(self) -> dict[str, str]:
        """Encoder options besides the quality setting."""
        return {"preset": self.preset}

    @property
    def version(self) -> str:
        opts = ";".join(f"{k}={v}" for k, v in sorted(self.options().items()))
        return f"av {av.__version__}; {self.encoder}; {self.pix_fmt}; intra; {opts}"

    def _filter(self, packets: list[av.Packet]) -> list[av.Packet]:
        """Drop what a decoder does not need from the encoder's packets (nothing by default)."""
        return packets

    def code(self, img: np.ndarray, setting: Setting) -> tuple[int, np.ndarray]:
        h, w = img.shape[:2]
        frame = av.VideoFrame.from_ndarray(_pad_edges(img, self.min_side), format="rgb24")
        frame = frame.reformat(
            format=self.pix_fmt, dst_colorspace=_COLORSPACE, dst_color_range=_RANGE, interpolation=_SWS
        )

        enc = av.CodecContext.create(self.encoder, "w")
        enc.width, enc.height, enc.pix_fmt = frame.width, frame.height, self.pix_fmt
        enc.time_base = Fraction(1, 25)
        enc.gop_size = 1
        enc.options = {**self.options(), self.quality_option: str(setting)}
        packets = self._filter(enc.encode(frame) + enc.encode(None))
        nbytes = sum(p.size for p in packets)

        dec = av.CodecContext.create(self.decoder, "r")
        frames = [f for p in [*packets, None] for f in dec.decode(p)]
        if len(frames) != 1:
            raise RuntimeError(f"{self.decoder} decoded {len(frames)} frames from one coded frame")
        rgb = frames[0].reformat(format="rgb24", src_colorspace=_COLORSPACE, src_color_range=_RANGE, interpolation=_SWS)
        return nbytes, np.ascontiguousarray(rgb.to_ndarray()[:h, :w])


def _pad_edges(img: np.ndarray, min_side: int) -> np.ndarray:
    """Pad bottom/right by edge repetition to even sides of at least ``min_side``."""
    h, w = img.shape[:2]
    ph = max(h + h % 2, min_side) - h
    pw = max(w + w % 2, min_side) - w
    return np.pad(img, ((0, ph), (0, pw), (0, 0)), mode="edge") if ph or pw else img


class X264Codec(_PyAVIntraCodec):
    """H.264 High 4:4:4 intra via libx264, constant QP, ``tune=psnr`` (psycho-visual tools off, as we score PSNR).

    x264 writes an SEI with its version and options (~600 bytes) into the first frame; it is metadata no
    decoder needs, so FFmpeg's ``filter_units`` bitstream filter removes all SEI before counting.
    """

    name = "x264"
    encoder, decoder, pix_fmt, quality_option = "libx264", "h264", "yuv444p", "qp"

    def __init__(
        self, settings: Sequence[int] = (47, 44, 41, 38, 35, 32, 29, 26, 23), preset: str = "veryslow"
    ) -> None:
        super().__init__(settings, preset)

    def options(self) -> dict[str, str]:
        return {**super().options(), "tune": "psnr"}

    def _filter(self, packets: list[av.Packet]) -> list[av.Packet]:
        bsf = av.BitStreamFilterContext("filter_units=remove_types=6", "h264")
        return [out for p in [*packets, None] for out in bsf.filter(p)]


class X265Codec(_PyAVIntraCodec):
    """HEVC Main 4:4:4 intra via libx265, constant QP, ``tune=psnr``, without x265's version-info SEI (``info=0``)."""

    name = "x265"
    encoder, decoder, pix_fmt, quality_option = "libx265", "hevc", "yuv444p", "qp"
    min_side = 16  # libx265 refuses smaller pictures

    def __init__(
        self, settings: Sequence[int] = (47, 44, 41, 38, 35, 32, 29, 26, 23), preset: str = "veryslow"
    ) -> None:
        super().__init__(settings, preset)

    def options(self) -> dict[str, str]:
        return {**super().options(), "tune": "psnr", "x265-params": "info=0:log-level=error"}


class SvtAv1Codec(_PyAVIntraCodec):
    """AV1 intra via SVT-AV1 in **4:2:0** (libsvtav1 only takes yuv420p / yuv420p10le), CRF, decoded with dav1d.

    The chroma subsampling is part of its loss; the name says so: ``svtav1-420``.
    """

    name = "svtav1-420"
    encoder, decoder, pix_fmt, quality_option = "libsvtav1", "libdav1d", "yuv420p", "crf"

    def __init__(
        self, settings: Sequence[int] = (54, 50, 46, 42, 38, 34, 30, 26, 22, 18, 14, 10), preset: str = "2"
    ) -> None:
        super().__init__(settings, preset)

    def code(self, img: np.ndarray, setting: Setting) -> tuple[int, np.ndarray]:
        # SVT-AV1 prints its whole configuration at info level for every encoder; keep errors only
        # unless the caller chose a level.
        os.environ.setdefault("SVT_LOG", "1")
        return super().code(img, setting)


BASELINES: dict[str, type[Codec]] = {
    "jpeg": JpegCodec,
    "webp": WebpCodec,
    "x264": X264Codec,
    "x265": X265Codec,
    "svtav1": SvtAv1Codec,
}


def get_baseline(name: str) -> Codec:
    """A baseline codec with default settings, by its :data:`BASELINES` key."""
    try:
        return BASELINES[name]()
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}") from None
