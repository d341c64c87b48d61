"""Shared fixtures: the shipped model on the CPU, a real photo-like frame from the bundled sample clip, one torch
thread, and a real RTSP server (GStreamer's, from the Debian packages)."""

from __future__ import annotations

import socket
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
import torch

import streamcodec
from streamcodec.io import open_source

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "examples" / "sample.mp4"


@pytest.fixture(scope="session")
def model() -> streamcodec.codec.evc.EVC:
    return streamcodec.load_model("evc-s", device="cpu")


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """Frame 0 of examples/sample.mp4 (real footage), 320x180 RGB."""
    with open_source(SAMPLE, frames=1) as source:
        return next(iter(source)).image


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Torch on one thread for the test (the machines running the tests are small and shared)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- a real RTSP server -------------------------------------------------------------------------------------------

RTSP_SERVER = textwrap.dedent(
    """
    import sys
    import gi
    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    port, width, height, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( videotestsrc is-live=true ! video/x-raw,width={width},height={height},framerate={rate}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={rate // 2} ! rtph264pay name=pay0 pt=96 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory("/test", factory)
    if server.attach(None) == 0:
        sys.exit("cannot bind port " + port)
    print("ready", flush=True)
    GLib.MainLoop().run()
    """
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RtspServer:
    """GStreamer's RTSP server in Debian's own Python (where ``gi`` lives), as a separate process."""

    def __init__(self, script: Path, width: int = 64, height: int = 48, rate: int = 20) -> None:
        self.script = script
        self.size, self.rate = (width, height), rate
        self.port = free_port()
        self.url = f"rtsp://127.0.0.1:{self.port}/test"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["/usr/bin/python3", str(self.script), str(self.port), *map(str, (*self.size, self.rate))],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.kill()
            raise RuntimeError(f"RTSP server did not start: {self.process.stderr.read()}")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def rtsp_server(tmp_path: Path) -> Iterator[RtspServer]:
    check = "import gi; gi.require_version('GstRtspServer', '1.0')"
    try:
        probe = subprocess.run(["/usr/bin/python3", "-c", check], capture_output=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("no /usr/bin/python3 to run GStreamer's RTSP server (apt-get install python3-gst-1.0 ...)")
    if probe.returncode != 0:
        pytest.skip(
            "GStreamer's RTSP server is not installed for /usr/bin/python3: apt-get install gir1.2-gst-rtsp-server-1.0 "
            "python3-gst-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly"
        )
    script = tmp_path / "rtsp_server.py"
    script.write_text(RTSP_SERVER)
    server = RtspServer(script)
    server.start()
    yield server
    server.kill()


@pytest.fixture
def clip_with_audio(tmp_path: Path) -> Path:
    """A 3-frame 64x48 H.264 clip with a mono AAC audio stream (16 kHz) beside the video, in its own folder."""
    from streamcodec.bench import synthetic_frame

    path = tmp_path / "clip-with-audio" / "av.mp4"
    path.parent.mkdir()
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = container.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for i in range(3):
            container.mux(video.encode(av.VideoFrame.from_ndarray(synthetic_frame(64, 48, seed=i), format="rgb24")))
        sound = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        sound.sample_rate, sound.pts = 16000, 0
        container.mux(audio.encode(sound))
        container.mux(audio.encode(None))
        container.mux(video.encode(None))
    return path
