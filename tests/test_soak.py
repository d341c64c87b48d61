"""Soak: a live lavfi source encoded for two minutes by a real ``streamcodec encode``, watched from outside (the
one-hour figures are in README.md), and the verdict's rules on made-up curves."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamcodec import bitstream, cli
from streamcodec.soak import Sample, SoakReport


@pytest.mark.slow
def test_two_minute_live_encode_keeps_memory_fds_threads_and_latency_flat(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, samples = tmp_path / "soak.scv", tmp_path / "samples.csv"
    status = cli.main(["soak", "--duration", "120", "--interval", "5", "--output", str(out), "--samples", str(samples),
                       "--json"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    assert status == 0 and summary["ok"], summary["reasons"]
    assert summary["exit_code"] == 0 and summary["growth"]["fds"] <= 0 and summary["growth"]["threads"] <= 0
    assert summary["growth"]["rss_max_mb"] < 50 and summary["latency_last"]["frames"] > 0
    with open(samples, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(summary["samples"]) >= 20 and float(rows[-1]["seconds"]) >= 115
    with bitstream.open(out) as reader:  # the encoder was stopped with SIGINT: a complete stream
        assert sum(1 for _ in reader) == summary["frames"] >= 60 and reader.complete


def test_ctrl_c_at_the_terminal_leaves_the_encoders_stream_complete(tmp_path: Path) -> None:
    """Ctrl-C signals the whole foreground process group; the encoder must get one SIGINT (from soak), not two."""
    out = tmp_path / "soak.scv"
    command = [sys.executable, "-m", "streamcodec", "soak", "--duration", "600", "--interval", "1", "--output",
               str(out), "--source", "lavfi:testsrc=size=64x48:rate=10"]  # fmt: skip
    soak = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or out.stat().st_size < 2000):
        time.sleep(0.2)
    os.killpg(soak.pid, signal.SIGINT)  # as the terminal does
    _, err = soak.communicate(timeout=120)
    assert soak.returncode == 130, err.decode()
    with bitstream.open(out) as reader:
        assert sum(1 for _ in reader) > 0 and reader.complete


def _report(rss, fds, threads, latency, encode=lambda t: 40.0) -> SoakReport:
    report = SoakReport(["encode"], 100.0, warmup=20.0, exit_code=0, frames=100)
    for i in range(11):
        t = 10.0 * i
        report.samples.append(Sample(t, rss(t), fds(t), threads(t), 10 * i, 0, latency(t), latency(t)))
        report.latencies += [(t, latency(t), encode(t))] * 10
    return report


def test_verdict_passes_flat_curves_and_names_each_leak() -> None:
    flat = _report(lambda t: 400.0 + (30 if t >= 10 else 0), lambda t: 8, lambda t: 6, lambda t: 50.0)
    assert flat.summary()["ok"]  # the growth before the warm-up does not count
    busier = _report(lambda t: 400.0, lambda t: 8, lambda t: 6, lambda t: 80 + 2 * t, encode=lambda t: 40 + t)
    assert busier.summary()["ok"]  # slower coding on a busier machine is not frames queueing up
    leaks = _report(lambda t: 400.0 + t, lambda t: 8 + int(t > 50), lambda t: 6 + int(t > 80), lambda t: 50 + 3 * t)
    summary = leaks.summary()
    assert not summary["ok"] and len(summary["reasons"]) == 4
    assert [r.split()[0] for r in summary["reasons"]] == ["resident", "1", "1", "frames"]
    assert summary["growth"] == {"rss_mb": 80.0, "rss_max_mb": 80.0, "fds": 1, "threads": 1}
