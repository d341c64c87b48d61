"""Frame sources: images, folders of images and anything FFmpeg opens, as RGB ``uint8`` frames."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"})
DEFAULT_FPS = Fraction(25)  # rate of images, and of any input that states none
NETWORK_TIMEOUT = (10.0, 10.0)  # seconds to open, seconds to wait for each read

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass
class Frame:
    """One decoded picture.

    ``image`` is ``(height, width, 3)`` RGB ``uint8``, C-contiguous. ``pts`` counts ``time_base``
    units from the first frame of the source (0); ``index`` counts frames from 0.
    """

    image: np.ndarray
    pts: int | None
    time_base: Fraction | None
    index: int


class FrameSource:
    """An iterable of :class:`Frame` read once, in order; close it (or use ``with``) when done.

    ``width``/``height`` are those of the frames it yields (after any scaling); ``frame_count``
    is ``None`` when the source does not say how many frames it holds.
    """

    def __init__(
        self,
        width: int,
        height: int,
        fps: Fraction | None,
        time_base: Fraction,
        frame_count: int | None,
    ) -> None:
        self._width = width
        self._height = height
        self._fps = fps
        self._time_base = time_base
        self._frame_count = frame_count

    @property
    def width(self) -> int:
        """Width of the frames yielded, in pixels (after any scaling)."""
        return self._width

    @property
    def height(self) -> int:
        """Height of the frames yielded, in pixels (after any scaling)."""
        return self._height

    @property
    def fps(self) -> Fraction | None:
        """Nominal frame rate in frames per second, or None when the source states none."""
        return self._fps

    @property
    def time_base(self) -> Fraction:
        """The unit of the frames' ``pts``, in seconds."""
        return self._time_base

    @property
    def frame_count(self) -> int | None:
        """How many frames the source holds, or None when it does not say."""
        return self._frame_count

    @property
    def other_streams(self) -> tuple[str, ...]:
        """The input's streams this source does not read (audio, subtitles, more video), described for people;
        a ``.scv`` stream holds one video stream, so encoding leaves them out."""
        return ()

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the underlying file or connection."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ImageSource(FrameSource):
    """Still images read one file per frame; every image must have the size of the first."""

    def __init__(
        self,
        paths: list[Path],
        fps: Fraction,
        frames: int | None,
        scale: tuple[int, int] | None,
    ) -> None:
        self._paths = paths if frames is None else paths[:frames]
        self._scale = scale
        first = _decode_image(self._paths[0])
        self._source_size = (first.width, first.height)
        width, height = scale or self._source_size
        super().__init__(width, height, fps, 1 / fps, len(self._paths))

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self._paths):
            picture = _decode_image(path)
            if (picture.width, picture.height) != self._source_size:
                first_w, first_h = self._source_size
                raise ValueError(
                    f"{path} is {picture.width}x{picture.height} but {self._paths[0].name} is "
                    f"{first_w}x{first_h}: all images of a folder must have the same size"
                )
            yield Frame(_to_rgb(picture, self._scale), index, self.time_base, index)


class ContainerSource(FrameSource):
    """The first video stream of an FFmpeg input: a file, a URL or a device/filter graph."""

    def __init__(
        self,
        container: av.container.InputContainer,
        name: str,
        frames: int | None,
        scale: tuple[int, int] | None,
    ) -> None:
        if not container.streams.video:
            container.close()
            raise ValueError(f"{name} has no video stream")
        self._container = container
        self._stream = container.streams.video[0]
        self._stream.thread_type = "AUTO"
        self._name = name
        self._frames = frames
        self._scale = scale
        codec = self._stream.codec_context
        width, height = scale or (codec.width, codec.height)
        fps = self._stream.average_rate
        count = self._stream.frames or None
        if count is not None and frames is not None:
            count = min(count, frames)
        time_base = Fraction(self._stream.time_base or 1 / (fps or DEFAULT_FPS))
        super().__init__(width, height, Fraction(fps) if fps else None, time_base, count)

    @property
    def other_streams(self) -> tuple[str, ...]:
        return tuple(_describe_stream(s) for s in self._container.streams if s.index != self._stream.index)

    def __iter__(self) -> Iterator[Frame]:
        # A frame without pts is placed one frame duration after the previous one.
        step = max(1, round(1 / (self.fps * self.time_base))) if self.fps else 1
        first: int | None = None
        pts = -step
        try:
            for index, picture in enumerate(self._container.decode(self._stream)):
                if picture.pts is None:
                    pts += step
                else:
                    if first is None:
                        first = picture.pts - (pts + step)
                    pts = picture.pts - first
                yield Frame(_to_rgb(picture, self._scale), pts, self.time_base, index)
                if index + 1 == self._frames:
                    return
        except av.FFmpegError as error:
            raise ValueError(f"cannot decode {self._name}: {error.strerror}") from error

    def close(self) -> None:
        self._container.close()


