"""Watch a streamcodec TCP stream: decode ``tcp://HOST:PORT`` into a window or a video file.

    python examples/rtsp_to_tcp.py &                                      # a server on port 9000
    python examples/tcp_viewer.py                                         # tcp://127.0.0.1:9000 -> viewer.mp4
    python examples/tcp_viewer.py tcp://127.0.0.1:9000 --output window    # needs a GUI build of OpenCV

Decoding uses ``streamcodec.VideoCapture``, the OpenCV-shaped reader: ``read()`` gives BGR frames until the
server ends the stream. The viewer may start before the server: it retries for ``--connect-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from fractions import Fraction

import streamcodec
from streamcodec.io import open_sink


def connect(url: str, timeout: float, read_timeout: float) -> streamcodec.VideoCapture:
    """A capture on ``url``, retried until the server answers or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    capture = streamcodec.VideoCapture(open_timeout=timeout, read_timeout=read_timeout)
    while not capture.open(url):
        if time.monotonic() > deadline:
            sys.exit(f"tcp_viewer: {capture.error}")
        time.sleep(0.2)
    return capture


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", default="tcp://127.0.0.1:9000")
    parser.add_argument(
        "--output", default="viewer.mp4", help="a video or image file (.mp4, .mkv, .y4m, frame_%%05d.png) or 'window'"
    )
    parser.add_argument("--connect-timeout", type=float, default=30.0, help="seconds to keep trying to connect")
    parser.add_argument("--read-timeout", type=float, default=30.0, help="seconds to wait for each frame")
    args = parser.parse_args(argv)

    capture = connect(args.url, args.connect_timeout, args.read_timeout)
    width = int(capture.get(streamcodec.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(streamcodec.CAP_PROP_FRAME_HEIGHT))
    fps = Fraction(capture.get(streamcodec.CAP_PROP_FPS) or 25).limit_denominator(1001)
    window = args.output == "window"
    if window:
        import cv2
    else:
        sink = open_sink(args.output, width, height, fps)
    frames = 0
    with capture:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames += 1
            if not window:
                sink.write(frame[..., ::-1])  # the file sink takes RGB
                continue
            cv2.imshow(args.url, frame)
            if cv2.waitKey(1) in (27, ord("q")):  # Esc or q
                break
    if window:
        cv2.destroyAllWindows()
    else:
        sink.close()
    print(json.dumps({"url": args.url, "output": args.output, "frames": frames, "width": width, "height": height}))


if __name__ == "__main__":
    main()
