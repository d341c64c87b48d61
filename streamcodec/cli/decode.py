"""``streamcodec decode``: decode a ``.scv`` stream to PNG, Y4M, a playable MP4, or raw RGB on stdout."""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from tqdm import tqdm

from .. import bitstream
from ..codec.registry import load_model
from ..codec.stream import FrameDecoder
from ..errors import CorruptStreamError
from .common import binary_stdio, configure_threads, pick_device, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decode", help="decode a .scv stream", description=__doc__)
    p.add_argument("input", help=".scv file, or - for stdin")
    p.add_argument("output", help="out.png, out_%%05d.png, out.y4m, out.mp4, or - for raw rgb24 on stdout")
    p.add_argument("--weights", help="weights file to use instead of the shipped ones")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or auto")
    p.add_argument("--threads", type=int, help="CPU threads for torch and entropy decoding")
    p.add_argument("--strict", action="store_true", help="stop at the first damaged byte instead of resyncing")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..io import open_sink  # PyAV loads only for commands that read or write media

    configure_threads(args.threads)
    start = time.perf_counter()
    frames = 0
    on_error = "raise" if args.strict else "resync"
    with bitstream.open(binary_stdio(args.input, "r"), "r", on_error=on_error) as reader:
        header = reader.header
        model = load_model(header.model_name, pick_device(args.device), args.weights)
        if args.threads != 1:
            model.executor = ThreadPoolExecutor(2 if args.threads is None else args.threads)
        decoder = FrameDecoder(model, header)
        bar = tqdm(unit="frame", disable=args.no_progress or args.json or None, file=sys.stderr)
        with open_sink(args.output, header.width, header.height, header.fps) as sink:
            for packet in reader:
                sink.write(decoder.decode(packet, frames))
                frames += 1
                bar.update()
        bar.close()
        damage = list(reader.damage)
    seconds = time.perf_counter() - start
    summary = {
        "input": args.input,
        "output": args.output,
        "frames": frames,
        "width": header.width,
        "height": header.height,
        "seconds": seconds,
        "fps": frames / seconds if seconds else 0.0,
        "complete": reader.complete,
        "damage": [
            {"offset_start": d.offset_start, "offset_end": d.offset_end, "after_pts": d.after_pts, "reason": d.reason}
            for d in damage
        ],
    }
    if args.json:
        print_json(summary)
    if damage:
        lost = ", ".join(f"bytes {d.offset_start}-{d.offset_end} after pts {d.after_pts} ({d.reason})" for d in damage)
        raise CorruptStreamError(f"decoded {frames} frames; lost {lost}")
    return 0
