"""The scvenc / scvdec GStreamer elements (plugins/gstreamer), run in real gst-launch-1.0 pipelines.

GStreamer's Python plugin loader embeds the first ``python3`` on PATH: the tests put this interpreter's
environment first (torch, streamcodec) and add Debian's ``gi`` (python3-gi, python3-gst-1.0) with PYTHONPATH,
as plugins/gstreamer/README.md tells users to (plus this checkout, so that the elements run the code under test).
A missing package fails the tests, naming it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import streamcodec
from streamcodec.codec.quality import q_to_index
from streamcodec.ratecontrol import make_controller

# torch on one thread here and in GStreamer (OMP_NUM_THREADS below): float results, and so packets and pixels,
# can differ with the thread count
pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_PATH = ROOT / "plugins" / "gstreamer"
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, for which python3-gi and the plugin loader are built
APT = "apt-get install gstreamer1.0-tools gstreamer1.0-plugins-base python3-gi python3-gst-1.0 " \
      "gstreamer1.0-python3-plugin-loader (see .ci/run)"
FRAMES = 4
SECOND = 1_000_000_000
PTS = re.compile(r"identity0: last-message = chain .*? pts: (\d+):(\d\d):(\d\d)\.(\d{9})")


class Gst:
    """gst-launch-1.0 with the environment the elements need, and a registry of its own."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=300)
        if check and result.returncode != 0:
            pytest.fail(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def launch(self, pipeline: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``pipeline`` verbosely (caps and identity's buffer log go to stdout)."""
        return self.run("gst-launch-1.0", "-v", *shlex.split(pipeline), check=check)  # one word per argument

    def seek_mid_stream(self, pipeline: str, seek_after: int) -> dict:
        """Run ``pipeline`` with a flushing seek of its source to 0 after ``seek_after`` buffers entered ``enc``
        (tests/gst_seek_driver.py, in a process with this environment); what the driver saw."""
        result = self.run(sys.executable, str(Path(__file__).parent / "gst_seek_driver.py"), pipeline, str(seek_after))
        return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(scope="module")
def gst(tmp_path_factory: pytest.TempPathFactory) -> Gst:
    if shutil.which("gst-launch-1.0") is None or not Path(SYSTEM_PYTHON).exists():
        pytest.fail(f"gst-launch-1.0 or {SYSTEM_PYTHON} is not installed: {APT}")
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi, os, sys; gi.require_version('Gst', '1.0'); from gi.repository import Gst; "
                              "print(os.path.dirname(os.path.dirname(gi.__file__))); print(*sys.version_info[:2])"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if probe.returncode != 0:
        pytest.fail(f"{SYSTEM_PYTHON} cannot import GStreamer's gi bindings: {APT}\n{probe.stderr}")
    gi_dir, version = probe.stdout.splitlines()
    if version != f"{sys.version_info[0]} {sys.version_info[1]}":
        pytest.fail(f"GStreamer's Python plugin loader embeds Python {version.replace(' ', '.')}, but the tests run "
                    f"on {sys.version.split()[0]}: the elements could not load this environment's torch")
    env = dict(
        os.environ,
        GST_PLUGIN_PATH=str(PLUGIN_PATH),
        GST_REGISTRY=str(tmp_path_factory.mktemp("gst") / "registry.bin"),  # never a stale user registry
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # the embedded Python: this one
        PYTHONPATH=os.pathsep.join([str(ROOT), gi_dir]),  # this checkout's streamcodec, Debian's gi
        OMP_NUM_THREADS="1",
    )
    gst = Gst(env)
    loader = gst.run("gst-inspect-1.0", "python", check=False)
    if loader.returncode != 0:
        pytest.fail(f"GStreamer's Python plugin loader is not installed: {APT}\n{loader.stderr}")
    for element in ("scvenc", "scvdec"):
        found = gst.run("gst-inspect-1.0", element, check=False)
        if found.returncode != 0:
            pytest.fail(f"GStreamer does not find {element} in {PLUGIN_PATH}:\n{found.stdout}\n{found.stderr}")
    return gst


def rgb_frames(path: Path, width: int, height: int, stride: int | None = None) -> np.ndarray:
    """Raw RGB frames as GStreamer writes them (rows padded to ``stride``) -> (N, H, W, 3)."""
    stride = stride or 3 * width
    rows = np.frombuffer(path.read_bytes(), np.uint8).reshape(-1, height, stride)
    return rows[:, :, : 3 * width].reshape(-1, height, width, 3).copy()


def decoded(model: streamcodec.codec.evc.EVC, path: Path) -> tuple[list[streamcodec.Packet], np.ndarray]:
    """The stream's packets and their frames decoded by streamcodec's FrameDecoder."""
    with streamcodec.open(path) as stream:
        decoder = streamcodec.FrameDecoder(model, stream.header)
        packets = list(stream)
    return packets, np.stack([decoder.decode(p, i) for i, p in enumerate(packets)])


def buffer_pts(output: str) -> list[int]:
    """The pts (ns) of the buffers identity0 logged in a verbose gst-launch output."""
    return [((int(h) * 60 + int(m)) * 60 + int(s)) * SECOND + int(ns) for h, m, s, ns in PTS.findall(output)]


@pytest.fixture(scope="module")
def encoded(gst: Gst, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One pipeline: videotestsrc frames saved raw, coded by scvenc (ABR) into out.scv and decoded by scvdec."""
    out = tmp_path_factory.mktemp("gst-encode")
    result = gst.launch(
        f"videotestsrc num-buffers={FRAMES} pattern=ball ! video/x-raw,width=64,height=48,framerate=30/1 "
        f"! videoconvert ! video/x-raw,format=RGB ! tee name=raw ! queue ! filesink location={out / 'input.rgb'} "
        f"raw. ! queue ! scvenc qp=40 rc=abr bitrate=150k ! tee name=scv ! queue ! filesink location={out / 'out.scv'} "
        f"scv. ! queue ! scvdec ! identity silent=false ! filesink location={out / 'roundtrip.rgb'}"
    )
    return out, result.stdout


def test_scvenc_codes_exactly_like_frame_encoder_with_rate_control(encoded: tuple[Path, str], model) -> None:
    out, _ = encoded
    frames = rgb_frames(out / "input.rgb", 64, 48)
    assert len(frames) == FRAMES
    controller = make_controller("abr", fps=Fraction(30), q=40, bitrate="150k")
    encoder = streamcodec.FrameEncoder(model, 64, 48, 40, Fraction(1, SECOND), Fraction(30), controller=controller)
    with streamcodec.open(out / "out.scv") as stream:
        assert (stream.header.width, stream.header.height, stream.header.fps) == (64, 48, Fraction(30))
        assert stream.header.model_name == model.name
        packets = list(stream)
        assert stream.complete  # scvenc wrote the trailer at EOS
    assert [p.pts for p in packets] == [i * SECOND // 30 for i in range(FRAMES)]  # videotestsrc's timestamps
    expected = [encoder.encode(frame, p.pts)[0] for frame, p in zip(frames, packets, strict=True)]
    assert [(p.q_index, p.payload) for p in packets] == [(e.q_index, e.payload) for e in expected]
    assert any(p.q_index != q_to_index(40) for p in packets)  # the ABR controller chose q, not the qp property


def test_streamcodec_decode_reads_scvenc_output_bit_exact(encoded: tuple[Path, str], model) -> None:
    out, _ = encoded
    _, frames = decoded(model, out / "out.scv")
    cli = subprocess.run([sys.executable, "-m", "streamcodec", "decode", str(out / "out.scv"), "-", "--threads", "1"],
                         capture_output=True, timeout=300, check=True)
    assert cli.stdout == frames.tobytes()
    source = rgb_frames(out / "input.rgb", 64, 48).astype(np.float64)
    psnr = 10 * np.log10(255**2 / np.mean((frames - source) ** 2))
    assert psnr > 20  # the frames went in as RGB, the right way round


def test_scvenc_then_scvdec_in_one_pipeline(encoded: tuple[Path, str], model) -> None:
    out, log = encoded
    _, frames = decoded(model, out / "out.scv")
    assert np.array_equal(rgb_frames(out / "roundtrip.rgb", 64, 48), frames)
    assert ("scvdec0.GstPad:src: caps = video/x-raw, format=(string)RGB, width=(int)64, height=(int)48, "
            "framerate=(fraction)30/1") in log
    assert buffer_pts(log) == [i * SECOND // 30 for i in range(FRAMES)]


def test_a_flushing_seek_starts_a_new_stream_that_scvdec_decodes_from_its_start(gst: Gst, tmp_path: Path) -> None:
    """After a flush (here a seek of the source), scvenc starts a new stream, header first, and scvdec drops what
    it held and decodes the new one: a file sink (which truncates at a flush) holds a complete stream of the frames
    coded since, and nothing from before the flush comes out of scvdec afterwards."""
    path = tmp_path / "seek.scv"
    seen = gst.seek_mid_stream(
        "videotestsrc name=src num-buffers=14 pattern=ball ! video/x-raw,width=64,height=48,framerate=30/1 "
        "! videoconvert ! video/x-raw,format=RGB ! identity sleep-time=30000 ! scvenc name=enc qp=40 ! tee name=t "
        f"! queue ! filesink location={path} t. ! queue ! scvdec ! identity name=out ! fakesink", seek_after=4
    )  # fmt: skip
    assert seen["messages"] == ["EOS"]  # no error, no warning of damaged bytes
    after = seen["pts"]["enc"]
    assert seen["total"]["enc"] > len(after) >= 5 and after[0] == 0  # the seek came mid-stream and went to 0
    assert seen["pts"]["out"] == after  # scvdec: the new stream's frames only, each once
    with streamcodec.open(path) as stream:
        assert [p.pts for p in stream] == after
        assert stream.complete  # the trailer follows the last frame


def write_stream(model, path: Path, frames: np.ndarray) -> None:
    """frames coded at 25 fps with pts counting frames (time base 1/25), as a file."""
    encoder = streamcodec.FrameEncoder(model, frames.shape[2], frames.shape[1], 24, Fraction(1, 25), Fraction(25))
    with streamcodec.open(path, "w", header=encoder.header) as out:
        for pts, frame in enumerate(frames):
            out.write(encoder.encode(frame, pts)[0])


@pytest.fixture
def odd_frames(photo: np.ndarray) -> np.ndarray:
    """Three 50x30 crops of a real photo: 150-byte rows, which GStreamer pads to a 152-byte stride."""
    return np.stack([photo[10 * i : 10 * i + 30, 20 * i : 20 * i + 50] for i in range(3)])


def test_scvdec_decodes_a_file_read_in_small_chunks(gst: Gst, model, odd_frames: np.ndarray, tmp_path: Path) -> None:
    write_stream(model, tmp_path / "in.scv", odd_frames)
    log = gst.launch(f"filesrc location={tmp_path / 'in.scv'} blocksize=97 ! scvdec ! identity silent=false "
                     f"! filesink location={tmp_path / 'out.rgb'}").stdout
    _, expected = decoded(model, tmp_path / "in.scv")
    assert np.array_equal(rgb_frames(tmp_path / "out.rgb", 50, 30, stride=152), expected)
    assert "width=(int)50, height=(int)30, framerate=(fraction)25/1" in log
    assert buffer_pts(log) == [0, SECOND // 25, 2 * SECOND // 25]


def test_scvdec_skips_a_damaged_packet_with_a_warning(gst: Gst, model, odd_frames: np.ndarray, tmp_path: Path) -> None:
    write_stream(model, tmp_path / "in.scv", odd_frames)
    packets, expected = decoded(model, tmp_path / "in.scv")
    data = bytearray((tmp_path / "in.scv").read_bytes())
    data[data.index(packets[1].payload) + 5] ^= 0xFF  # frame 1's payload CRC now fails
    damaged, out = tmp_path / "damaged.scv", tmp_path / "out.rgb"
    damaged.write_bytes(bytes(data))
    result = gst.launch(f"filesrc location={damaged} ! scvdec ! filesink location={out}")
    assert "WARNING: from element /GstPipeline:pipeline0/GstScvDec:scvdec0: skipped damaged bytes" in result.stdout
    assert np.array_equal(rgb_frames(out, 50, 30, stride=152), expected[[0, 2]])


def test_scvdec_skips_a_frame_whose_payload_cannot_be_decoded(gst: Gst, model, odd_frames: np.ndarray,
                                                               tmp_path: Path) -> None:
    """An intact packet (its CRC holds) whose payload the decoder refuses: skipped as `streamcodec decode` skips it."""
    write_stream(model, tmp_path / "in.scv", odd_frames)
    packets, expected = decoded(model, tmp_path / "in.scv")
    bad = dataclasses.replace(packets[1], payload=b"\x07" + packets[1].payload[1:])  # an unknown payload version
    with streamcodec.open(tmp_path / "in.scv") as stream:
        header = stream.header
    with streamcodec.open(tmp_path / "bad.scv", "w", header=header) as out:
        for packet in (packets[0], bad, packets[2]):
            out.write(packet)
    out_path = tmp_path / "out.rgb"
    result = gst.launch(f"filesrc location={tmp_path / 'bad.scv'} ! scvdec ! filesink location={out_path}")
    assert "WARNING: from element /GstPipeline:pipeline0/GstScvDec:scvdec0: skipped a frame" in result.stdout
    assert np.array_equal(rgb_frames(out_path, 50, 30, stride=152), expected[[0, 2]])


def test_scvdec_reports_input_that_is_no_stream_as_an_element_error(gst: Gst, tmp_path: Path) -> None:
    (tmp_path / "bad.scv").write_bytes(b"this is not a .scv stream\n" * 100)
    result = gst.launch(f"filesrc location={tmp_path / 'bad.scv'} ! scvdec ! fakesink", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # gst-launch's exit status for an error message, not a crash
    assert "ERROR: from element /GstPipeline:pipeline0/GstScvDec:scvdec0: not an SCV stream" in output
    assert "Traceback" not in output


def test_scvenc_reports_bad_rate_control_as_an_element_error(gst: Gst) -> None:
    result = gst.launch("videotestsrc num-buffers=1 ! video/x-raw,width=64,height=48 ! videoconvert ! scvenc rc=cbr "
                        "! fakesink", check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    error = re.search(r"ERROR: from element /GstPipeline:pipeline0/GstScvEnc:scvenc0: rate control: (.*)", output)
    assert error and "bitrate" in error[1], output  # make_controller's message: cbr needs a bitrate
