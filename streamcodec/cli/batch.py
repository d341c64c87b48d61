"""``streamcodec batch``: encode every video file of a folder, on local worker processes or a Ray cluster.

Each INPUT_DIR/NAME.EXT becomes OUTPUT_DIR/NAME.scv. Outputs that exist and are complete are skipped, so an
interrupted batch resumes where it stopped; a stream is written under a temporary name and renamed when done.
``--chunk-frames N`` splits longer files into N-frame tasks that run in parallel and are joined back in order
(rate control then restarts at every chunk). Failed tasks are retried ``--retries`` times; the summary (per file:
frames, bytes, bitrate, seconds, status, attempts) goes to OUTPUT_DIR/batch.json and, with ``--json``, to stdout.
The exit status is 1 when a file failed.

``--ray auto`` runs on the Ray cluster this machine belongs to, or a new local one; ``--ray ADDRESS`` joins a
cluster (``pip install 'streamcodec[ray]'``). Every node must see INPUT_DIR and OUTPUT_DIR at the same path.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

from tqdm import tqdm

from ..batch import EncodeSettings, FileJob, ProcessPoolRunner, RayRunner, Task, batch_summary, plan_batch, run_batch
from ..codec.evc import DEFAULT_SUBSTREAMS
from ..codec.quality import Q_HIGHEST, Q_LOWEST, QP_MAX, check_quality
from .common import add_model_options, print_json
from .rc_options import add_rc_options, controller_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch",
        help="encode every video file of a folder (process pool or Ray cluster)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input_dir", type=Path, help="folder of video files")
    p.add_argument("output_dir", type=Path, help="folder for the .scv streams (made if missing)")
    add_model_options(p, precision=False)
    p.add_argument("--qp", type=float, default=32,
                   help=f"quality 0..{QP_MAX} (trained range; {Q_LOWEST:g}..{Q_HIGHEST:g} extrapolated), higher is "
                        "better (default 32)")
    p.add_argument("--substreams", type=int, default=DEFAULT_SUBSTREAMS, help="entropy-coded parts per frame")
    p.add_argument("--workers", type=int, help="tasks at a time (default: CPU cores; with --ray: cluster CPUs)")
    p.add_argument("--ray", metavar="ADDRESS", help="run on a Ray cluster: auto, or an address for ray.init")
    p.add_argument("--gpus-per-task", type=float, default=0, metavar="G", help="with --ray: GPUs each task asks for")
    p.add_argument("--chunk-frames", type=int, metavar="N", help="split files longer than N frames into N-frame tasks")
    p.add_argument("--retries", type=int, default=2, help="times a failed task is tried again (default 2)")
    p.add_argument("--summary", type=Path, help="summary JSON file (default OUTPUT_DIR/batch.json)")
    p.add_argument("--json", action="store_true", help="also print the summary JSON")
    add_rc_options(p, two_pass=False)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_quality(args.qp, "--qp")
    if args.workers is not None and args.workers < 1:
        raise ValueError("--workers must be at least 1")
    controller = None
    if controller_from_args(args, None) is not None:  # inconsistent options fail here, not in every task
        controller = partial(controller_from_args, _rc_options(args))
    start = time.perf_counter()
    jobs = plan_batch(args.input_dir, args.output_dir, args.chunk_frames)
    if args.ray:
        runner: ProcessPoolRunner | RayRunner = RayRunner(args.ray, cpus=args.threads or 1, gpus=args.gpus_per_task)
        if args.workers:
            runner.workers = args.workers
        threads = args.threads or 1
    else:
        workers = args.workers or os.cpu_count() or 1
        runner = ProcessPoolRunner(workers)
        threads = args.threads or max(1, (os.cpu_count() or 1) // workers)
    settings = EncodeSettings(args.model, args.weights, args.device, args.qp, args.substreams, threads, controller)
    pending = sum(job.status == "pending" for job in jobs)
    bar = tqdm(total=pending, unit="file", desc="batch", disable=True if args.json else None, file=sys.stderr)

    def on_task(job: FileJob, task: Task, error: BaseException | None) -> None:
        if error is None:
            bar.update(1 / len(job.tasks))
        else:
            bar.write(f"streamcodec batch: {task.input}: attempt failed: {error}", file=sys.stderr)

    try:
        run_batch(jobs, settings, runner, args.retries, on_task)
    finally:
        runner.close()
        bar.close()
    summary = batch_summary(jobs, time.perf_counter() - start)
    summary_path = args.summary or args.output_dir / "batch.json"
    summary_path.write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print_json(summary)
    else:
        for job in summary["jobs"]:
            if job["status"] == "failed":
                print(f"streamcodec batch: {job['input']}: failed: {job['error']}", file=sys.stderr)
            elif job["streams_not_kept"]:
                print(f"streamcodec batch: {job['input']}: not kept: {', '.join(job['streams_not_kept'])}",
                      file=sys.stderr)
        print(
            f"{summary['files']} files: {summary['encoded']} encoded, {summary['skipped']} skipped, "
            f"{summary['failed']} failed; {summary['frames']} frames, {summary['bytes']} bytes, "
            f"{summary['seconds']:.1f} s (summary: {summary_path})",
            file=sys.stderr,
        )
    return 1 if summary["failed"] else 0


def _rc_options(args: argparse.Namespace) -> argparse.Namespace:
    """The rate-control options alone: what the workers need to make each task's controller."""
    keys = ("rc", "crf", "bitrate", "maxrate", "bufsize", "vbv_init", "rc_probes", "qmin", "qmax", "qp")
    return argparse.Namespace(**{key: getattr(args, key) for key in keys})
