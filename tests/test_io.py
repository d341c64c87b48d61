"""Reading and writing frames: images, folders, videos, lavfi; PNG, Y4M, H.264 and raw sinks."""

from __future__ import annotations

import io
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamcodec.io import Frame, open_sink, open_source

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sample.mp4"


def drawn_frames(count: int, width: int, height: int) -> list[np.ndarray]:
    """Smooth gradients with a bright square moving right: easy to code, easy to check."""
    y, x = np.mgrid[0:height, 0:width]
    frames = []
    for i in range(count):
        image = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, 96)], axis=-1)
        image[4:12, 2 + 3 * i : 10 + 3 * i] = 255
        frames.append(image.astype(np.uint8))
    return frames


def write_h264(path: Path, frames: list[np.ndarray], rate: int = 10, first_pts: int = 0) -> None:
    """Encode with PyAV directly, so the readers are checked against an independent writer."""
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv444p"  # 4:4:4 allows the odd sizes that 4:2:0 refuses
        stream.options = {"crf": "10", "preset": "ultrafast"}
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = first_pts + index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_png(path: Path, image: np.ndarray) -> None:
    encoder = av.CodecContext.create("png", "w")
    encoder.height, encoder.width = image.shape[:2]
    encoder.pix_fmt = "rgb24"
    packets = encoder.encode(av.VideoFrame.from_ndarray(image, format="rgb24"))
    path.write_bytes(b"".join(bytes(packet) for packet in packets))


def read_all(source_path: Path | str, **kwargs) -> list[Frame]:
    with open_source(source_path, **kwargs) as source:
        return list(source)


# --- readers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("width, height", [(64, 48), (65, 47)])
def test_reads_a_video(tmp_path: Path, width: int, height: int) -> None:
    drawn = drawn_frames(6, width, height)
    path = tmp_path / "clip.mp4"
    write_h264(path, drawn)
    with open_source(path) as source:
        assert (source.width, source.height) == (width, height)
        assert source.fps == 10
        assert source.frame_count == 6
        frames = list(source)
    assert [f.index for f in frames] == list(range(6))
    assert frames[0].pts == 0
    assert all(b.pts > a.pts for a, b in zip(frames, frames[1:]))
    assert all(f.time_base == source.time_base for f in frames)
    assert [f.pts * f.time_base for f in frames] == [Fraction(i, 10) for i in range(6)]
    for frame, image in zip(frames, drawn):
        assert frame.image.shape == (height, width, 3)
        assert frame.image.dtype == np.uint8 and frame.image.flags.c_contiguous
        assert np.abs(frame.image.astype(int) - image).mean() < 3


def test_timestamps_start_at_zero(tmp_path: Path) -> None:
    write_h264(tmp_path / "late.mp4", drawn_frames(4, 64, 48), first_pts=7)
    frames = read_all(tmp_path / "late.mp4")
    assert [f.pts * f.time_base for f in frames] == [Fraction(i, 10) for i in range(4)]
    write_h264(tmp_path / "bare.h264", drawn_frames(4, 64, 48))  # no timestamps in the file
    pts = [f.pts for f in read_all(tmp_path / "bare.h264")]
    assert pts[0] == 0 and len(set(np.diff(pts))) == 1 and pts[1] > 0


