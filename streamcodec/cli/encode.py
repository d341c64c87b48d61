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
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

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
    Worker,
    encode_stages,
    open_packet_sink,
    open_source,
)
from .common import (
    add_compile_option,
    add_model_options,
    configure_threads,
    parse_size,
    print_json,
    share_frame_threads,
)
from .rc_options import add_rc_options, controller_from_args, rc_mode
from .streaming import FrameLog, add_stream_options, drive, run_async, show_progress


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
    p.add_argument("--json", action="store_true", help="print a JSON summary (on stderr when the output is -)")
    p.add_argument("--tee", action="append", default=[], metavar="OUTPUT", help="a further output (repeatable)")
    add_stream_options(p, encode=True)
    add_rc_options(p)
    p.set_defaults(run=run)


def tcp_options(args: argparse.Namespace) -> dict[str, Any]:
    """Options of a ``tcp://`` output (:class:`~streamcodec.pipeline.TcpServerSink`)."""
    return {"wait_for_clients": args.wait_clients, "max_clients": args.max_clients, "token": args.token,
            "slow_client": args.slow_client, "max_buffer": args.client_buffer}  # fmt: skip


def input_options(args: argparse.Namespace) -> dict[str, str]:
    """The FFmpeg input options of ``--video-size``, ``--framerate``, ``--input-format`` and each ``-O KEY=VALUE``."""
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
        if source.other_streams:
            print(f"{args.input}: a .scv stream holds one video stream; not kept: {', '.join(source.other_streams)}",
                  file=sys.stderr)
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
        record = FrameLog(args.stats)
    except BaseException:
        model_thread.close()
        await source.close()
        raise
    stages = encode_stages(encoder, reconstruct=args.psnr, frame_threads=frame_threads, worker=model_thread)
    pipeline = Pipeline(source, stages, sinks, live=args.live, queue_size=args.queue)
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
        "streams_not_kept": list(source.other_streams),
    }
    if psnrs:
        summary["psnr"] = float(np.mean(psnrs))
    if args.json:
        print_json(summary, stdout_carries_data="-" in (args.output, *args.tee))
    elif args.output != "-" or interrupted:
        line = f"{frames} frames, {nbytes} bytes, {summary['bpp']:.4f} bpp, {stats.elapsed:.2f} s, {stats.fps:.1f} fps"
        line += f", PSNR {summary['psnr']:.2f} dB" if psnrs else ""
        if pipeline.live:
            line += f", {stats.dropped} dropped, {stats.reconnects} reconnects, latency {stats.latency_ms:.0f} ms"
        print(line, file=sys.stderr)
    return 0
