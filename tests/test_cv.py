"""The OpenCV-shaped API: VideoWriter -> VideoCapture round trips (files, TCP, MPEG-TS), frame-size handling,
rate-control properties, seeking, imencode/imdecode; checked against FrameDecoder and with cv2's own constants.

Frames are real footage (examples/sample.mp4) scaled to 64x48; torch runs one thread.
"""

from __future__ import annotations

import dataclasses
import io
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import streamcodec
from streamcodec import bitstream
from streamcodec.bitstream.format import PACKET_HEADER_SIZE
from streamcodec.codec.quality import index_to_q
from streamcodec.io import open_source
from streamcodec.ratecontrol import ABRController, CBRController

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sample.mp4"
W, H = 64, 48
FPS = 12.5
SCV1 = streamcodec.VideoWriter_fourcc(*"SCV1")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clip() -> list[np.ndarray]:
    """Six BGR frames of the sample clip at 64x48."""
    with open_source(SAMPLE, frames=6, scale=(W, H)) as source:
        return [np.ascontiguousarray(frame.image[..., ::-1]) for frame in source]


def write(path: str | Path | io.BytesIO, frames: list, model, params: tuple = (), **kwargs) -> streamcodec.VideoWriter:
    with streamcodec.VideoWriter(path, SCV1, FPS, (W, H), params=params, model=model, **kwargs) as writer:
        assert writer.isOpened(), writer.error
        for frame in frames:
            writer.write(frame)
    return writer


def read_all(cap: streamcodec.VideoCapture) -> list[np.ndarray]:
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / mse)


def test_written_frames_read_back_bit_exactly_as_frame_decoder_decodes(tmp_path: Path, clip, model) -> None:
    out = tmp_path / "clip.scv"
    writer = write(out, clip, model)
    assert writer.frames_written == 6 and not writer.isOpened()
    with streamcodec.VideoCapture(out, model=model) as cap:
        assert cap.isOpened()
        assert cap.get(cv2.CAP_PROP_FPS) == FPS and cap.get(streamcodec.CAP_PROP_FRAME_COUNT) == 6
        assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (W, H)
        frames = read_all(cap)
        assert cap.get(cv2.CAP_PROP_POS_FRAMES) == 6
        assert cap.get(cv2.CAP_PROP_POS_MSEC) == pytest.approx(5 / FPS * 1000)
    assert len(frames) == 6 and all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in frames)
    assert min(psnr(a, b) for a, b in zip(frames, clip, strict=True)) > 24
    with bitstream.open(out) as stream:
        assert stream.header.fps == Fraction(25, 2) and stream.header.model_name == "evc-ss"
        decoder = streamcodec.FrameDecoder(model, stream.header)
        expected = [decoder.decode(packet, i)[..., ::-1] for i, packet in enumerate(stream)]
    assert all(np.array_equal(a, b) for a, b in zip(frames, expected, strict=True))


def test_tensor_frames_code_exactly_like_bgr_arrays(clip, model) -> None:
    arrays, tensors = io.BytesIO(), io.BytesIO()
    write(arrays, clip[:2], model)
    rgb = [torch.from_numpy(f[..., ::-1].copy()).permute(2, 0, 1).float() / 255 for f in clip[:2]]
    write(tensors, [rgb[0], rgb[1].unsqueeze(0)], model)
    assert arrays.getvalue() == tensors.getvalue()


