"""What the streaming commands (``encode``, ``decode``) share: their pipeline options, the ``--stats`` log,
signal handling with a progress line, and one-line errors."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from typing import IO, Any

from ..pipeline import Item, Pipeline, PipelineError, PipelineStats
from .common import parse_frame_threads, positive_int


def add_stream_options(p: argparse.ArgumentParser, encode: bool) -> None:
    """Options of the streaming pipeline shared by ``encode`` and ``decode``."""
    g = p.add_argument_group("streaming")
    g.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                   help="live policy (newest frame wins, drops counted) or file policy (back-pressure, no drops); "
                        "default: live for cameras and network streams" if encode else
                        "drop packets the decoder has no time for (default: no)")
    g.add_argument("--open-timeout", type=float, default=10.0, metavar="S", help="seconds to wait for an input to open")
    g.add_argument("--read-timeout", type=float, default=10.0, metavar="S", help="seconds to wait for each read")
    g.add_argument("--queue", type=positive_int, metavar="N", help="queue length between stages (default 4, live 2)")
    g.add_argument("--frame-threads", type=parse_frame_threads, default="auto", metavar="N",
                   help="frames coded at once, each in a thread of its own (frames are intra-coded; torch's "
                        "--threads are shared among them); auto: 2 on a CPU for files"
                        + (" at a constant q" if encode else "") + ", else 1")
    g.add_argument("--stats", metavar="FILE", help="write one JSON record per frame (pts, bytes, q, latency) to FILE")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="FFmpeg-like progress line on stderr (default: when stderr is a terminal)")
    g.add_argument("--token", default=os.environ.get("STREAMCODEC_TOKEN"),
                   help="tcp:// shared secret: a server admits only clients that send it, a client sends it "
                        "(default: $STREAMCODEC_TOKEN; the environment keeps it out of the process list)")
    if not encode:
        return
    g.add_argument("--format", help="FFmpeg input format (v4l2, dshow, avfoundation, lavfi, x11grab ...)")
    g.add_argument("--video-size", metavar="WxH", help="capture size asked of a device")
    g.add_argument("--framerate", metavar="R", help="capture rate asked of a device")
    g.add_argument("--input-format", metavar="FMT", help="capture pixel format asked of a device (e.g. mjpeg)")
    g.add_argument("-O", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="FFmpeg input option (repeatable), e.g. -O rtsp_transport=udp")
    g.add_argument("--realtime", action=argparse.BooleanOptionalAction, default=None,
                   help="pace a file by its timestamps (default: with --live)")
    g.add_argument("--reconnect", type=int, default=-1, metavar="N",
                   help="live inputs: give up after N failed reconnect attempts in a row (default -1: never; 0: off)")
    g.add_argument("--wait-clients", type=int, default=0, metavar="N",
                   help="tcp:// output: wait for N clients before reading the input")
    g.add_argument("--max-clients", type=int, default=16, metavar="N",
                   help="tcp:// output: connections served at once; more are closed (default 16)")
    g.add_argument("--slow-client", choices=("skip", "cut"), default="skip",
                   help="tcp:// output: a client more than --client-buffer behind skips packets or is cut")
    g.add_argument("--client-buffer", type=int, default=4 << 20, metavar="BYTES",
                   help="tcp:// output: unsent bytes a client may have queued (default 4 MiB)")


def run_async(coroutine: Any, command: str) -> int:
    """Run a command's coroutine; pipeline errors print one line like the other errors (exit status 2)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"streamcodec {command}: %(levelname)s: %(message)s"))
    logger = logging.getLogger("streamcodec.pipeline")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)  # reconnects and lost connections; the rest stays quiet
    try:
        return asyncio.run(coroutine)
    except PipelineError as exc:
        print(f"streamcodec {command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def show_progress(args: argparse.Namespace) -> bool:
    """Whether to draw the progress line: ``--progress``, else when stderr is a terminal (never with ``--json``)."""
    if args.json or args.progress is False:
        return False
    return bool(args.progress) or sys.stderr.isatty()


#: Per-frame figures of ``item.info`` that ``--stats`` records (ms: the stages' times; psnr with ``--psnr``).
RECORDED = ("estimated_bits", "wait_ms", "quantise_ms", "entropy_ms", "encode_ms", "decode_ms", "sink_ms", "psnr")


class FrameLog:
    """``--stats FILE``: one JSON object per frame, flushed at once (a killed run keeps its records)."""

    def __init__(self, path: str | None) -> None:
        self._file: IO[str] | None = open(path, "w", encoding="utf-8") if path else None  # noqa: SIM115

    def write(self, stats: PipelineStats, item: Item) -> None:
        """Record ``item``, just written by the sinks (``stats`` already counts it)."""
        if self._file is None:
            return
        record: dict[str, Any] = {
            "frame": stats.frames - 1,
            "index": item.index,
            "pts": item.pts,
            "time": round(float(item.pts * item.time_base), 6),
            "bytes": item.info.get("bytes"),
            "q": item.info.get("q"),
            "latency_ms": round(1e3 * (time.perf_counter() - item.created), 3),
            "dropped": stats.dropped,
        }
        for key in RECORDED:
            if key in item.info:
                record[key] = round(item.info[key], 3)
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the ``--stats`` file, if any. Idempotent."""
        if self._file is not None:
            self._file.close()
            self._file = None


async def drive(pipeline: Pipeline, command: str, progress: bool, interval: float = 0.5) -> tuple[PipelineStats, bool]:
    """Run ``pipeline`` with the CLI's signal handling and progress line; return its stats and whether a signal
    stopped it.

    The first SIGINT/SIGTERM stops the source and lets the pipeline drain and finalise its outputs; a second one
    exits the process at once with status 130 (outputs are flushed per packet, so they decode up to the last).
    """
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def quit_now(*_: object) -> None:
        print(f"\nstreamcodec {command}: interrupted", file=sys.stderr, flush=True)
        os._exit(130)

    def on_signal(signum: int) -> None:
        received.append(signum)
        if len(received) == 1:
            name = signal.Signals(signum).name
            print(f"\nstreamcodec {command}: {name}: finishing (again to quit at once)", file=sys.stderr, flush=True)
            pipeline.stop()
        else:
            quit_now()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or no signals here
            pass

    async def tick() -> None:
        while True:
            await asyncio.sleep(interval)
            print("\r" + pipeline.stats.progress_line(), end="", file=sys.stderr, flush=True)

    ticker = asyncio.create_task(tick()) if progress else None
    try:
        stats = await pipeline.run()
    finally:
        if ticker is not None:
            ticker.cancel()
            print("\r" + pipeline.stats.progress_line(), file=sys.stderr, flush=True)
        for signum in installed:
            loop.remove_signal_handler(signum)
            if received:  # the promise "again to quit at once" holds while the summary is written, too
                signal.signal(signum, quit_now)
    return stats, bool(received)
