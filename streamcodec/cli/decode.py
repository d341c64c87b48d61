"""``streamcodec decode``: decode a ``.scv`` stream to PNG, Y4M, a playable video, or raw RGB on stdout.

INPUT is a ``.scv`` file, ``-`` (stdin), ``tcp://HOST:PORT`` (a ``streamcodec encode ... tcp://`` server; joining
mid-stream is fine) or MPEG-TS (``udp://HOST:PORT`` or a ``.ts`` file). OUTPUT is ``out.png``, ``out_%05d.png``,
``out.y4m``, ``out.mp4``/``.mkv``/``.mov`` (H.264; ``--vcodec ffv1`` for lossless FFV1 in ``.mkv``), or ``-`` for
raw rgb24 on stdout. Ctrl-C finishes the output cleanly; a second Ctrl-C quits at once.
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from ..codec.registry import load_model, resolve_device
from ..codec.stream import FrameDecoder
from ..errors import CorruptStreamError
from ..pipeline import DecodeStage, FrameFileSink, Item, Pipeline, Worker, open_packet_source
from .common import (
    add_compile_option,
    add_precision_option,
    configure_threads,
    positive_int,
    print_json,
    share_frame_threads,
)
from .streaming import FrameLog, add_stream_options, drive, run_async, show_progress


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "decode", help="decode a .scv stream", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("input", help=".scv file, - for stdin, tcp://HOST:PORT, udp://HOST:PORT or a .ts file")
    p.add_argument("output", help="out.png, out_%%05d.png, out.y4m, out.mp4, out.mkv, or - for raw rgb24 on stdout")
    p.add_argument("--weights", help="weights file to use instead of the shipped ones")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    add_precision_option(p)
    add_compile_option(p)
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch and entropy decoding")
    p.add_argument("--strict", action="store_true", help="stop at the first damaged byte instead of resyncing")
    p.add_argument("--vcodec", choices=("h264", "ffv1"), default="h264", help="codec of a video output (default h264)")
    p.add_argument("--json", action="store_true", help="print a JSON summary (on stderr when the output is -)")
    add_stream_options(p, encode=False)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return run_async(_decode(args), "decode")


async def _decode(args: argparse.Namespace) -> int:
    configure_threads(args.threads)
    torch_threads = torch.get_num_threads()  # frame threads share them while the pipeline runs
    on_error = "raise" if args.strict else "resync"
    source = open_packet_source(
        args.input,
        open_timeout=args.open_timeout,
        read_timeout=args.read_timeout,
        live=bool(args.live),
        on_error=on_error,
        token=args.token,
    )
    model_thread = Worker("decode")  # loads the model and runs it (see QuantiseStage: torch's OpenMP teams)
    try:
        await source.open()
        header = source.header
        model = await model_thread.call(
            load_model, header.model_name, resolve_device(args.device), args.weights, args.precision, args.compile
        )
        if args.threads != 1:
            model.executor = ThreadPoolExecutor(2 if args.threads is None else args.threads)
        decoder = FrameDecoder(model, header)
        sink = FrameFileSink(args.output, header.width, header.height, header.fps, codec=args.vcodec)
        frame_threads = await share_frame_threads(
            args.frame_threads, model_thread, model.q_basic.device, live=bool(args.live)
        )
        record = FrameLog(args.stats)
    except BaseException:
        model_thread.close()
        await source.close()
        raise
    stage = DecodeStage(decoder, "raise" if args.strict else "skip", frame_threads=frame_threads, worker=model_thread)
    pipeline = Pipeline(source, [stage], [sink], live=bool(args.live), queue_size=args.queue)

    def on_item(item: Item) -> None:
        record.write(pipeline.stats, item)

    pipeline.on_item = on_item
    try:
        stats, interrupted = await drive(pipeline, "decode", show_progress(args))
    finally:
        record.close()
        model_thread.close()
        torch.set_num_threads(torch_threads)
    damage = list(source.damage)
    summary: dict[str, Any] = {
        "input": args.input,
        "output": args.output,
        "frames": stats.frames,
        "width": header.width,
        "height": header.height,
        "seconds": stats.elapsed,
        "fps": stats.fps,
        "frame_threads": frame_threads,
        "complete": source.complete,
        "dropped": stats.dropped,
        "interrupted": interrupted,
        "damage": [
            {"offset_start": d.offset_start, "offset_end": d.offset_end, "after_pts": d.after_pts, "reason": d.reason}
            for d in damage
        ],
        "undecodable": [{"pts": pts, "reason": reason} for pts, reason in sorted(stage.undecodable)],
    }
    if args.json:
        print_json(summary, stdout_carries_data=args.output == "-")
    elif interrupted:
        print(f"{stats.frames} frames, {stats.elapsed:.2f} s, {stats.fps:.1f} fps", file=sys.stderr)
    lost = [f"bytes {d.offset_start}-{d.offset_end} after pts {d.after_pts} ({d.reason})" for d in damage]
    lost += [f"the frame at pts {pts} ({reason})" for pts, reason in stage.undecodable]
    if lost:
        raise CorruptStreamError(f"decoded {stats.frames} frames; lost {', '.join(lost)}")
    return 0