def test_wrong_frames_are_dropped_and_counted_or_raise_when_strict(clip, model) -> None:
    out = io.BytesIO()
    bad = [clip[0][:, :32], clip[0].astype(np.float32), clip[0][..., 0], torch.rand(3, H, W // 2)]
    writer = write(out, [clip[0], *bad, clip[1]], model)
    assert (writer.frames_written, writer.frames_dropped) == (2, 4)
    assert writer.get(streamcodec.VIDEOWRITER_PROP_DROPPED) == 4
    assert len(read_all(streamcodec.VideoCapture(io.BytesIO(out.getvalue()), model=model))) == 2

    with streamcodec.VideoWriter(io.BytesIO(), SCV1, FPS, (W, H), strict=True, model=model) as writer:
        with pytest.raises(streamcodec.FrameSizeError, match="this writer takes 48x64x3"):
            writer.write(clip[0][:, :32])
        with pytest.raises(ValueError, match="uint8"):
            writer.write(clip[0].astype(np.float32))
        assert writer.frames_written == 0


def test_grey_frames_with_is_color_false(clip, model) -> None:
    out = io.BytesIO()
    grey = cv2.cvtColor(clip[0], cv2.COLOR_BGR2GRAY)
    writer = write(out, [grey, clip[0]], model, isColor=False)
    assert (writer.frames_written, writer.frames_dropped) == (1, 1)
    frame = streamcodec.imdecode(out.getvalue(), model=model)
    assert psnr(frame, np.repeat(grey[..., None], 3, axis=2)) > 24


def test_unknown_fourcc_does_not_open_or_raises_when_strict(tmp_path: Path, model) -> None:
    assert cv2.VideoWriter_fourcc(*"SCV1") == SCV1
    writer = streamcodec.VideoWriter(tmp_path / "x.scv", cv2.VideoWriter_fourcc(*"XVID"), FPS, (W, H), model=model)
    assert not writer.isOpened() and "XVID" in writer.error and not (tmp_path / "x.scv").exists()
    writer.write(np.zeros((H, W, 3), np.uint8))  # ignored, as cv2 ignores writes to a writer that did not open
    with pytest.raises(ValueError, match="XVID"):
        streamcodec.VideoWriter(tmp_path / "x.scv", cv2.VideoWriter_fourcc(*"XVID"), FPS, (W, H), strict=True)


def test_a_device_this_machine_lacks_does_not_open_or_raises_when_strict(tmp_path: Path) -> None:
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last (cuda:0 on a machine without CUDA)
    writer = streamcodec.VideoWriter(tmp_path / "x.scv", SCV1, FPS, (W, H), device=missing)
    assert not writer.isOpened() and f"device {missing}" in writer.error
    with pytest.raises(ValueError, match="CUDA device"):
        streamcodec.load_model("evc-s", device=missing)


def test_capture_of_what_is_not_a_stream(tmp_path: Path) -> None:
    cap = streamcodec.VideoCapture(SAMPLE)
    assert not cap.isOpened() and "not an SCV stream" in cap.error and cap.read() == (False, None)
    with pytest.raises(streamcodec.CorruptStreamError):
        streamcodec.VideoCapture(SAMPLE, strict=True)
    with pytest.raises(FileNotFoundError):
        streamcodec.VideoCapture(tmp_path / "missing.scv", strict=True)


def test_read_skips_a_frame_that_cannot_be_decoded_or_raises_when_strict(tmp_path: Path, clip, model) -> None:
    write(tmp_path / "good.scv", clip[:3], model)
    with bitstream.open(tmp_path / "good.scv") as stream:
        header, packets = stream.header, list(stream)
    bad = dataclasses.replace(packets[1], payload=b"\x07" + packets[1].payload[1:])  # intact, but undecodable
    with bitstream.open(tmp_path / "bad.scv", "w", header=header) as out:
        for packet in (packets[0], bad, packets[2]):
            out.write(packet)
    cap = streamcodec.VideoCapture(tmp_path / "bad.scv", model=model)
    got = [cap.read()[0] for _ in range(3)]
    assert got == [True, True, False] and cap.skipped == 1 and "payload" in cap.error
    with pytest.raises(streamcodec.CorruptStreamError):
        strict = streamcodec.VideoCapture(tmp_path / "bad.scv", model=model, strict=True)
        strict.read(), strict.read()


def bits_per_frame(data: bytes) -> float:
    """Mean packet size in bits, header included: what a rate controller's bitrate counts."""
    with bitstream.open(io.BytesIO(data)) as stream:
        sizes = [PACKET_HEADER_SIZE + len(packet.payload) for packet in stream]
    return 8 * sum(sizes) / len(sizes)


def test_rate_properties_drive_the_encoders_controller(clip, model) -> None:
    cqp, abr = io.BytesIO(), io.BytesIO()
    write(cqp, clip, model, params=(streamcodec.VIDEOWRITER_PROP_QUALITY, 63))
    target = 1300 * FPS  # 1300 bits a frame: about half of what q 63 spends here
    params = (
        streamcodec.VIDEOWRITER_PROP_RC_MODE,
        streamcodec.VIDEOWRITER_RC_ABR,
        streamcodec.VIDEOWRITER_PROP_BITRATE,
        target,
    )
    writer = streamcodec.VideoWriter(abr, SCV1, FPS, (W, H), params=params, model=model)
    assert isinstance(writer.encoder.controller, ABRController) and writer.encoder.controller.bitrate == target
    assert writer.get(streamcodec.VIDEOWRITER_PROP_RC_MODE) == streamcodec.VIDEOWRITER_RC_ABR
    for frame in clip:
        writer.write(frame)
    writer.release()
    assert bits_per_frame(cqp.getvalue()) > 1.5 * bits_per_frame(abr.getvalue())
    assert bits_per_frame(abr.getvalue()) == pytest.approx(1300, rel=0.15)


def test_set_changes_quality_and_mode_between_frames(clip, model) -> None:
    out = io.BytesIO()
    writer = streamcodec.VideoWriter(out, SCV1, FPS, (W, H), model=model)
    assert writer.get(streamcodec.VIDEOWRITER_PROP_RC_MODE) == streamcodec.VIDEOWRITER_RC_CQP
    assert writer.encoder.controller is None
    writer.write(clip[0])
    assert (
        writer.set(streamcodec.VIDEOWRITER_PROP_QUALITY, 10) and writer.get(streamcodec.VIDEOWRITER_PROP_QUALITY) == 10
    )
    writer.write(clip[1])
    # cbr without a bitrate is refused and changes nothing; a bitrate alone means abr, as `encode --bitrate`
    assert not writer.set(streamcodec.VIDEOWRITER_PROP_RC_MODE, streamcodec.VIDEOWRITER_RC_CBR)
    assert "BITRATE" in writer.error and writer.encoder.controller is None
    assert not writer.set(cv2.VIDEOWRITER_PROP_NSTRIPES, 2) and not writer.set(streamcodec.VIDEOWRITER_PROP_QUALITY, 97)
    assert writer.set(streamcodec.VIDEOWRITER_PROP_BITRATE, 30000)
    assert isinstance(writer.encoder.controller, ABRController)
    assert writer.set(streamcodec.VIDEOWRITER_PROP_RC_MODE, streamcodec.VIDEOWRITER_RC_CBR)
    assert isinstance(writer.encoder.controller, CBRController) and writer.encoder.controller.vbv.bufsize == 30000
    writer.write(clip[2])
    assert writer.get(cv2.VIDEOWRITER_PROP_FRAMEBYTES) > 0
    writer.release()
    with bitstream.open(io.BytesIO(out.getvalue())) as stream:
        assert [index_to_q(packet.q_index) for packet in stream][:2] == [32.0, 10.0]
    with pytest.raises(ValueError, match="BITRATE"):
        streamcodec.VideoWriter(io.BytesIO(), SCV1, FPS, (W, H), strict=True, model=model).set(
            streamcodec.VIDEOWRITER_PROP_RC_MODE, streamcodec.VIDEOWRITER_RC_ABR
        )


def test_seek_with_pos_frames_and_grab_retrieve(tmp_path: Path, clip, model) -> None:
    out = tmp_path / "clip.scv"
    write(out, clip, model)
    cap = streamcodec.VideoCapture(out, model=model)
    frames = read_all(cap)
    assert cap.set(cv2.CAP_PROP_POS_FRAMES, 3) and cap.get(cv2.CAP_PROP_POS_FRAMES) == 3
    ok, frame = cap.read()
    assert ok and np.array_equal(frame, frames[3]) and cap.get(cv2.CAP_PROP_POS_FRAMES) == 4
    assert not cap.set(cv2.CAP_PROP_POS_FRAMES, 6) and not cap.set(cv2.CAP_PROP_FPS, 30)
    assert cap.set(cv2.CAP_PROP_POS_FRAMES, 0) and cap.grab() and cap.grab()
    ok, frame = cap.retrieve()
    assert ok and np.array_equal(frame, frames[1])
    cap.release()
    assert not cap.isOpened() and cap.read() == (False, None)


def test_imencode_imdecode_round_trip(clip, model) -> None:
    ok, buf = streamcodec.imencode(".scv", clip[0], [streamcodec.VIDEOWRITER_PROP_QUALITY, 40])
    assert ok and buf.dtype == np.uint8 and buf.ndim == 1
    image = streamcodec.imdecode(buf, cv2.IMREAD_COLOR)
    with streamcodec.VideoCapture(io.BytesIO(buf.tobytes()), model=model) as cap:
        assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 1
        assert np.array_equal(image, cap.read()[1])
    encoder = streamcodec.FrameEncoder(model, W, H, 40)  # the plain codec API gives the same image
    packet, _, _ = encoder.encode(np.ascontiguousarray(clip[0][..., ::-1]), 0)
    assert np.array_equal(image, streamcodec.FrameDecoder(model, encoder.header).decode(packet)[..., ::-1])
    assert streamcodec.imdecode(b"not a stream") is None
    with pytest.raises(ValueError, match="png"):
        streamcodec.imencode(".png", clip[0])


def test_tcp_and_mpegts_outputs_carry_the_same_frames(tmp_path: Path, clip, model) -> None:
    frames = clip[:3]
    file_out, ts_out = tmp_path / "clip.scv", tmp_path / "clip.ts"
    writers = [
        streamcodec.VideoWriter(path, SCV1, FPS, (W, H), model=model)
        for path in (file_out, "tcp://127.0.0.1:0", ts_out)
    ]
    assert all(w.isOpened() for w in writers), [w.error for w in writers]
    assert writers[1].url.startswith("tcp://127.0.0.1:") and not writers[1].url.endswith(":0")
    client = streamcodec.VideoCapture(writers[1].url, model=model, open_timeout=5, read_timeout=20)
    assert client.isOpened(), client.error
    for frame in frames:
        for writer in writers:
            writer.write(frame)
    for writer in writers:
        writer.release()
    expected = read_all(streamcodec.VideoCapture(file_out, model=model))
    received = read_all(client)
    assert client.get(cv2.CAP_PROP_FRAME_COUNT) == -1 and not client.set(cv2.CAP_PROP_POS_FRAMES, 0)
    demuxed = read_all(streamcodec.VideoCapture(ts_out, model=model))
    assert len(expected) == len(received) == len(demuxed) == 3
    assert all(np.array_equal(a, b) and np.array_equal(a, c) for a, b, c in zip(expected, received, demuxed))
