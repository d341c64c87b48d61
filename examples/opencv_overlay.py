"""An OpenCV application that draws on frames and writes them with ``streamcodec.VideoWriter``.

    python examples/opencv_overlay.py                                     # examples/sample.mp4 -> overlay.scv
    python examples/opencv_overlay.py --input clip.mp4 --size 640x360 --bitrate 400000
    python examples/opencv_overlay.py --output tcp://127.0.0.1:9000       # serve it (MPEG-TS: --output out.ts)

The only change from a cv2 program is the writer: ``streamcodec.VideoWriter`` takes the same arguments as
``cv2.VideoWriter`` (FourCC ``SCV1``), BGR frames, and ``VIDEOWRITER_PROP_*`` settings in ``params``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2

import streamcodec

SAMPLE = Path(__file__).resolve().parent / "sample.mp4"


def draw(frame, index: int, fps: float) -> None:
    """A frame counter and a box around the middle of the picture, drawn in place."""
    height, width = frame.shape[:2]
    cv2.rectangle(frame, (width // 4, height // 4), (3 * width // 4, 3 * height // 4), (0, 255, 0), 2)
    label = f"frame {index}  {index / fps:.2f} s"
    cv2.putText(frame, label, (4, max(12, height // 12)), cv2.FONT_HERSHEY_SIMPLEX, height / 400, (255, 255, 255), 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=str(SAMPLE), help="anything cv2.VideoCapture opens")
    parser.add_argument("--output", default="overlay.scv", help=".scv, tcp://HOST:PORT, udp://HOST:PORT or .ts")
    parser.add_argument("--size", help="resize frames to WxH first")
    parser.add_argument("--frames", type=int, help="stop after this many frames")
    parser.add_argument("--qp", type=float, default=32, help="quality 0..63, higher is better")
    parser.add_argument("--bitrate", type=float, help="average bits per second instead of a constant quality")
    args = parser.parse_args(argv)

    capture = cv2.VideoCapture(args.input)
    if not capture.isOpened():
        raise SystemExit(f"opencv_overlay: cannot open {args.input}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    size = tuple(int(n) for n in args.size.split("x")) if args.size else (
        int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))  # fmt: skip
    params = [streamcodec.VIDEOWRITER_PROP_QUALITY, args.qp]
    if args.bitrate:
        params += [streamcodec.VIDEOWRITER_PROP_BITRATE, args.bitrate]
    fourcc = streamcodec.VideoWriter_fourcc(*"SCV1")
    with streamcodec.VideoWriter(args.output, fourcc, fps, size, params=params, strict=True) as writer:
        while args.frames is None or writer.frames_written < args.frames:
            ok, frame = capture.read()
            if not ok:
                break
            if args.size:
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            draw(frame, writer.frames_written, fps)
            writer.write(frame)
        summary = {"output": args.output, "frames": writer.frames_written, "width": size[0], "height": size[1]}
    capture.release()
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
