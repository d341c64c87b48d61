"""``streamcodec encode``: code a file, a camera, a network stream or an FFmpeg filter graph into ``.scv``.

INPUT is an image, a folder of images, a video file, ``-`` (stdin), a URL (``rtsp://``, ``http://``, ``udp://``
...), a device (``/dev/video0``; others with ``--format dshow|avfoundation``) or ``lavfi:GRAPH``
(``lavfi:testsrc2=size=1280x720:rate=30``). OUTPUT is a ``.scv`` path, ``-`` (stdout), ``tcp://HOST:PORT`` (serve
clients; 127.0.0.1 unless another host is named), or MPEG-TS: ``udp://HOST:PORT`` or a ``.ts`` path.

Files run without drops (every frame, pts kept); cameras and network streams run live (the newest frame wins,
drops are counted, the input reconnects). Ctrl-C (or SIGTERM) stops reading, codes what is in flight, finalises
the output and exits 0; a second Ctrl-C exits at once, leaving a stream decodable up to its last packet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

import numpy as np
import torch

from ..codec.evc import DEFAULT_SUBSTREAMS
from ..codec.masked import MaskedEVC
from ..codec.quality import Q_HIGHEST, Q_LOWEST, QP_MAX, check_quality
from ..codec.registry import load_model, resolve_device
from ..codec.stream import FrameEncoder
from ..io import open_source as open_frames
from ..pipeline import (
    Item,
    Pipeline,
    PipelineError,
    PipelineStats,
    Worker,
    encode_stages,
    open_packet_sink,
    open_source,
)
from .common import (
    add_compile_option,
    add_model_options,
    configure_threads,
    parse_frame_threads,
    parse_size,
    print_json,
    share_frame_threads,
)
from .rc_options import add_rc_options, controller_from_args, rc_mode


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "encode",
        help="encode images, video, cameras or streams into a .scv stream",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="image, folder, video file, -, URL, /dev/videoN or lavfi:GRAPH")
    p.add_argument("output", help=".scv file, - for stdout, tcp://HOST:PORT, udp://HOST:PORT or a .ts file")
    add_model_options(p)
    add_compile_option(p)
    p.add_argument("--qp", type=float, default=32,
                   help=f"quality 0..{QP_MAX} (trained range; {Q_LOWEST:g}..{Q_HIGHEST:g} extrapolated), higher is "
                        "better (default 32)")
    p.add_argument("--frames", type=int, help="encode at most this many frames")
    p.add_argument("--scale", type=parse_size, help="resize frames to WxH first")
    p.add_argument("--substreams", type=int, default=DEFAULT_SUBSTREAMS, help="entropy-coded parts per frame")
    p.add_argument("--rdo", type=int, choices=(0, 1, 2),
                   help="block-masked models (evc-s-rdo): 0 codes the variance mask (zero-pass), 1 or 2 refine it by "
                        "RDO passes (default: 0 for live inputs, 1 for files)")
    p.add_argument("--psnr", action="store_true", help="also report PSNR of the reconstruction")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--tee", action="append", default=[], metavar="OUTPUT", help="a further output (repeatable)")
    add_stream_options(p, encode=True)
    add_rc_options(p)
    p.set_defaults(run=run)


def add_stream_options(p: argparse.ArgumentParser, encode: bool) -> None:
    """Options of the streaming pipeline shared by ``encode`` and ``decode``."""
    g = p.add_argument_group("streaming")
    g.add_argument("--live", action=argparse.BooleanOptionalAction, default=None,
                   help="live policy (newest frame wins, drops counted) or file policy (back-pressure, no drops); "
                        "default: live for cameras and network streams" if encode else
                        "drop packets the decoder has no time for (default: no)")
    g.add_argument("--open-timeout", type=float, default=10.0, metavar="S", help="seconds to wait for an input to open")
    g.add_argument("--read-timeout", type=float, default=10.0, metavar="S", help="seconds to wait for each read")
    g.add_argument("--queue", type=int, metavar="N", help="queue length between stages (default 4, live 2)")
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


def tcp_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options of a ``tcp://`` output (:class:`~streamcodec.pipeline.TcpServerSink`)."""
    return {"wait_for_clients": args.wait_clients, "max_clients": args.max_clients, "token": args.token,
            "slow_client": args.slow_client, "max_buffer": args.client_buffer}  # fmt: skip


def input_options(args: argparse.Namespace) -> dict[str, str]:
    options: dict[str, str] = {}
    for key in ("video_size", "framerate", "input_format"):
        if getattr(args, key):
            options[key] = str(getattr(args, key))
    for text in args.option:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise ValueError(f"-O/--option expects KEY=VALUE, got {text!r}")
        options[key] = value
    return options


def run(args: argparse.Namespace) -> int:
    return run_async(_encode(args), "encode")


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


def _first_pass(args: argparse.Namespace, encoder: FrameEncoder) -> list[float]:
    """Every frame's bit estimate at ``--qp`` (analysis and one rate probe; nothing is coded)."""
    options = input_options(args) or None
    with open_frames(args.input, frames=args.frames, scale=args.scale, options=options, format=args.format) as src:
        estimates = [encoder.estimate_bits(frame.image, args.qp) for frame in src]
    if not estimates:
        raise ValueError(f"{args.input}: no frames for the first pass")
    return estimates


