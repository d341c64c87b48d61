"""Re-serve an RTSP camera (or any URL or video file) as a streamcodec stream over TCP.

    python examples/rtsp_to_tcp.py                                        # examples/sample.mp4, port 9000
    python examples/rtsp_to_tcp.py --input rtsp://camera/stream --port 9000 --wait-clients 0
    python examples/tcp_viewer.py tcp://127.0.0.1:9000                    # in a second terminal

Viewers may join at any time (each gets the stream header first); one that cannot keep up skips frames, it never
stalls the encoder. RTSP inputs use TCP, time out instead of hanging, and reconnect with back-off. The server
binds 127.0.0.1 unless ``--host`` says otherwise; ``--port 0`` picks a free port (logged as "serving tcp://...").
Ctrl-C stops the input, ends the stream for every viewer and prints a summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
from pathlib import Path

import streamcodec
from streamcodec.pipeline import Pipeline, TcpServerSink, encode_stages, open_source

SAMPLE = Path(__file__).resolve().parent / "sample.mp4"


async def serve(args: argparse.Namespace) -> dict:
    model = streamcodec.load_model(args.model, args.device)
    source = open_source(args.input, frames=args.frames, live=args.live, open_timeout=args.timeout,
                         read_timeout=args.timeout)  # fmt: skip
    await source.open()
    encoder = streamcodec.FrameEncoder(model, source.width, source.height, args.qp, source.time_base, source.fps)
    sink = TcpServerSink(encoder.header, args.host, args.port, wait_for_clients=args.wait_clients)
    pipeline = Pipeline(source, encode_stages(encoder), [sink])
    task = asyncio.current_task()

    def on_signal() -> None:  # finish the stream for the viewers; before the first one joined, just quit
        if sink.clients_total < args.wait_clients and task is not None:
            task.cancel()
        pipeline.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, on_signal)
    stats = await pipeline.run()
    return {
        "input": str(args.input),
        "url": sink.url,
        "frames": stats.frames,
        "dropped": stats.dropped,
        "reconnects": stats.reconnects,
        "clients": sink.clients_total,
        "skipped": sink.skipped,
        "fps": round(stats.fps, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", default=str(SAMPLE), help="rtsp://..., another URL, a camera or a video file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--wait-clients", type=int, default=1, help="wait for this many viewers first (default 1)")
    parser.add_argument("--frames", type=int, help="stop after this many input frames")
    parser.add_argument("--qp", type=float, default=32, help="quality 0..63, higher is better")
    parser.add_argument(
        "--live",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="live policy: newest frame wins (default: for cameras and network streams)",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the input to open or send")
    parser.add_argument("--model", default="evc-s")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(name)s: %(message)s")
    logging.getLogger("streamcodec.pipeline").setLevel(logging.INFO)  # "serving tcp://...", clients, reconnects
    try:
        summary = asyncio.run(serve(args))
    except asyncio.CancelledError:
        raise SystemExit("rtsp_to_tcp: stopped before a viewer joined") from None
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
