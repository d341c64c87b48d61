"""Soak test: run ``streamcodec encode`` on a live source for a long time and watch the encoder process.

The encoder runs as a child process (exactly the command a user runs, with ``--live`` and ``--stats``); every
``interval`` seconds its resident memory, open file descriptors and threads are sampled (psutil) and the
per-frame latencies it logged since the previous sample are summarised. Duration and warm-up count from the
first encoded frame (starting Python and loading the model take a while on a busy machine). The verdict after
the run: resident memory grows less than ``max_rss_growth_mb`` after the warm-up, descriptors and threads do not
grow after the warm-up, and frames do not queue up: the median of latency / encode time (capture to output,
over the coding itself; about 1-2 when nothing backs up) of the last window is not much above that of the first
window after warm-up. The ratio, not the latency, is judged because on a shared CPU the encode time itself
follows the machine's load.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

QUEUE_GROWTH = 1.5  # the last window's median latency / encode time may be at most this times the first's ...
QUEUE_SLACK = 0.5  # ... plus this
STARTUP_TIMEOUT = 300.0  # seconds the encoder may take to its first frame


@dataclass
class Sample:
    """The encoder process at one moment; latencies are over the frames logged since the previous sample."""

    seconds: float
    rss_mb: float
    fds: int
    threads: int
    frames: int
    dropped: int
    latency_p50_ms: float | None
    latency_p99_ms: float | None


@dataclass
class SoakReport:
    """A soak run's samples and verdict."""

    command: list[str]
    duration: float
    warmup: float
    samples: list[Sample] = field(default_factory=list)
    latencies: list[tuple[float, float, float]] = field(default_factory=list)  # (seconds, latency, encode ms)
    exit_code: int | None = None
    first_frame: float = 0.0  # seconds from the start to the sample that saw the first frame
    frames: int = 0  # frames the encoder logged, those it finished after the stop signal included

    def _at(self, seconds: float) -> Sample:
        """The first sample at or after ``seconds`` (the last one if none)."""
        return next((s for s in self.samples if s.seconds >= seconds), self.samples[-1])

    def _latency(self, start: float, stop: float) -> dict[str, float | None]:
        window = np.array([(ms, encode) for t, ms, encode in self.latencies if start <= t < stop]).reshape(-1, 2)
        if not len(window):
            return {"p50_ms": None, "p99_ms": None, "encode_p50_ms": None, "per_encode_p50": None, "frames": 0}
        latency, encode = window.T
        return {
            "p50_ms": float(np.percentile(latency, 50)), "p99_ms": float(np.percentile(latency, 99)),
            "encode_p50_ms": float(np.percentile(encode, 50)),
            "per_encode_p50": float(np.percentile(latency / np.maximum(encode, 1e-3), 50)), "frames": len(latency),
        }  # fmt: skip

    def summary(self, max_rss_growth_mb: float = 50.0) -> dict[str, Any]:
        """Start / after warm-up / end figures, latency of the first and last window after warm-up, verdict."""
        if not self.samples:
            return {"ok": False, "reasons": ["no samples: the encoder did not run"]}
        start, warm, end = self._at(self.first_frame), self._at(self.first_frame + self.warmup), self.samples[-1]
        after = [s for s in self.samples if s.seconds >= warm.seconds]
        window = min(600.0, max(1.0, (end.seconds - warm.seconds) / 3))
        first = self._latency(warm.seconds, warm.seconds + window)
        last = self._latency(end.seconds - window, end.seconds + 1)
        growth = {
            "rss_mb": end.rss_mb - warm.rss_mb,
            "rss_max_mb": max(s.rss_mb for s in after) - warm.rss_mb,
            "fds": max(s.fds for s in after) - warm.fds,
            "threads": max(s.threads for s in after) - warm.threads,
        }
        reasons = []
        if growth["rss_max_mb"] >= max_rss_growth_mb:
            reasons.append(f"resident memory grew {growth['rss_max_mb']:.1f} MB after warm-up")
        if growth["fds"] > 0:
            reasons.append(f"{growth['fds']} more open file descriptors after warm-up")
        if growth["threads"] > 0:
            reasons.append(f"{growth['threads']} more threads after warm-up")
        if first["p50_ms"] is None or last["p50_ms"] is None:
            reasons.append("no frames were encoded in the first or last window")
        elif last["per_encode_p50"] > QUEUE_GROWTH * first["per_encode_p50"] + QUEUE_SLACK:
            reasons.append(f"frames queue up: median latency / encode time grew from {first['per_encode_p50']:.2f} "
                           f"to {last['per_encode_p50']:.2f} ({first['p50_ms']:.0f} to {last['p50_ms']:.0f} ms)")
        if self.exit_code != 0:
            reasons.append(f"the encoder exited with status {self.exit_code}")

        def point(s: Sample) -> dict[str, float]:
            return {"seconds": s.seconds, "rss_mb": s.rss_mb, "fds": s.fds, "threads": s.threads}

        return {
            "ok": not reasons,
            "reasons": reasons,
            "command": self.command,
            "duration": end.seconds - start.seconds,
            "startup": start.seconds,
            "frames": self.frames,
            "dropped": end.dropped,
            "start": point(start),
            "after_warmup": point(warm),
            "end": point(end),
            "growth": growth,
            "latency_window_s": window,
            "latency_first": first,
            "latency_last": last,
            "exit_code": self.exit_code,
        }

    def write_csv(self, path: str | Path) -> None:
        """Write the samples to ``path`` as CSV, one row per sample, a column per :class:`Sample` field."""
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(Sample.__dataclass_fields__))
            writer.writeheader()
            writer.writerows(asdict(s) for s in self.samples)


