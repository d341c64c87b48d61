"""Encode every video in a folder into ``.scv`` files, offline (every frame, in order), with the Python API.

    python examples/encode_folder.py                                      # examples/ -> encoded/
    python examples/encode_folder.py videos/ out/ --size 640x360 --qp 40 --workers 2

Each output is written under a temporary name and renamed when complete, so outputs that exist are complete and
are skipped on the next run. ``streamcodec batch`` does the same job with retries and a Ray cluster.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache, partial
from pathlib import Path

import streamcodec
from streamcodec.io import open_source

VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".y4m", ".m4v"})


@lru_cache(maxsize=1)
def model(name: str, device: str) -> streamcodec.codec.evc.EVC:
    return streamcodec.load_model(name, device)  # once per worker process


def encode(path: Path, args: argparse.Namespace) -> dict:
    """Encode one video into ``OUTPUT_DIR/<name>.scv``; a summary of what was done."""
    output = args.output_dir / f"{path.stem}.scv"
    if output.exists():
        return {"input": str(path), "output": str(output), "skipped": True}
    started = time.perf_counter()
    partial_output = output.with_name(output.name + ".partial")
    with open_source(path, frames=args.frames, scale=args.size) as source:
        encoder = streamcodec.FrameEncoder(
            model(args.model, args.device), source.width, source.height, args.qp, source.time_base, source.fps
        )
        with streamcodec.open(partial_output, "w", header=encoder.header) as stream:
            for frame in source:
                stream.write(encoder.encode(frame.image, frame.pts)[0])
    frames = encoder.frame_index
    if frames == 0:
        partial_output.unlink()
        return {"input": str(path), "error": "no frames to encode"}
    partial_output.replace(output)
    size = output.stat().st_size
    return {
        "input": str(path),
        "output": str(output),
        "frames": frames,
        "bytes": size,
        "bpp": round(8 * size / (frames * encoder.width * encoder.height), 4),
        "seconds": round(time.perf_counter() - started, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input_dir", nargs="?", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("output_dir", nargs="?", type=Path, default=Path("encoded"))
    parser.add_argument("--size", type=lambda text: tuple(map(int, text.split("x"))), help="resize to WxH first")
    parser.add_argument("--frames", type=int, help="encode at most this many frames of each video")
    parser.add_argument("--qp", type=float, default=32, help="quality 0..63, higher is better")
    parser.add_argument("--workers", type=int, default=1, help="videos encoded at once, one process each")
    parser.add_argument("--model", default="evc-s")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    videos = sorted(p for p in args.input_dir.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise SystemExit(f"encode_folder: no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) in {args.input_dir}")
    stems = [p.stem for p in videos]
    if len(set(stems)) < len(stems):  # a.mp4 and a.mkv would both become a.scv
        twins = sorted(p.name for p in videos if stems.count(p.stem) > 1)
        raise SystemExit(f"encode_folder: {', '.join(twins)} would share an output name; rename or move one")
    args.output_dir.mkdir(parents=True, exist_ok=True)
    if args.workers > 1:
        with ProcessPoolExecutor(args.workers) as pool:
            results = list(pool.map(partial(encode, args=args), videos))
    else:
        results = [encode(video, args) for video in videos]
    print(json.dumps({"videos": results}, indent=2))


if __name__ == "__main__":
    main()
