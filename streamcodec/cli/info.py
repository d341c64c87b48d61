"""``streamcodec info``: what a ``.scv`` stream holds, or a model's card."""

from __future__ import annotations

import argparse
import json

from .. import bitstream
from ..codec.quality import index_to_q
from ..codec.registry import model_card, model_names, weights_path
from .common import binary_stdio, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a .scv stream or a model", description=__doc__)
    p.add_argument("input", nargs="?", help=".scv file, or - for stdin")
    p.add_argument("--model", help="show this model's card instead")
    p.add_argument("--models", action="store_true", help="list the known models")
    p.add_argument("--frames", action="store_true", help="list every frame's bytes and q")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def stream_info(path: str) -> dict:
    """Frames, size, timing, bitrate and per-frame sizes of a stream."""
    with bitstream.open(binary_stdio(path, "r")) as reader:
        packets = [(p.pts, len(p.payload), index_to_q(p.q_index)) for p in reader]
        h = reader.header
        damage = [d.reason for d in reader.damage]
        complete = reader.complete
    n = len(packets)
    fps = float(h.fps) if h.fps else None
    total = sum(b for _, b, _ in packets)
    duration = n / fps if fps else None
    return {
        "model": h.model_name,
        "codec_id": h.codec_id,
        "weights_hash": h.weights_hash.hex(),
        "width": h.width,
        "height": h.height,
        "fps": fps,
        "time_base": str(h.time_base),
        "frames": n,
        "duration_s": duration,
        "payload_bytes": total,
        "bpp": 8 * total / (n * h.width * h.height) if n else 0.0,
        "bitrate_kbps": 8 * total / duration / 1e3 if duration else None,
        "complete": complete,
        "damage": damage,
        "packets": [{"pts": pts, "bytes": b, "q": q} for pts, b, q in packets],
    }


def run(args: argparse.Namespace) -> int:
    if args.models:
        names = model_names()
        shipped = [n for n in names if weights_path(n).exists()]
        if args.json:
            print_json({"models": names, "with_weights": shipped})
        else:
            for n in names:
                print(n + ("  (weights shipped)" if n in shipped else ""))
        return 0
    if args.model:
        card = model_card(args.model)
        if args.json:
            print_json(card)
        else:
            print(json.dumps(card, indent=2))
        return 0
    if not args.input:
        raise ValueError("give a .scv file, --model NAME or --models")
    info = stream_info(args.input)
    if args.json:
        print_json(info)
        return 0
    print(f"{args.input}: {info['model']} ({info['codec_id']}), {info['width']}x{info['height']}, "
          f"{info['frames']} frames, fps {info['fps']}, {info['payload_bytes']} payload bytes, "
          f"{info['bpp']:.4f} bpp" + (f", {info['bitrate_kbps']:.1f} kb/s" if info["bitrate_kbps"] else "")
          + ("" if info["complete"] else ", incomplete (no end-of-stream)"))
    if args.frames:
        for i, p in enumerate(info["packets"]):
            print(f"  frame {i}: pts {p['pts']}, {p['bytes']} bytes, q {p['q']:g}")
    return 0