class _StatsTail:
    """Reads the records an encoder appends to its ``--stats`` file, keeping a partial last line for later."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = self._partial + f.read()
            self._offset = f.tell()
        *lines, self._partial = data.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]


def soak_command(source: str, output: str, stats: str, qp: float, threads: int, model: str) -> list[str]:
    """The encoder command a soak run watches."""
    return [
        sys.executable, "-m", "streamcodec", "encode", source, output, "--live", "--stats", stats, "--qp", str(qp),
        "--threads", str(threads), "--model", model, "--device", "cpu", "--no-progress",
    ]  # fmt: skip


def run_soak(
    duration: float,
    *,
    source: str = "lavfi:testsrc=size=160x120:rate=10",
    output: str | None = None,
    interval: float = 10.0,
    warmup: float | None = None,
    qp: float = 32,
    threads: int = 1,
    model: str = "evc-s",
    on_sample: Callable[[Sample], None] | None = None,
) -> SoakReport:
    """Encode ``source`` live for ``duration`` seconds from its first frame, sampling the encoder every
    ``interval`` seconds.

    ``output`` is the ``.scv`` the encoder writes (a temporary file, removed afterwards, if not given); the
    warm-up defaults to a quarter of the run, at most 5 minutes. The encoder is stopped with SIGINT at the end.
    """
    warmup = min(300.0, duration / 4) if warmup is None else warmup
    with tempfile.TemporaryDirectory(prefix="streamcodec-soak-") as tmp:
        stats = Path(tmp) / "frames.jsonl"
        command = soak_command(source, output or str(Path(tmp) / "soak.scv"), str(stats), qp, threads, model)
        report = SoakReport(command, duration, warmup)
        tail = _StatsTail(stats)
        errors = open(Path(tmp) / "stderr.txt", "w+b")  # noqa: SIM115 - a file: an hour of warnings never blocks
        # A session of its own: Ctrl-C at the terminal reaches only this process, which then stops the encoder
        # with one SIGINT (a second one would make it exit without finalising its output).
        child = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors, start_new_session=True
        )
        watched = psutil.Process(child.pid)
        started = time.monotonic()
        frames, dropped, first = 0, 0, None
        try:
            while child.poll() is None:
                end = STARTUP_TIMEOUT if first is None else first + duration
                if (now := time.monotonic() - started) >= end:
                    break
                time.sleep(min(interval, end - now))
                records = tail.read()
                seconds = time.monotonic() - started
                if records and first is None:
                    first = report.first_frame = seconds
                latencies = [r["latency_ms"] for r in records]
                report.latencies.extend((seconds, r["latency_ms"], r["encode_ms"]) for r in records)
                frames += len(records)
                dropped = records[-1]["dropped"] if records else dropped
                try:
                    with watched.oneshot():
                        rss, fds, threads_now = watched.memory_info().rss, watched.num_fds(), watched.num_threads()
                except psutil.NoSuchProcess:
                    break
                sample = Sample(
                    round(seconds, 3), rss / 2**20, fds, threads_now, frames, dropped,
                    float(np.percentile(latencies, 50)) if latencies else None,
                    float(np.percentile(latencies, 99)) if latencies else None,
                )  # fmt: skip
                report.samples.append(sample)
                if on_sample is not None:
                    on_sample(sample)
        finally:
            if child.poll() is None:
                child.send_signal(signal.SIGINT)  # finish in-flight frames and write the index
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            with errors:
                errors.seek(0)
                message = errors.read().decode(errors="replace")
            report.frames = frames + len(tail.read())
        report.exit_code = child.returncode
        if child.returncode != 0:
            sys.stderr.write(message[-2000:])
    return report


__all__ = ["Sample", "SoakReport", "run_soak", "soak_command"]