def test_frames_and_scale(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    write_h264(path, drawn_frames(6, 64, 48))
    with open_source(path, frames=3, scale=(32, 24)) as source:
        assert (source.width, source.height, source.frame_count) == (32, 24, 3)
        frames = list(source)
    assert len(frames) == 3
    assert all(f.image.shape == (24, 32, 3) and f.image.flags.c_contiguous for f in frames)


def test_reads_the_bundled_sample() -> None:
    frames = read_all(SAMPLE, frames=2)
    assert len(frames) == 2 and frames[0].image.shape == (180, 320, 3)


def test_lavfi_testsrc() -> None:
    with open_source("testsrc=size=64x48:rate=10", format="lavfi", frames=5) as source:
        assert (source.width, source.height, source.fps) == (64, 48, 10)
        frames = list(source)
    assert [f.pts for f in frames] == [0, 1, 2, 3, 4]
    assert frames[0].image.shape == (48, 64, 3)


def test_single_image_is_exact(tmp_path: Path) -> None:
    image = np.random.default_rng(1).integers(0, 256, (47, 65, 3), dtype=np.uint8)
    write_png(tmp_path / "still.png", image)
    with open_source(tmp_path / "still.png") as source:
        assert (source.width, source.height, source.frame_count) == (65, 47, 1)
        (frame,) = list(source)
    assert frame.pts == 0 and frame.index == 0
    np.testing.assert_array_equal(frame.image, image)


def test_folder_of_images(tmp_path: Path) -> None:
    drawn = drawn_frames(4, 40, 30)
    for index, image in reversed(list(enumerate(drawn))):
        write_png(tmp_path / f"img_{index:03d}.png", image)
    (tmp_path / "notes.txt").write_text("not an image")
    with open_source(tmp_path) as source:
        assert (source.width, source.height, source.frame_count) == (40, 30, 4)
        assert source.fps == 25 and source.time_base == Fraction(1, 25)
        frames = list(source)
    assert [f.pts for f in frames] == [0, 1, 2, 3]
    for frame, image in zip(frames, drawn):
        np.testing.assert_array_equal(frame.image, image)
    with open_source(tmp_path, frames=2, scale=(20, 15), fps=Fraction(30000, 1001)) as source:
        assert source.time_base == Fraction(1001, 30000)
        assert [f.image.shape for f in source] == [(15, 20, 3)] * 2


def test_folder_of_mixed_sizes(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png", np.zeros((30, 40, 3), np.uint8))
    write_png(tmp_path / "b.png", np.zeros((31, 40, 3), np.uint8))
    with pytest.raises(ValueError, match="same size"):
        read_all(tmp_path)


def test_missing_and_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        open_source(tmp_path / "nope.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"this is not a video" * 10)
    with pytest.raises(ValueError, match="junk.mp4"):
        open_source(tmp_path / "junk.mp4")
    (tmp_path / "junk.png").write_bytes(b"this is not an image")
    with pytest.raises(ValueError, match="junk.png"):
        open_source(tmp_path / "junk.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image"):
        open_source(tmp_path / "empty")


# --- writers ---------------------------------------------------------------------------------


def test_png_pattern_round_trip(tmp_path: Path) -> None:
    drawn = drawn_frames(3, 65, 47)
    with open_sink(str(tmp_path / "out_%05d.png"), 65, 47, None) as sink:
        for image in drawn:
            sink.write(image)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out_00001.png",
        "out_00002.png",
        "out_00003.png",
    ]
    for frame, image in zip(read_all(tmp_path), drawn):
        np.testing.assert_array_equal(frame.image, image)


def test_single_png(tmp_path: Path) -> None:
    image = drawn_frames(1, 65, 47)[0]
    with open_sink(str(tmp_path / "one.png"), 65, 47, None) as sink:
        sink.write(image)
        with pytest.raises(ValueError, match="%05d"):
            sink.write(image)
    np.testing.assert_array_equal(read_all(tmp_path / "one.png")[0].image, image)


def test_y4m(tmp_path: Path) -> None:
    drawn = drawn_frames(2, 65, 47)
    path = tmp_path / "out.y4m"
    with open_sink(str(path), 65, 47, Fraction(30000, 1001)) as sink:
        for image in drawn:
            sink.write(image)
    data = path.read_bytes()
    header, rest = data.split(b"\n", 1)
    assert header.split()[:5] == [b"YUV4MPEG2", b"W65", b"H47", b"F30000:1001", b"Ip"]
    assert b"C444" in header.split()
    frame_size = len(b"FRAME\n") + 3 * 65 * 47
    assert len(rest) == 2 * frame_size and rest.startswith(b"FRAME\n")
    y, cb, cr = np.frombuffer(rest[6:frame_size], np.uint8).reshape(3, 47, 65).astype(float)
    r = y + 1.402 * (cr - 128)
    g = y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128)
    b = y + 1.772 * (cb - 128)
    assert np.abs(np.stack([r, g, b], -1) - drawn[0]).max() <= 2
    frames = read_all(path)  # FFmpeg reads it back too
    assert len(frames) == 2 and frames[1].image.shape == (47, 65, 3)
    assert np.abs(frames[1].image.astype(int) - drawn[1]).max() <= 2


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_h264_video(tmp_path: Path, suffix: str) -> None:
    drawn = drawn_frames(5, 65, 47)
    path = tmp_path / f"out{suffix}"
    with open_sink(str(path), 65, 47, Fraction(25, 2)) as sink:
        for image in drawn:
            sink.write(image)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.average_rate == Fraction(25, 2)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == 5
    assert frames[0].shape == (48, 66, 3)  # padded to even for 4:2:0
    assert np.abs(frames[2][:47, :65].astype(int) - drawn[2]).mean() < 4


@pytest.mark.parametrize("suffix", [".mkv", ".avi", ".nut"])
def test_ffv1_video_is_lossless(tmp_path: Path, suffix: str) -> None:
    drawn = drawn_frames(3, 65, 47)
    path = tmp_path / f"out{suffix}"
    with open_sink(str(path), 65, 47, Fraction(25), codec="ffv1") as sink:
        for image in drawn:
            sink.write(image)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == "ffv1"
    frames = read_all(path)
    assert len(frames) == 3 and all(np.array_equal(f.image, d) for f, d in zip(frames, drawn, strict=True))
    with pytest.raises(ValueError, match="FFV1 needs a .mkv, .avi or .nut output"):
        open_sink(str(tmp_path / "out.mp4"), 65, 47, None, codec="ffv1")


def test_raw_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffer))
    drawn = drawn_frames(2, 65, 47)
    with open_sink("-", 65, 47, None) as sink:
        for image in drawn:
            sink.write(image)
    assert buffer.getvalue() == b"".join(image.tobytes() for image in drawn)


def test_writer_errors(tmp_path: Path) -> None:
    with open_sink(str(tmp_path / "x_%05d.png"), 64, 48, None) as sink:
        with pytest.raises(ValueError, match="48, 64, 3"):
            sink.write(np.zeros((48, 65, 3), np.uint8))
        with pytest.raises(ValueError, match="uint8"):
            sink.write(np.zeros((48, 64, 3), np.float32))
    with pytest.raises(ValueError, match="cannot tell"):
        open_sink(str(tmp_path / "out.gif"), 64, 48, None)
