"""``streamcodec desync-check``: how often frames desync between numeric setups (devices, threads, layouts)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..desync import SETUPS, desync_check
from .common import parse_size, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("desync-check", help="count desynced frames across numeric setups", description=__doc__)
    p.add_argument("input", help="image, folder of images, or video file")
    p.add_argument("--model", default="evc-s")
    p.add_argument("--weights", type=Path)
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--scale", type=parse_size, help="resize frames to WxH first")
    p.add_argument("--qp", type=float, default=32)
    p.add_argument("--encode", default="cpu-2t", help=f"comma-separated encode setups of {sorted(SETUPS)}")
    p.add_argument("--decode", default="cpu-1t,cpu-2t,cpu-channels_last", help="comma-separated decode setups")
    p.add_argument("--save-stream", type=Path, help="keep the first encode setup's stream here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def _frames(path: str, count: int, scale: tuple[int, int] | None) -> list[np.ndarray]:
    source = Path(path)
    if source.is_dir() or source.suffix.lower() in {".png", ".jpg", ".jpeg"}:
        # Images load through OpenCV, so this runs on machines without PyAV (GPU hosts).
        import cv2

        from ..train.data import image_files, read_rgb

        images = [read_rgb(p) for p in (image_files(source) if source.is_dir() else [source])][:count]
        return [cv2.resize(im, scale, interpolation=cv2.INTER_AREA) if scale else im for im in images]
    from ..io import open_source

    with open_source(path, frames=count, scale=scale) as frames:
        return [f.image for f in frames]


def run(args: argparse.Namespace) -> int:
    pick = [SETUPS[name] for name in args.encode.split(",")], [SETUPS[name] for name in args.decode.split(",")]
    result = desync_check(
        _frames(args.input, args.frames, args.scale), *pick, args.model, args.weights, args.qp, args.save_stream
    )
    if args.json:
        print_json(result)
        return 0
    for p in result["pairs"]:
        print(
            f"{p['encode']} -> {p['decode']}: {p['desynced']}/{p['frames']} desynced, "
            f"{p['bit_exact']} bit-exact, max pixel difference {p['max_abs_diff']}"
        )
    return 0
