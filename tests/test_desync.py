"""Cross-setup decoding check (`streamcodec desync-check`): counts, qualities, latents-only and worker processes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from streamcodec import bitstream
from streamcodec.bench import synthetic_frame
from streamcodec.cli import main
from streamcodec.codec.evc import EVC
from streamcodec.codec.stream import FrameDecoder, FrameEncoder
from streamcodec.desync import SETUPS, desync_check
from streamcodec.errors import DesyncError, StreamError

FRAMES = [synthetic_frame(96, 64, seed=i) for i in range(3)]


def test_every_frame_at_every_quality_decodes_across_thread_counts(tmp_path: Path) -> None:
    stream = tmp_path / "coded.scv"
    full = desync_check(FRAMES, [SETUPS["cpu-2t"]], [SETUPS["cpu-1t"]], qps=(0, 32, 63), save_stream=stream)
    (pair,) = full["pairs"]
    assert (pair["frames"], pair["desynced"]) == (9, 0) and pair["max_abs_diff"] <= 1
    with bitstream.open(stream) as reader:  # the first encode setup's stream: every frame at every quality
        assert len({p.q_index for p in reader}) == 3 and reader.packets_read == 9 and reader.complete
    latents = desync_check(FRAMES, [SETUPS["cpu-2t"]], [SETUPS["cpu-1t"]], qps=(0, 32, 63), latents_only=True)
    assert latents["pairs"] == [{"encode": "cpu-2t", "decode": "cpu-1t", "frames": 9, "desynced": 0}]


def test_desynced_latents_are_counted(monkeypatch) -> None:
    decode_latents = EVC.decode_latents
    calls = []

    def every_other(self, payload, height, width, timings=None):
        calls.append(1)
        if len(calls) % 2 == 0:
            raise DesyncError("decoded latents fail their checksum")
        return decode_latents(self, payload, height, width, timings)

    monkeypatch.setattr(EVC, "decode_latents", every_other)
    result = desync_check(FRAMES, [SETUPS["cpu"]], [SETUPS["cpu-1t"]], qps=(10, 50), latents_only=True)
    assert result["pairs"][0]["desynced"] == 3 and result["pairs"][0]["frames"] == 6


def test_check_latents_refuses_damage_without_synthesis(model) -> None:
    encoder = FrameEncoder(model, 96, 64, 32)
    packet = encoder.encode(FRAMES[0], 0)[0]
    decoder = FrameDecoder(model, encoder.header)
    decoder.check_latents(packet, 0)
    payload = bytearray(packet.payload)
    payload[len(payload) // 2] ^= 0x10
    damaged = bitstream.Packet(packet.type, packet.pts, packet.q_index, bytes(payload))
    with pytest.raises(StreamError):
        decoder.check_latents(damaged, 0)


def test_cli_decodes_in_worker_processes(tmp_path: Path, capsys) -> None:
    import cv2

    for i, frame in enumerate(FRAMES):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), frame[:, :, ::-1])
    argv = ["desync-check", str(tmp_path), "--qps", "8,40", "--encode", "cpu-2t", "--decode", "cpu-1t",
            "--latents-only", "--workers", "2", "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["qps"] == [8.0, 40.0] and result["latents_only"]
    assert result["pairs"] == [{"encode": "cpu-2t", "decode": "cpu-1t", "frames": 6, "desynced": 0}]
    assert main(argv[:-4] + ["--workers", "2"]) == 2  # worker processes check latents only
    assert "latents only" in capsys.readouterr().err


def test_videos_load_through_opencv_where_pyav_is_missing(monkeypatch) -> None:
    from streamcodec.cli.desync import _frames

    sample = str(Path(__file__).parent.parent / "examples" / "sample.mp4")
    with_pyav = _frames(sample, 3, (96, 64))
    monkeypatch.setitem(sys.modules, "streamcodec.io", None)  # as on the GPU hosts: `import av` fails
    with_opencv = _frames(sample, 3, (96, 64))
    assert len(with_opencv) == len(with_pyav) == 3 and with_opencv[0].shape == (64, 96, 3)
    assert all(np.abs(a.astype(int) - b).mean() < 4 for a, b in zip(with_opencv, with_pyav, strict=True))
