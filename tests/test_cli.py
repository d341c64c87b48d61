"""The ``streamcodec`` command line: encode/decode/info end to end, pipes, and one-line errors."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import streamcodec
from streamcodec.bench import DECODE_STAGES, ENCODE_STAGES, synthetic_frame
from streamcodec.bitstream.format import HEADER_SIZE
from streamcodec.cli import main
from streamcodec.codec.stream import FrameEncoder, to_image
from streamcodec.io import open_sink, open_source

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sample.mp4"


def write_png(path: Path, image: np.ndarray) -> Path:
    with open_sink(str(path), image.shape[1], image.shape[0], None) as sink:
        sink.write(image)
    return path


def read_png(path: Path) -> np.ndarray:
    with open_source(path) as source:
        return next(iter(source)).image


def run_cli(*argv: str) -> int:
    return main([str(a) for a in argv])


def test_image_round_trip_is_bit_exact(tmp_path: Path, model, capsys) -> None:
    image = synthetic_frame(97, 61, seed=1)
    src = write_png(tmp_path / "in.png", image)
    assert run_cli("encode", src, tmp_path / "a.scv", "--qp", "40", "--psnr", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 1 and summary["width"] == 97 and summary["psnr"] > 10
    # with the encoder's threads: frame threads give each frame fewer, and the synthesis' float sums may round
    # differently (pixels within 1)
    assert run_cli("decode", tmp_path / "a.scv", tmp_path / "out.png", "--frame-threads", "1") == 0
    _, _, x_hat = FrameEncoder(model, 97, 61, 40).encode(image, 0, reconstruct=True)
    assert np.array_equal(read_png(tmp_path / "out.png"), to_image(x_hat))


def test_video_encode_info_and_mp4_decode(tmp_path: Path, capsys) -> None:
    assert run_cli("encode", SAMPLE, tmp_path / "v.scv", "--frames", "3", "--scale", "96x64", "--json") == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 3
    assert run_cli("info", tmp_path / "v.scv", "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["frames"], info["width"], info["height"], info["fps"]) == (3, 96, 64, 12.5)
    assert info["complete"] and len(info["packets"]) == 3 and info["bitrate_kbps"] > 0
    assert run_cli("decode", tmp_path / "v.scv", tmp_path / "v.mp4") == 0
    with av.open(str(tmp_path / "v.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 3


def test_encode_says_which_streams_of_the_input_it_does_not_keep(clip_with_audio: Path, tmp_path: Path,
                                                                capsys) -> None:
    """A .scv stream holds video only: the audio of a movie is named on stderr and in --json, never lost silently."""
    assert run_cli("encode", clip_with_audio, tmp_path / "v.scv", "--json") == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["frames"] == 3 and summary["streams_not_kept"] == ["audio #1 (aac, mono, 16000 Hz)"]
    assert "not kept: audio #1 (aac, mono, 16000 Hz)" in err
    assert run_cli("encode", SAMPLE, tmp_path / "s.scv", "--frames", "1", "--scale", "96x64", "--json") == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["streams_not_kept"] == [] and "not kept" not in err


def test_frame_threads_code_the_same_bytes_and_refuse_rate_control(tmp_path: Path, capsys) -> None:
    threads = torch.get_num_threads()
    common = ("--frames", "4", "--scale", "96x64", "--json")
    # each frame on one torch thread either way: 2 frames x 1 thread, or 1 frame x 1 thread
    stats = tmp_path / "a.jsonl"
    assert run_cli("encode", SAMPLE, tmp_path / "a.scv", *common, "--threads", "2", "--frame-threads", "2",
                   "--stats", stats) == 0
    assert json.loads(capsys.readouterr().out)["frame_threads"] == 2
    records = [json.loads(line) for line in stats.read_text().splitlines()]
    assert [r["pts"] for r in records] == sorted(r["pts"] for r in records) and len(records) == 4
    assert all(r["encode_ms"] == pytest.approx(r["quantise_ms"] + r["entropy_ms"], abs=0.01) for r in records)
    assert run_cli("encode", SAMPLE, tmp_path / "b.scv", *common, "--threads", "1", "--frame-threads", "auto") == 0
    assert json.loads(capsys.readouterr().out)["frame_threads"] == 1  # auto: one thread cannot be shared
    assert (tmp_path / "a.scv").read_bytes() == (tmp_path / "b.scv").read_bytes()
    torch.set_num_threads(threads)
    assert run_cli("decode", tmp_path / "a.scv", tmp_path / "a.y4m", "--frame-threads", "2", "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 4 and summary["frame_threads"] == 2 and summary["complete"]
    assert torch.get_num_threads() == threads  # shared while the pipeline ran, given back after
    assert run_cli("encode", SAMPLE, tmp_path / "c.scv", *common, "--bitrate", "200k", "--frame-threads", "2") == 2
    assert "--frame-threads needs a constant q" in capsys.readouterr().err


def test_compiled_transforms_code_streams_the_plain_decoder_reads(tmp_path: Path, capsys) -> None:
    # torch.compile (inductor: generated C++ on a CPU) fuses the transforms' operators, so pixels and latents may
    # round apart from eager ones; the entropy path is not compiled, so either side decodes the other's stream.
    common = ("--frames", "3", "--scale", "64x48", "--psnr", "--json")
    assert run_cli("encode", SAMPLE, tmp_path / "c.scv", *common, "--compile", "default") == 0
    compiled = json.loads(capsys.readouterr().out)
    assert run_cli("encode", SAMPLE, tmp_path / "e.scv", *common) == 0
    eager = json.loads(capsys.readouterr().out)
    assert compiled["frames"] == 3 and abs(compiled["psnr"] - eager["psnr"]) < 0.05
    assert abs(compiled["bytes"] / eager["bytes"] - 1) < 0.02
    assert run_cli("decode", tmp_path / "c.scv", tmp_path / "c.y4m", "--json") == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 3
    assert run_cli("decode", tmp_path / "e.scv", tmp_path / "e.y4m", "--compile", "default", "--json") == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 3
    with pytest.raises(SystemExit):
        run_cli("encode", SAMPLE, tmp_path / "x.scv", "--compile", "fastest")
    assert "invalid choice: 'fastest'" in capsys.readouterr().err


def test_pipes_stdin_to_stdout(tmp_path: Path) -> None:
    src = write_png(tmp_path / "in.png", synthetic_frame(64, 48, seed=2))
    cmd = [sys.executable, "-m", "streamcodec"]
    encoded = subprocess.run([*cmd, "encode", str(src), "-"], capture_output=True, check=True).stdout
    decoded = subprocess.run([*cmd, "decode", "-", "-"], input=encoded, capture_output=True, check=True).stdout
    assert len(decoded) == 64 * 48 * 3
    # with --json the summary goes to stderr: stdout carries the stream, and only the stream
    done = subprocess.run([*cmd, "encode", str(src), "-", "--json"], capture_output=True, check=True)
    assert done.stdout == encoded and json.loads(done.stderr)["frames"] == 1
    done = subprocess.run([*cmd, "decode", "-", "-", "--json"], input=encoded, capture_output=True, check=True)
    assert done.stdout == decoded and json.loads(done.stderr)["frames"] == 1


def corrupt_cases(stream: bytes) -> dict[str, bytes]:
    flipped = bytearray(stream)
    flipped[len(stream) // 2] ^= 0x40
    huge = bytearray(stream)
    huge[62:70] = (100000).to_bytes(4, "little") * 2
    version = bytearray(stream)
    version[4] = 9
    return {
        "truncated": stream[: len(stream) * 3 // 5],  # inside a frame packet
        "flipped": bytes(flipped),
        "huge": bytes(huge),
        "version": bytes(version),
        "garbage": bytes(range(256)) * 4,
        "empty": b"",
    }


@pytest.mark.parametrize("case", ["truncated", "flipped", "huge", "version", "garbage", "empty"])
def test_damaged_streams_fail_with_one_line(tmp_path: Path, case: str) -> None:
    src = tmp_path / "in.scv"
    assert run_cli("encode", SAMPLE, src, "--frames", "4", "--scale", "64x48", "--no-progress") == 0
    bad = tmp_path / f"{case}.scv"
    bad.write_bytes(corrupt_cases(src.read_bytes())[case])
    out = tmp_path / "out_%03d.png"
    proc = subprocess.run(
        [sys.executable, "-m", "streamcodec", "decode", str(bad), str(out), "--no-progress"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamcodec decode: error:"), proc.stderr
    if case in ("truncated", "flipped"):  # frames before the damage still decode
        assert len(list(tmp_path.glob("out_*.png"))) >= 1


def test_stream_of_other_weights_is_refused(tmp_path: Path, capsys) -> None:
    src = tmp_path / "in.scv"
    assert run_cli("encode", SAMPLE, src, "--frames", "1", "--scale", "64x48") == 0
    data = bytearray(src.read_bytes())
    data[44] ^= 0xFF  # inside the weights hash (after magic, version, length, FourCC, model name)
    # Re-seal the header CRC so only the hash differs.
    import crc32c

    data[HEADER_SIZE - 4 : HEADER_SIZE] = crc32c.crc32c(bytes(data[: HEADER_SIZE - 4])).to_bytes(4, "little")
    (tmp_path / "other.scv").write_bytes(bytes(data))
    assert run_cli("decode", tmp_path / "other.scv", tmp_path / "x.png") == 2
    assert "weights" in capsys.readouterr().err


def test_info_lists_models_and_card(capsys) -> None:
    assert run_cli("info", "--models", "--json") == 0
    assert "evc-ss" in json.loads(capsys.readouterr().out)["with_weights"]
    assert run_cli("info", "--model", "evc-s", "--json") == 0
    card = json.loads(capsys.readouterr().out)
    assert card["steps"] > 0 and card["training"]["hardware"]


def test_bench_json_reports_every_stage_and_the_pipelines_rates(model, capsys) -> None:
    argv = ["bench", "--size", "96x64", "--frames", "2", "--coder-threads", "1", "--frame-threads", "2", "--json"]
    assert main(argv) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench["size"] == "96x64" and bench["device"] == "cpu" and "torch threads" in bench["machine"]
    frame = FrameEncoder(model, 96, 64, 32).encode(synthetic_frame(96, 64), 0)[0]
    assert bench["bytes_per_frame"] == len(frame.payload)  # the bench codes what the encoder codes
    for side, stages in (("encode", ENCODE_STAGES), ("decode", DECODE_STAGES)):
        report = bench[side]
        assert tuple(report["stages"]) == stages
        assert all(0 < s["median_ms"] <= s["p99_ms"] for s in report["stages"].values())
        assert sum(s["share"] for s in report["stages"].values()) == pytest.approx(1, abs=0.01)
        assert report["fps"] == pytest.approx(1e3 / report["median_ms"], rel=0.01)
    assert [p["frame_threads"] for p in bench["pipeline"]] == [1, 2]  # one frame at a time, then two
    assert all(p["encode_fps"] > 0 and p["decode_fps"] > 0 for p in bench["pipeline"])
    assert 0 < bench["network_only_ms"]["encode"] < bench["encode"]["median_ms"]
    assert (bench["precision"], bench["compile"], bench["coder_threads"]) == ("fp32", None, 1)


def test_unknown_model_is_one_line(tmp_path: Path, capsys) -> None:
    assert run_cli("encode", SAMPLE, tmp_path / "x.scv", "--model", "evc-zz") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("streamcodec encode: error: unknown model 'evc-zz'") and "evc-ss" in err


def test_bad_paths_and_options_are_one_line(tmp_path: Path, capsys) -> None:
    assert run_cli("info", tmp_path) == 2
    assert capsys.readouterr().err.strip() == f"streamcodec info: error: Is a directory: {tmp_path}"
    assert run_cli("desync-check", "x.png", "--encode", "gpu-9t") == 2
    assert "unknown setup 'gpu-9t'; expected some of cpu" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_cli("decode", "in.scv", "out.y4m", "--threads", "0")
    assert "--threads: expected a whole number of at least 1, got '0'" in capsys.readouterr().err


def test_an_undecodable_frame_is_skipped_and_named(tmp_path: Path, capsys) -> None:
    # A packet that is intact as a container record (its CRC matches) but whose payload does not decode: the
    # frames after it still come out, and the exit status and message name what was lost.
    assert run_cli("encode", SAMPLE, tmp_path / "v.scv", "--frames", "3", "--scale", "64x48") == 0
    with streamcodec.open(tmp_path / "v.scv") as reader:
        header, packets = reader.header, list(reader)
    bad = packets[1].payload[:6] + bytes(b ^ 0x5A for b in packets[1].payload[6:])
    with streamcodec.open(tmp_path / "bad.scv", "w", header=header) as writer:
        for i, packet in enumerate(packets):
            writer.write(dataclasses.replace(packet, payload=bad) if i == 1 else packet)
    capsys.readouterr()
    assert run_cli("decode", tmp_path / "bad.scv", tmp_path / "out.y4m", "--json") == 2
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["frames"] == 2 and [u["pts"] for u in summary["undecodable"]] == [packets[1].pts]
    assert f"the frame at pts {packets[1].pts}" in err and "Traceback" not in err
    assert run_cli("decode", tmp_path / "bad.scv", tmp_path / "strict.y4m", "--strict") == 2