def _describe_stream(stream: av.stream.Stream) -> str:
    """``audio #1 (aac, stereo, 48000 Hz)``: a stream's kind, index and codec."""
    context = getattr(stream, "codec_context", None)  # data and attachment streams may have none
    details = [getattr(context, "name", None) or "unknown codec"]
    if stream.type == "audio" and context is not None:
        details += [context.layout.name, f"{context.sample_rate} Hz"]
    elif stream.type == "video" and context is not None:
        details.append(f"{context.width}x{context.height}")
    return f"{stream.type} #{stream.index} ({', '.join(details)})"


def open_source(
    input: str | Path,
    frames: int | None = None,
    scale: tuple[int, int] | None = None,
    options: dict[str, str] | None = None,
    format: str | None = None,
    fps: Fraction | int | None = None,
) -> FrameSource:
    """Open an image, a folder of images, a video file, a URL or (with ``format``) a device.

    ``frames`` stops after that many frames; ``scale=(width, height)`` resizes every frame.
    ``options`` and ``format`` go to :func:`av.open` (e.g. ``format="lavfi"``); URLs get
    a 10 s timeout and ``rtsp://`` uses TCP unless ``options`` says otherwise. ``fps`` sets the
    rate of images (default 25); videos report their own. A folder yields its images sorted by
    name. Raises :class:`FileNotFoundError` for a missing path and :class:`ValueError` for an
    input that cannot be read.
    """
    if frames is not None and frames < 1:
        raise ValueError(f"frames must be at least 1, not {frames}")
    if scale is not None and min(scale) < 1:
        raise ValueError(f"scale must be a positive (width, height), not {scale}")
    name = str(input)
    if format is None and not _URL.match(name):
        path = Path(input)
        if not path.exists():
            raise FileNotFoundError(f"no such file or folder: {path}")
        if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
            paths = _image_paths(path)
            return ImageSource(paths, Fraction(fps or DEFAULT_FPS), frames, scale)
    options = dict(options or {})
    kwargs: dict[str, object] = {}
    if _URL.match(name):
        kwargs["timeout"] = NETWORK_TIMEOUT
        if name.lower().startswith("rtsp://"):
            options.setdefault("rtsp_transport", "tcp")
    try:
        container = av.open(name, format=format, options=options, **kwargs)
    except av.FFmpegError as error:
        if isinstance(error, FileNotFoundError):
            raise FileNotFoundError(f"no such file: {name}") from error
        raise ValueError(f"cannot open {name}: {error.strerror}") from error
    return ContainerSource(container, name, frames, scale)


def _image_paths(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise ValueError(f"{path} holds no image ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths


def _decode_image(path: Path) -> av.VideoFrame:
    try:
        with av.open(str(path)) as container:
            return next(container.decode(video=0))
    except (av.FFmpegError, StopIteration, IndexError) as error:
        raise ValueError(f"cannot read image {path}") from error


def _to_rgb(picture: av.VideoFrame, scale: tuple[int, int] | None) -> np.ndarray:
    if scale is not None:
        picture = picture.reformat(scale[0], scale[1], format="rgb24")
    return np.ascontiguousarray(picture.to_ndarray(format="rgb24"))
