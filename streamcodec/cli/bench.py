"""``streamcodec bench``: per-stage encode and decode speed of a model at one frame size."""

from __future__ import annotations

import argparse
import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from ..bench import pipeline_throughput, run_benchmark, synthetic_frame
from ..codec.registry import load_model, resolve_device
from ..pipeline import Worker
from .common import (
    add_compile_option,
    add_model_options,
    configure_threads,
    parse_frame_threads,
    parse_size,
    print_json,
    share_frame_threads,
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmark encode/decode speed", description=__doc__)
    add_model_options(p)
    add_compile_option(p)
    p.add_argument("--size", type=parse_size, default=(1920, 1080), help="frame size WxH (default 1920x1080)")
    p.add_argument("--input", help="an image to code (resized to --size); default a synthetic frame")
    p.add_argument("--frames", type=int, default=20, help="timed frames (after 3 warm-up frames)")
    p.add_argument("--qp", type=float, default=32)
    p.add_argument("--rdo", type=int, choices=(0, 1, 2), default=0,
                   help="block-masked models (evc-s-rdo): RDO passes per frame (0: zero-pass variance mask)")
    p.add_argument("--coder-threads", type=int, default=4, help="entropy-coding threads (1: no thread pool)")
    p.add_argument("--frame-threads", type=parse_frame_threads, default="auto", metavar="N",
                   help="frames in flight in the pipeline's figures, as for `encode` (auto: 2 on a CPU, else 1)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=run)


def _load_image(path: str, size: tuple[int, int]) -> np.ndarray:
    import cv2  # only when an input image is given

    from ..train.data import read_rgb

    image = read_rgb(path)
    if image.shape[1::-1] != size:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def run(args: argparse.Namespace) -> int:
    configure_threads(args.threads)
    result = asyncio.run(_measure(args))
    if args.json:
        print_json(result)
        return 0
    rdo = f" (rdo {result['rdo']})" if result["rdo"] is not None else ""
    print(f"{result['model']}{rdo} at {result['size']} on {result['machine']}, {result['bytes_per_frame']} bytes/frame")
    for side in ("encode", "decode"):
        r = result[side]
        stages = ", ".join(f"{k} {v['median_ms']:.1f}" for k, v in r["stages"].items())
        print(f"{side}: {r['median_ms']:.1f} ms median, {r['p99_ms']:.1f} ms p99, {r['fps']:.1f} fps  ({stages} ms)")
    for pipe in result["pipeline"]:
        print(f"pipeline, {pipe['frame_threads']} frame thread(s), coding overlapping the networks: encode "
              f"{pipe['encode_fps']:.2f} fps, decode {pipe['decode_fps']:.2f} fps")
    print(f"network only: encode {result['network_only_ms']['encode']:.1f} ms, "
          f"decode {result['network_only_ms']['decode']:.1f} ms")
    return 0


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    """Every figure, with one thread loading the model and running its networks as ``encode`` does (see
    :class:`~streamcodec.pipeline.stages.QuantiseStage`); frame threads add their own."""
    model_thread = Worker("bench")
    torch_threads = torch.get_num_threads()
    try:
        device = resolve_device(args.device)
        model = await model_thread.call(load_model, args.model, device, args.weights, args.precision, args.compile)
        model.executor = ThreadPoolExecutor(args.coder_threads) if args.coder_threads > 1 else None
        image = synthetic_frame(*args.size)
        if args.input:  # OpenCV's resize runs on OpenMP too: in the same thread
            image = await model_thread.call(_load_image, args.input, args.size)
        result = await model_thread.call(functools.partial(
            run_benchmark, model, image, frames=args.frames, qp=args.qp, rdo=args.rdo
        ))  # fmt: skip
        result.update(precision=args.precision, compile=args.compile, coder_threads=args.coder_threads)
        measure = functools.partial(
            pipeline_throughput, model, image, args.frames, qp=args.qp, worker=model_thread, rdo=args.rdo
        )
        result["pipeline"] = [await measure()]  # one frame at a time
        frame_threads = await share_frame_threads(args.frame_threads, model_thread, device, live=False)
        if frame_threads > 1:  # and with frame threads, for the ratio in one run
            result["pipeline"].append(await measure(frame_threads=frame_threads))
    finally:
        model_thread.close()
        torch.set_num_threads(torch_threads)
    return result

