"""Every script in examples/ run as a user runs it (a subprocess) with small settings, its outputs decoded.

The scripts import this checkout (PYTHONPATH) and run torch on one thread.
"""

from __future__ import annotations

import json
import os
import queue
import re
import runpy
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import streamcodec
from streamcodec.bitstream.format import PACKET_HEADER_SIZE
from streamcodec.io import open_source

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def start(script: str, *args: object, **kwargs) -> subprocess.Popen:
    command = [sys.executable, "-X", "faulthandler", str(EXAMPLES / script), *map(str, args)]
    return subprocess.Popen(command, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def finish(process: subprocess.Popen, timeout: float = 120) -> dict:
    """The JSON summary the script printed; fails with its stderr if it did not succeed."""
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        process.kill()
    assert process.returncode == 0, err
    return json.loads(out)


def run(script: str, *args: object, cwd: Path | None = None) -> dict:
    return finish(start(script, *args, cwd=cwd))


def decoded(path: Path) -> list[np.ndarray]:
    with streamcodec.VideoCapture(path, strict=True) as cap:
        frames = []
        while (frame := cap.read()[1]) is not None:
            frames.append(frame)
        assert cap.get(streamcodec.CAP_PROP_FRAME_COUNT) == len(frames)
        return frames


def test_webcam_cbr(tmp_path: Path) -> None:
    out = tmp_path / "cam.scv"
    summary = run(
        "webcam_cbr.py", "--input", "lavfi:testsrc=size=64x48:rate=25", "--frames", 6, "--bitrate", 150_000,
        "--output", out,
    )  # fmt: skip
    assert summary["frames"] == 6 and summary["controller"]["mode"] == "cbr"
    assert summary["controller"]["vbv"] == {"bufsize": 150_000, "maxrate": 150_000, "init": 0.9}
    frames = decoded(out)
    assert len(frames) == 6 and frames[0].shape == (48, 64, 3)
    with streamcodec.open(out) as stream:
        bits = [8 * (PACKET_HEADER_SIZE + len(packet.payload)) for packet in stream]
    assert len(set(bits)) > 1 and sum(bits) / len(bits) < 1.1 * 150_000 / 25  # rate-controlled, not constant q


def test_rtsp_to_tcp_and_a_viewer_in_another_process(tmp_path: Path, rtsp_server) -> None:
    server = start("rtsp_to_tcp.py", "--input", rtsp_server.url, "--port", 0, "--frames", 6, "--timeout", 10)
    lines: queue.Queue[str] = queue.Queue()
    logged: list[str] = []

    def read_log() -> None:
        for line in server.stderr:
            logged.append(line)
            lines.put(line)

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        while not (served := re.search(r"serving (tcp://\S+)", lines.get(timeout=60))):
            pass
        viewer = run("tcp_viewer.py", served.group(1), "--output", tmp_path / "view.y4m", "--connect-timeout", 10)
        server.wait(60)  # its stderr goes to the reader thread; stdout holds one line
        out = server.stdout.read()
    finally:
        server.kill()
    reader.join(5)
    assert server.returncode == 0, "".join(logged) + out
    summary = json.loads(out)
    assert summary["clients"] == 1 and 1 <= summary["frames"] <= 6
    assert viewer["frames"] == summary["frames"] and (viewer["width"], viewer["height"]) == (64, 48)
    with open_source(tmp_path / "view.y4m") as video:
        assert sum(1 for _ in video) == summary["frames"]


def test_opencv_overlay_draws_and_writes(tmp_path: Path) -> None:
    out = tmp_path / "overlay.scv"
    summary = run("opencv_overlay.py", "--size", "96x64", "--frames", 3, "--output", out)
    assert summary == {"output": str(out), "frames": 3, "width": 96, "height": 64}
    frames = decoded(out)
    assert len(frames) == 3 and frames[0].shape == (64, 96, 3)
    box_edge = frames[0][16, 30:66].astype(int)  # the top of the green box (BGR)
    assert np.mean(box_edge[:, 1] - box_edge[:, 2]) > 60


def test_encode_folder_encodes_each_video_once(tmp_path: Path) -> None:
    videos, out = tmp_path / "videos", tmp_path / "encoded"
    videos.mkdir()
    for name in ("a.mp4", "b.mov"):
        (videos / name).write_bytes((EXAMPLES / "sample.mp4").read_bytes())
    (videos / "notes.txt").write_text("not a video")
    args = (videos, out, "--size", "64x48", "--frames", 2)
    first = run("encode_folder.py", *args)["videos"]
    assert [(v["output"], v["frames"]) for v in first] == [(str(out / "a.scv"), 2), (str(out / "b.scv"), 2)]
    assert all(len(decoded(out / name)) == 2 for name in ("a.scv", "b.scv"))
    assert sorted(p.name for p in out.iterdir()) == ["a.scv", "b.scv"]
    assert all(v["skipped"] for v in run("encode_folder.py", *args)["videos"])


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_has_a_docstring_and_help(script: str, capsys: pytest.CaptureFixture[str]) -> None:
    example = runpy.run_path(str(EXAMPLES / script))  # not as __main__: nothing runs
    with pytest.raises(SystemExit) as exit:
        example["main"](["--help"])
    assert exit.value.code == 0 and example["__doc__"].strip() in capsys.readouterr().out
