"""Capture a webcam (or FFmpeg's test pattern) into a ``.scv`` stream at a constant bitrate.

    python examples/webcam_cbr.py                                         # test pattern -> webcam.scv
    python examples/webcam_cbr.py --input /dev/video0 --video-size 640x480 --bitrate 1000000 --frames 300
    streamcodec info webcam.scv

A camera runs under the live policy: the newest frame wins, and frames the encoder had no time for are dropped
and counted, so the stream keeps up with the camera. CBR spends about ``--bitrate`` and never lets a decoder
buffer (VBV) of ``--bufsize`` seconds run dry: the controller of ``streamcodec encode --rc cbr``.
"""

from __future__ import annotations

import argparse
import asyncio
import json

import streamcodec
from streamcodec.pipeline import Pipeline, ScvFileSink, encode_stages, open_source
from streamcodec.ratecontrol import make_controller


async def capture(args: argparse.Namespace) -> dict:
    model = streamcodec.load_model(args.model, args.device)
    options = {"video_size": args.video_size} if args.video_size else {}
    source = open_source(args.input, frames=args.frames, options=options, live=args.live)
    await source.open()
    fps = source.fps or 25
    controller = make_controller("cbr", fps=fps, q=args.qp, bitrate=args.bitrate, bufsize=f"{args.bufsize}s")
    encoder = streamcodec.FrameEncoder(
        model, source.width, source.height, args.qp, source.time_base, source.fps, controller=controller
    )
    pipeline = Pipeline(source, encode_stages(encoder), [ScvFileSink(args.output, encoder.header)])
    stats = await pipeline.run()
    return {
        "output": args.output,
        "frames": stats.frames,
        "dropped": stats.dropped,
        "live": pipeline.live,
        "target_bitrate": args.bitrate,
        "bitrate": round(stats.bitrate),
        "controller": controller.describe(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--input",
        default="lavfi:testsrc=size=320x240:rate=25",
        help="a camera (/dev/video0), a URL, a file or lavfi:GRAPH (default: FFmpeg's test pattern)",
    )
    parser.add_argument("--output", default="webcam.scv")
    parser.add_argument("--bitrate", type=float, default=200_000, help="target bits per second (default 200000)")
    parser.add_argument("--bufsize", type=float, default=1.0, help="VBV size in seconds at the bitrate (default 1)")
    parser.add_argument("--qp", type=float, default=32, help="the quality CBR starts from, 0..63")
    parser.add_argument("--frames", type=int, default=50, help="stop after this many frames (default 50)")
    parser.add_argument("--video-size", help="capture size asked of a camera, e.g. 640x480")
    parser.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="live policy (default: for cameras and network streams)",
    )
    parser.add_argument("--model", default="evc-s")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(capture(args))))


if __name__ == "__main__":
    main()
