"""``streamcodec desync-check``: how often frames desync between numeric setups (devices, threads, layouts)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..desync import SETUPS, Setup, desync_check
from .common import parse_size, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("desync-check", help="count desynced frames across numeric setups", description=__doc__)
    p.add_argument("input", nargs="+", help="images, folders of images, or video files")
    p.add_argument("--model", default="evc-s")
    p.add_argument("--weights", type=Path)
    p.add_argument("--frames", type=int, default=10, help="frames taken from each input")
    p.add_argument("--scale", type=parse_size, help="resize frames to WxH first")
    p.add_argument("--qps", type=_qps, default=(32.0,), help="comma-separated qualities, each frame coded at each")
    p.add_argument("--encode", default="cpu-2t", help=f"comma-separated encode setups of {sorted(SETUPS)}")
    p.add_argument("--decode", default="cpu-1t,cpu-2t,cpu-channels_last", help="comma-separated decode setups")
    p.add_argument("--save-stream", type=Path, help="keep the first encode setup's stream here")
    p.add_argument("--latents-only", action="store_true",
                   help="check the latents' checksum without the synthesis transform (no pixel comparison; fast)")
    p.add_argument("--workers", type=int, default=1,
                   help="decode in this many processes (CPU setups, with --latents-only; frames of one size)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def _qps(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(q) for q in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated qualities, got {text!r}") from None


def _frames(path: str, count: int, scale: tuple[int, int] | None) -> list[np.ndarray]:
    """Up to ``count`` RGB frames of an image, a folder of images or a video. Without PyAV (GPU hosts) images and
    videos load through OpenCV."""
    import cv2

    def sized(image: np.ndarray) -> np.ndarray:
        resize = scale is not None and image.shape[1::-1] != scale
        return cv2.resize(image, scale, interpolation=cv2.INTER_AREA) if resize else image

    source = Path(path)
    if source.is_dir() or source.suffix.lower() in {".png", ".jpg", ".jpeg"}:
        from ..train.data import image_files, read_rgb

        return [sized(read_rgb(p)) for p in (image_files(source) if source.is_dir() else [source])][:count]
    try:
        from ..io import open_source
    except ImportError:  # no PyAV
        capture, frames = cv2.VideoCapture(path), []
        while len(frames) < count and (frame := capture.read()[1]) is not None:
            frames.append(sized(np.ascontiguousarray(frame[:, :, ::-1])))
        capture.release()
        if not frames:
            raise ValueError(f"{path}: no frames") from None
        return frames
    with open_source(path, frames=count, scale=scale) as frames:
        return [f.image for f in frames]


def _setups(names: str, option: str) -> list[Setup]:
    """The setups a comma-separated list names; ValueError naming the known ones for an unknown name."""
    unknown = [name for name in names.split(",") if name not in SETUPS]
    if unknown:
        raise ValueError(f"{option}: unknown setup {unknown[0]!r}; expected some of {', '.join(SETUPS)}")
    return [SETUPS[name] for name in names.split(",")]


def run(args: argparse.Namespace) -> int:
    pick = _setups(args.encode, "--encode"), _setups(args.decode, "--decode")
    images = [image for path in args.input for image in _frames(path, args.frames, args.scale)]
    result = desync_check(
        images, *pick, args.model, args.weights, args.qps, args.save_stream, args.latents_only, args.workers
    )
    if args.json:
        print_json(result)
        return 0
    for p in result["pairs"]:
        pixels = f", {p['bit_exact']} bit-exact, max pixel difference {p['max_abs_diff']}" if "bit_exact" in p else ""
        print(f"{p['encode']} -> {p['decode']}: {p['desynced']}/{p['frames']} desynced{pixels}")
    return 0
