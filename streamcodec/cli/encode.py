"""``streamcodec encode``: code an image, a folder of images, or a video file/URL into a ``.scv`` stream."""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from tqdm import tqdm

from .. import bitstream
from ..codec.evc import DEFAULT_SUBSTREAMS
from ..codec.quality import QP_MAX
from ..codec.registry import load_model
from ..codec.stream import FrameEncoder, to_image
from .common import add_model_options, binary_stdio, configure_threads, parse_size, pick_device, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode images or video into a .scv stream", description=__doc__)
    p.add_argument("input", help="image, folder of images, video file or URL")
    p.add_argument("output", help="output .scv file, or - for stdout")
    add_model_options(p)
    p.add_argument("--qp", type=float, default=32, help=f"quality 0..{QP_MAX}, higher is better (default 32)")
    p.add_argument("--frames", type=int, help="encode at most this many frames")
    p.add_argument("--scale", type=parse_size, help="resize frames to WxH first")
    p.add_argument("--substreams", type=int, default=DEFAULT_SUBSTREAMS, help="entropy-coded parts per frame")
    p.add_argument("--psnr", action="store_true", help="also report PSNR of the reconstruction")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..io import open_source  # PyAV loads only for commands that read or write media

    configure_threads(args.threads)
    if not 0 <= args.qp <= QP_MAX:
        raise ValueError(f"--qp must lie in 0..{QP_MAX}")
    device = pick_device(args.device)
    model = load_model(args.model, device, args.weights)
    if args.threads != 1:
        model.executor = ThreadPoolExecutor(max(2, min(args.substreams, args.threads or 4)))
    frames = nbytes = 0
    est_bits = 0.0
    sq_err: list[float] = []
    start = time.perf_counter()
    with open_source(args.input, frames=args.frames, scale=args.scale) as source:
        encoder = FrameEncoder(
            model, source.width, source.height, args.qp, source.time_base, source.fps, args.substreams
        )
        quiet = args.no_progress or args.json or source.frame_count == 1
        bar = tqdm(total=source.frame_count, unit="frame", disable=quiet or None, file=sys.stderr)
        with bitstream.open(binary_stdio(args.output, "w"), "w", header=encoder.header) as writer:
            for frame in source:
                packet, coded, x_hat = encoder.encode(frame.image, frame.pts or frame.index, reconstruct=args.psnr)
                nbytes += writer.write(packet)
                est_bits += coded.estimated_bits
                frames += 1
                if x_hat is not None:
                    diff = to_image(x_hat).astype(np.float64) - frame.image
                    sq_err.append(float(np.mean(diff**2)))
                elapsed = time.perf_counter() - start
                fps = source.fps or 25
                bar.set_postfix_str(f"{frames / elapsed:.1f} fps, {8 * nbytes * float(fps) / frames / 1e3:.0f} kb/s")
                bar.update()
        bar.close()
    seconds = time.perf_counter() - start
    pixels = frames * encoder.width * encoder.height
    payload_bytes = nbytes
    summary = {
        "input": args.input,
        "output": args.output,
        "model": model.name,
        "qp": args.qp,
        "frames": frames,
        "width": encoder.width,
        "height": encoder.height,
        "bytes": payload_bytes,
        "bpp": 8 * payload_bytes / pixels if pixels else 0.0,
        "estimated_bytes": est_bits / 8,
        "seconds": seconds,
        "fps": frames / seconds if seconds else 0.0,
    }
    if sq_err:
        summary["psnr"] = float(np.mean([10 * np.log10(255**2 / max(e, 1e-12)) for e in sq_err]))
    if args.json:
        print_json(summary)
    elif args.output != "-":
        line = f"{frames} frames, {payload_bytes} bytes, {summary['bpp']:.4f} bpp, {seconds:.2f} s"
        print(line + (f", PSNR {summary['psnr']:.2f} dB" if sq_err else ""), file=sys.stderr)
    return 0