async def _encode(args: argparse.Namespace) -> int:
    configure_threads(args.threads)
    torch_threads = torch.get_num_threads()  # frame threads share them while the pipeline runs
    check_quality(args.qp, "--qp")
    if args.two_pass and rc_mode(args) != "abr":
        raise ValueError("--two-pass is for abr (give a --bitrate)")
    device = resolve_device(args.device)
    # The model before a live input opens, loaded by the thread that will run its networks (see QuantiseStage).
    model_thread = Worker("quantise")
    try:
        model = await model_thread.call(load_model, args.model, device, args.weights, args.precision, args.compile)
    except BaseException:
        model_thread.close()
        raise
    if args.threads != 1:
        model.executor = ThreadPoolExecutor(max(2, min(args.substreams, args.threads or 4)))
    live_options: dict[str, Any] = {"realtime": args.realtime}
    if args.reconnect == 0:
        live_options["reconnect"] = False
    elif args.reconnect > 0:
        live_options["reconnect_attempts"] = args.reconnect
    source = open_source(
        args.input, live=args.live, frames=args.frames, scale=args.scale, options=input_options(args),
        format=args.format, open_timeout=args.open_timeout, read_timeout=args.read_timeout, **live_options,
    )  # fmt: skip
    sinks = []
    first_pass_seconds = None
    try:
        await source.open()
        live = source.live if args.live is None else args.live
        controller = controller_from_args(args, source.fps)
        rdo = args.rdo
        if rdo is None:
            rdo = 0 if live or not isinstance(model, MaskedEVC) else 1
        encoder = FrameEncoder(
            model, source.width, source.height, args.qp, source.time_base, source.fps, args.substreams, controller,
            rdo,
        )  # fmt: skip
        if args.two_pass:
            if live:
                raise ValueError("--two-pass needs a file input: a live source cannot be read twice")
            start = time.perf_counter()
            first_pass = await model_thread.call(_first_pass, args, encoder)
            first_pass_seconds = time.perf_counter() - start
            encoder.controller = controller_from_args(args, source.fps, first_pass)
        for output in [args.output, *args.tee]:
            options = tcp_options(args) if output.startswith("tcp://") else {}
            sinks.append(open_packet_sink(output, encoder.header, **options))
        frame_threads = await share_frame_threads(
            args.frame_threads, model_thread, device, live=live, constant_q=encoder.controller is None,
            frames=source.frame_count,
        )  # fmt: skip
    except BaseException:
        model_thread.close()
        await source.close()
        raise
    stages = encode_stages(encoder, reconstruct=args.psnr, frame_threads=frame_threads, worker=model_thread)
    pipeline = Pipeline(source, stages, sinks, live=args.live, queue_size=args.queue)
    record = FrameLog(args.stats)
    psnrs: list[float] = []
    est_bits = [0.0]

    def on_item(item: Item) -> None:
        est_bits[0] += item.info.get("estimated_bits", 0.0)
        if "psnr" in item.info:
            psnrs.append(item.info["psnr"])
        record.write(pipeline.stats, item)

    pipeline.on_item = on_item
    progress = show_progress(args) and source.frame_count != 1
    try:
        stats, interrupted = await drive(pipeline, "encode", progress)
    finally:
        record.close()
        model_thread.close()
        torch.set_num_threads(torch_threads)
    frames, nbytes = stats.frames, stats.sink.bytes
    pixels = frames * encoder.width * encoder.height
    summary: dict[str, Any] = {
        "input": args.input,
        "output": args.output,
        "model": model.name,
        "qp": args.qp,
        "rc": rc_mode(args),
        "first_pass_seconds": first_pass_seconds,
        "rdo": encoder.rdo if isinstance(model, MaskedEVC) else None,
        "frame_threads": frame_threads,
        "frames": frames,
        "width": encoder.width,
        "height": encoder.height,
        "bytes": nbytes,
        "bpp": 8 * nbytes / pixels if pixels else 0.0,
        "estimated_bytes": est_bits[0] / 8,
        "seconds": stats.elapsed,
        "fps": stats.fps,
        "live": pipeline.live,
        "dropped": stats.dropped,
        "reconnects": stats.reconnects,
        "bitrate": stats.bitrate,
        "latency_ms": stats.latency_ms,
        "latency_max_ms": 1e3 * stats.latency_max,
        "interrupted": interrupted,
        "hops": [hop.as_dict() for hop in stats.hops],
    }
    if psnrs:
        summary["psnr"] = float(np.mean(psnrs))
    if args.json:
        print_json(summary)
    elif args.output != "-" or interrupted:
        line = f"{frames} frames, {nbytes} bytes, {summary['bpp']:.4f} bpp, {stats.elapsed:.2f} s, {stats.fps:.1f} fps"
        line += f", PSNR {summary['psnr']:.2f} dB" if psnrs else ""
        if pipeline.live:
            line += f", {stats.dropped} dropped, {stats.reconnects} reconnects, latency {stats.latency_ms:.0f} ms"
        print(line, file=sys.stderr)
    return 0


# -- shared with `decode` -------------------------------------------------------------------------------------


def show_progress(args: argparse.Namespace) -> bool:
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
