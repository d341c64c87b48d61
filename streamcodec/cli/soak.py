"""``streamcodec soak``: encode a live source for a long time and check memory, descriptors, threads, latency.

Runs ``streamcodec encode SOURCE --live`` as a child process for DURATION seconds and samples it every INTERVAL
seconds. Passes when resident memory grows less than --max-rss-growth MB after the warm-up, open descriptors and
threads do not grow after it, and the median per-frame latency of the last window stays near that of the first.
Exit status 1 when it fails.
"""

from __future__ import annotations

import argparse
import sys

from ..soak import Sample, run_soak
from .common import positive_int, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("soak", help="long-run check of a live encode: memory, fds, threads, latency",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--duration", type=float, default=3600.0, metavar="S", help="seconds to run (default 3600)")
    p.add_argument("--source", default="lavfi:testsrc=size=160x120:rate=10", help="live input (default: lavfi)")
    p.add_argument("--output", help=".scv the encoder writes (default: a temporary file)")
    p.add_argument("--interval", type=float, default=10.0, metavar="S", help="seconds between samples")
    p.add_argument("--warmup", type=float, metavar="S", help="warm-up (default: a quarter of the run, at most 300 s)")
    p.add_argument("--qp", type=float, default=32)
    p.add_argument("--threads", type=positive_int, default=1, help="encoder CPU threads (default 1)")
    p.add_argument("--model", default="evc-s")
    p.add_argument("--max-rss-growth", type=float, default=50.0, metavar="MB", help="allowed growth (default 50)")
    p.add_argument("--samples", metavar="CSV", help="write every sample to this CSV file")
    p.add_argument("--json", action="store_true", help="print the summary and the samples as JSON")
    p.set_defaults(run=run)


def _print_sample(s: Sample) -> None:
    latency = f"{s.latency_p50_ms:.0f}/{s.latency_p99_ms:.0f} ms" if s.latency_p50_ms is not None else "-"
    print(f"{s.seconds:8.0f} s  rss {s.rss_mb:7.1f} MB  fds {s.fds:3d}  threads {s.threads:3d}  "
          f"frames {s.frames:7d}  dropped {s.dropped:6d}  latency p50/p99 {latency}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    report = run_soak(
        args.duration, source=args.source, output=args.output, interval=args.interval, warmup=args.warmup,
        qp=args.qp, threads=args.threads, model=args.model, on_sample=None if args.json else _print_sample,
    )  # fmt: skip
    if args.samples:
        report.write_csv(args.samples)
    summary = report.summary(args.max_rss_growth)
    if args.json:
        print_json({**summary, "samples": [vars(s) for s in report.samples]})
    else:
        verdict = "ok" if summary["ok"] else "FAILED: " + "; ".join(summary["reasons"])
        g = summary.get("growth", {})
        print(f"soak {verdict}: {summary.get('frames', 0)} frames in {summary.get('duration', 0):.0f} s, "
              f"rss +{g.get('rss_max_mb', 0):.1f} MB after warm-up, fds +{g.get('fds', 0)}, "
              f"threads +{g.get('threads', 0)}")  # fmt: skip
    return 0 if summary["ok"] else 1
