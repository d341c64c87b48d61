"""``streamcodec fuzz``: mutate a short stream made with the shipped model and decode every mutant.

Each case (bit flips, truncation at every offset in turn, inserted, deleted and copied bytes, header and packet
fields at extremes with valid CRCs, crafted frame payloads, index and footer) runs the reader and the decoder in
a worker process bounded in time and memory. Expected outcomes are a clean decode or a StreamError; a crash, a
hang, an allocation past the bound, an intact packet not decoded, or pipe and file reads that disagree are
bugs: they are listed and the exit status is 1. ``--start N --cases 1`` reruns case N of a seed.
"""

from __future__ import annotations

import argparse
import sys

from ..fuzz import STATUSES, FuzzReport, run_fuzz
from .common import print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fuzz", help="fuzz the stream reader and decoder with mutated streams",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--cases", type=int, default=1000, help="how many cases (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mutations (default 0)")
    p.add_argument("--start", type=int, default=0, metavar="N", help="first case number (default 0)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=run)


def _progress(report: FuzzReport) -> None:
    counts = ", ".join(f"{s} {report.statuses[s]}" for s in STATUSES if report.statuses[s])
    print(f"{report.cases} cases, {report.seconds:.0f} s: {counts}", file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    if args.cases < 1 or args.workers < 1:
        raise ValueError("--cases and --workers must be at least 1")
    report = run_fuzz(args.cases, args.seed, start=args.start, workers=args.workers,
                      on_progress=None if args.json else _progress)  # fmt: skip
    if args.json:
        print_json(report.as_dict())
    else:
        for bug in report.bugs:
            print(f"case {bug['case']} ({bug['kind']}): {bug['status']}: {bug['detail']}")
        counts = ", ".join(f"{s} {report.statuses[s]}" for s in STATUSES)
        print(f"{report.cases} cases of seed {args.seed} in {report.seconds:.1f} s "
              f"({report.stream_bytes}-byte stream, {report.stream_packets} frames): {counts}")  # fmt: skip
    return 1 if report.bugs else 0
