"""Batch encoding: every video file of a folder to ``.scv``, on a local process pool or a Ray cluster.

:func:`plan_batch` lists the folder and makes one :class:`FileJob` per video file: an output that already exists
and is complete is skipped; a file longer than ``chunk_frames`` is split into chunks of that many frames, each its
own :class:`Task`. :func:`run_batch` runs the tasks on a :class:`ProcessPoolRunner` or a :class:`RayRunner`,
retries failed ones, joins a file's chunks in order into one stream (packets copied with their pts, one new
index) and renames each finished output into place, so an output name only ever holds a complete stream.

A task runs the pipeline ``streamcodec encode`` runs (source -> :func:`encode_stages` -> :class:`ScvFileSink`) in
the worker, with the model loaded once per worker process. With Ray, the input and output folders must have the
same path on every node (a shared file system).
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch

from . import bitstream
from .bitstream import PacketType, StreamHeader
from .bitstream.format import FOOTER_SIZE, PACKET_HEADER_SIZE, check_payload, unpack_footer, unpack_packet_head
from .codec.evc import DEFAULT_SUBSTREAMS, EVC
from .codec.registry import load_model
from .codec.stream import FrameEncoder
from .errors import StreamError
from .io import open_source as open_frames
from .pipeline import IteratorSource, Pipeline, ScvFileSink, Worker, encode_stages, open_source

log = logging.getLogger(__name__)

#: File name endings taken as video inputs.
VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg", ".flv", ".wmv",
     ".mxf", ".ogv", ".3gp", ".y4m", ".ivf", ".h264", ".264", ".h265", ".265", ".hevc"}
)  # fmt: skip

#: Makes a task's rate controller from the input's frame rate (None: constant qp). It travels to the workers,
#: so it must pickle (a module-level function or a ``functools.partial`` of one).
ControllerFactory = Callable[[Fraction | None], Any]


class TaskError(RuntimeError):
    """A task failed in its worker; the message names the original error (which may not pickle)."""


@dataclass(frozen=True)
class EncodeSettings:
    """How every task encodes: model, quality, rate control, and the resources of one worker."""

    model: str = "evc-s"
    weights: Path | None = None
    device: str = "auto"  # resolved in the worker: a Ray node may have a GPU the driver lacks
    qp: float = 32.0
    substreams: int = DEFAULT_SUBSTREAMS
    threads: int = 1  # torch and entropy-coder threads per worker
    controller: ControllerFactory | None = None


@dataclass(frozen=True)
class Chunk:
    """Frames ``[start, start + frames)`` of a file, by presentation order; ``start_pts`` is the first one's pts
    and ``origin`` the file's first pts, both in the stream's ``time_base``."""

    number: int
    start_pts: int
    frames: int
    origin: int
    time_base: Fraction
    fps: Fraction | None


@dataclass(frozen=True)
class Task:
    """Encode ``input`` (or one chunk of it) into the stream file ``output``."""

    input: Path
    output: Path
    chunk: Chunk | None = None


@dataclass(frozen=True)
class TaskResult:
    frames: int
    seconds: float


@dataclass
class FileJob:
    """One input file, its output, its tasks and, once run, what became of it."""

    input: Path
    output: Path
    tasks: list[Task] = field(default_factory=list)
    status: str = "pending"  # pending, encoded, skipped, failed
    frames: int = 0
    bytes: int = 0
    fps: Fraction | None = None
    seconds: float = 0.0
    attempts: int = 0
    error: str | None = None
    results: dict[Task, TaskResult] = field(default_factory=dict)
    #: the input's streams its .scv stream leaves out (audio, subtitles), described for people
    streams_not_kept: tuple[str, ...] = ()

    @property
    def bitrate(self) -> float:
        """Bits per second of media (0 when the frame rate is unknown)."""
        return 8 * self.bytes * float(self.fps) / self.frames if self.frames and self.fps else 0.0

    def summary(self) -> dict[str, Any]:
        """The job as a JSON-ready record (bitrate in bit/s; ``error`` only when there is one)."""
        record: dict[str, Any] = {
            "input": str(self.input),
            "output": str(self.output),
            "status": self.status,
            "frames": self.frames,
            "bytes": self.bytes,
            "bitrate": self.bitrate,
            "seconds": self.seconds,
            "attempts": self.attempts,
            "chunks": len(self.tasks),
            "streams_not_kept": list(self.streams_not_kept),
        }
        if self.error is not None:
            record["error"] = self.error
        return record


# -- planning ---------------------------------------------------------------------------------------------------


def complete_stream(path: Path) -> tuple[StreamHeader, int] | None:
    """The header and frame count of a finished ``.scv`` file (every packet intact, EOS, then the INDEX packet
    its footer points at, ending where the footer starts); None for a missing, cut or damaged one."""
    try:
        with bitstream.open(path, on_error="raise") as reader:
            frames = sum(1 for _ in reader)
            if not reader.complete:
                return None
            header = reader.header
        with open(path, "rb") as file:  # the reader ends at EOS and falls back to scanning without a footer
            size = file.seek(0, os.SEEK_END)
            file.seek(size - FOOTER_SIZE)
            index_offset = unpack_footer(file.read(FOOTER_SIZE))
            file.seek(index_offset)
            head = unpack_packet_head(file.read(PACKET_HEADER_SIZE))
            if head.type != PacketType.INDEX or index_offset + PACKET_HEADER_SIZE + head.length + FOOTER_SIZE != size:
                return None
            check_payload(head, file.read(head.length))
    except (OSError, StreamError):
        return None
    return header, frames


def probe_frames(path: Path) -> tuple[list[int], Fraction, Fraction | None] | None:
    """The pts of every frame of ``path``'s first video stream in presentation order, read by demuxing only,
    with the stream's time base and frame rate; None when its packets carry no pts (it cannot be chunked)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path} has no video stream")
            stream = container.streams.video[0]
            pts = [packet.pts for packet in container.demux(stream) if packet.size]  # size 0: the demuxer's flush
            time_base, fps = Fraction(stream.time_base), stream.average_rate
    except av.FFmpegError as error:
        raise ValueError(f"cannot read {path}: {error.strerror}") from error
    if not pts or None in pts:
        return None
    return sorted(pts), time_base, Fraction(fps) if fps else None


def plan_batch(input_dir: Path, output_dir: Path, chunk_frames: int | None = None) -> list[FileJob]:
    """One job per video file of ``input_dir`` (sorted by name), writing ``output_dir/<stem>.scv``.

    Complete outputs are marked skipped; with ``chunk_frames``, files with more frames are split into chunks.
    A file that cannot be probed for chunking is marked failed with the reason.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"no such folder: {input_dir}")
    if chunk_frames is not None and chunk_frames < 1:
        raise ValueError(f"chunk_frames must be at least 1, not {chunk_frames}")
    inputs = sorted(p for p in input_dir.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    if not inputs:
        raise ValueError(f"{input_dir} holds no video file ({', '.join(sorted(VIDEO_SUFFIXES))})")
    jobs: dict[Path, FileJob] = {}
    for path in inputs:
        output = output_dir / f"{path.stem}.scv"
        if output in jobs:
            raise ValueError(f"{jobs[output].input.name} and {path.name} would both be encoded to {output}")
        job = jobs[output] = FileJob(path, output)
        finished = complete_stream(output)
        if finished is not None:
            header, job.frames = finished
            job.status, job.bytes, job.fps = "skipped", output.stat().st_size, header.fps
            continue
        try:
            job.tasks = _tasks(path, output, chunk_frames)
        except ValueError as error:
            job.status, job.error = "failed", str(error)
            continue
        job.streams_not_kept = _other_streams(path)
    return list(jobs.values())


def _other_streams(path: Path) -> tuple[str, ...]:
    """The streams of ``path`` a .scv stream leaves out; none known if it cannot be opened (its encoding task
    then fails, is retried and reports why)."""
    try:
        with open_frames(path) as frames:
            return frames.other_streams
    except (OSError, ValueError):
        return ()


def _tasks(path: Path, output: Path, chunk_frames: int | None) -> list[Task]:
    whole = [Task(path, _temporary(output))]
    if chunk_frames is None:
        return whole
    probed = probe_frames(path)
    if probed is None or len(probed[0]) <= chunk_frames:
        return whole
    pts, time_base, fps = probed
    tasks = []
    for number, start in enumerate(range(0, len(pts), chunk_frames)):
        chunk = Chunk(number, pts[start], len(pts[start : start + chunk_frames]), pts[0], time_base, fps)
        tasks.append(Task(path, _temporary(output, number), chunk))
    return tasks


def _temporary(output: Path, chunk: int | None = None) -> Path:
    """Where a task writes: beside the output, so the final rename stays on one file system."""
    suffix = ".tmp" if chunk is None else f".part{chunk:05d}.tmp"
    return output.with_name(output.name + suffix)


# -- tasks (run in the workers) ---------------------------------------------------------------------------------


def run_task(task: Task, settings: EncodeSettings) -> TaskResult:
    """Encode one task's frames into ``task.output``; errors come back as :class:`TaskError`."""
    try:
        return asyncio.run(_encode(task, settings))
    except Exception as error:  # noqa: BLE001 - sent to the driver by pickling: only the message travels safely
        raise TaskError(f"{type(error).__name__}: {error}") from None


@lru_cache(maxsize=1)
def _model_thread() -> Worker:
    """The process's thread that loads its model and runs the networks of every task (see QuantiseStage)."""
    return Worker("quantise")


@lru_cache(maxsize=2)
def _model(name: str, weights: Path | None, device: str, threads: int) -> EVC:
    """The worker's model, loaded once per process (workers run many tasks), in :func:`_model_thread`."""
    torch.set_num_threads(threads)
    model = load_model(name, device, weights)
    if threads > 1:
        model.executor = ThreadPoolExecutor(threads)
    return model


async def _encode(task: Task, settings: EncodeSettings) -> TaskResult:
    chunk = task.chunk
    if chunk is None:
        source = open_source(task.input)
    else:
        frames = _chunk_frames(task.input, chunk)
        source = IteratorSource(frames, fps=chunk.fps or 25, time_base=chunk.time_base, name=str(task.input))
    try:
        await source.open()  # first: a bad input fails before the model loads
        model = await _model_thread().call(_model, settings.model, settings.weights, settings.device, settings.threads)
        fps = source.fps if chunk is None else chunk.fps  # the probed rate: every chunk's header the same
        controller = settings.controller(fps) if settings.controller is not None else None
        encoder = FrameEncoder(
            model, source.width, source.height, settings.qp, source.time_base, fps, settings.substreams, controller
        )
    except BaseException:
        await source.close()
        raise
    stages = encode_stages(encoder, worker=_model_thread())
    stats = await Pipeline(source, stages, [ScvFileSink(task.output, encoder.header)]).run()
    if chunk is not None and stats.frames != chunk.frames:
        raise ValueError(f"chunk {chunk.number} of {task.input} has {stats.frames} frames, not {chunk.frames}")
    return TaskResult(stats.frames, stats.elapsed)


def _chunk_frames(path: Path, chunk: Chunk) -> Iterator[tuple[np.ndarray, int]]:
    """The chunk's frames as (RGB, pts), pts counted from the file's first frame as ``streamcodec encode``
    counts them. Seeks to the key frame before the chunk; if the format seeks past it, decodes from the start."""
    for seek in (True, False):
        count = 0
        for frame in _decoded(path, chunk.start_pts if seek else None):
            if frame.pts is None:
                raise ValueError(f"{path}: a decoded frame has no pts")
            if frame.pts < chunk.start_pts:
                continue
            if count == 0 and frame.pts != chunk.start_pts:
                break  # the seek landed after the chunk's first frame
            yield frame.to_ndarray(format="rgb24"), frame.pts - chunk.origin
            count += 1
            if count == chunk.frames:
                return
        if count:
            raise ValueError(f"{path} ended {chunk.frames - count} frames before the end of chunk {chunk.number}")
    raise ValueError(f"{path}: no frame with pts {chunk.start_pts}")


def _decoded(path: Path, seek_pts: int | None) -> Iterator[av.VideoFrame]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if seek_pts is not None:
            container.seek(seek_pts, stream=stream)  # backward: the key frame at or before seek_pts
        yield from container.decode(stream)


# -- joining chunks ---------------------------------------------------------------------------------------------


def join_streams(parts: list[Path], output: Path) -> int:
    """Copy the packets of ``parts`` (streams with one header, pts increasing across them) in order into one
    stream at ``output`` with its own index and footer; return the bytes written."""
    with bitstream.open(parts[0], on_error="raise") as first:
        header = first.header
    with bitstream.open(output, "w", header=header) as writer:
        for part in parts:
            with bitstream.open(part, on_error="raise") as reader:
                if reader.header != header:
                    raise ValueError(f"{part} has another stream header than {parts[0]}")
                for packet in reader:
                    writer.write(packet)  # raises unless pts increase
                if not reader.complete:
                    raise ValueError(f"{part} is not a complete stream")
    return writer.bytes_written


# -- runners ----------------------------------------------------------------------------------------------------


class ProcessPoolRunner:
    """Tasks on local worker processes (spawned, so each starts clean of the driver's threads and CUDA)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool = self._start()
        #: the futures of the current pool: a broken pool's futures may fail after it was replaced
        self._current: weakref.WeakSet[Future[TaskResult]] = weakref.WeakSet()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"))

    def submit(self, task: Task, settings: EncodeSettings) -> Future[TaskResult]:
        """Run ``task`` with :func:`run_task` in a worker process (a fresh pool if it broke); return its future."""
        try:
            future = self._pool.submit(run_task, task, settings)
        except BrokenProcessPool:  # a worker died while none of our tasks was in flight
            self._restart()
            future = self._pool.submit(run_task, task, settings)
        self._current.add(future)
        return future

    def recover(self, error: BaseException, future: Future[TaskResult]) -> None:
        """``future`` failed with ``error``: if a worker of the current pool died (killed, out of memory), every
        task in flight failed with it; start a fresh pool (once: the other failures of that pool change nothing)."""
        if isinstance(error, BrokenProcessPool) and future in self._current:
            self._restart()

    def _restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._start()
        self._current = weakref.WeakSet()

    def close(self) -> None:
        """Shut the pool down: cancel the tasks not yet started and wait for those running."""
        self._pool.shutdown(cancel_futures=True)


class RayRunner:
    """Tasks on a Ray cluster: ``address`` as for ``ray.init`` (``auto``: the running cluster this machine
    belongs to, or a new local instance). Each task asks for ``cpus`` CPUs and ``gpus`` GPUs; Ray's own retries
    are off, :func:`run_batch` retries. A Ray session this runner started is shut down by :meth:`close`."""

    def __init__(self, address: str = "auto", cpus: float = 1, gpus: float = 0, **init_options: Any) -> None:
        try:
            import ray
        except ImportError:
            raise ValueError("--ray needs Ray: pip install 'streamcodec[ray]'") from None
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            ray.init(address=None if address == "auto" else address, **init_options)
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
        self._remote = ray.remote(run_task).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)

    def submit(self, task: Task, settings: EncodeSettings) -> Future[TaskResult]:
        """Run ``task`` with :func:`run_task` as a Ray task; return its future."""
        return self._remote.remote(task, settings).future()

    def recover(self, error: BaseException, future: Future[TaskResult]) -> None:
        """Nothing to do: Ray replaces lost workers itself."""

    def close(self) -> None:
        """Shut down the Ray session if this runner started it."""
        if self._started:
            self._ray.shutdown()


Runner = ProcessPoolRunner | RayRunner
#: Called after every task attempt with the job, the task and the error (None on success); a failed task is
#: queued again only after it returns.
TaskCallback = Callable[[FileJob, Task, BaseException | None], None]


def run_batch(
    jobs: list[FileJob],
    settings: EncodeSettings,
    runner: Runner,
    retries: int = 2,
    on_task: TaskCallback | None = None,
) -> list[FileJob]:
    """Run the pending jobs' tasks, at most ``runner.workers`` at a time and each up to ``1 + retries`` times;
    finish each file as its last task ends. Returns ``jobs`` with their status, figures and errors filled in."""
    if retries < 0:
        raise ValueError(f"retries must be at least 0, not {retries}")
    queue = deque((job, task) for job in jobs if job.status == "pending" for task in job.tasks)
    for job, _ in queue:
        job.output.parent.mkdir(parents=True, exist_ok=True)
    tries: dict[Task, int] = {}
    running: dict[Future[TaskResult], tuple[FileJob, Task]] = {}
    while queue or running:
        while queue and len(running) < runner.workers:
            job, task = queue.popleft()
            tries[task] = tries.get(task, 0) + 1
            job.attempts = max(job.attempts, tries[task])
            running[runner.submit(task, settings)] = (job, task)
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            job, task = running.pop(future)
            error = future.exception()
            if job.status == "failed":  # another of its tasks failed for good
                continue
            if on_task is not None:
                on_task(job, task, error)
            if error is None:
                job.results[task] = future.result()
                if len(job.results) == len(job.tasks):
                    _finish(job)
                continue
            runner.recover(error, future)
            if tries[task] <= retries:
                log.warning("%s: attempt %d failed (%s); retrying", task.input, tries[task], error)
                queue.appendleft((job, task))
            else:
                job.status, job.error = "failed", str(getattr(error, "cause", None) or error)  # Ray: the task's own
                queue = deque(item for item in queue if item[0] is not job)
    for job in jobs:
        if job.status == "failed":
            for task in job.tasks:
                task.output.unlink(missing_ok=True)
    return jobs


def _finish(job: FileJob) -> None:
    """Join the job's parts (if chunked) and move the stream to its final name."""
    results = [job.results[task] for task in job.tasks]
    job.frames = sum(result.frames for result in results)
    job.seconds = sum(result.seconds for result in results)
    parts = [task.output for task in job.tasks]
    try:
        if len(parts) == 1:
            os.replace(parts[0], job.output)
        else:
            joined = _temporary(job.output)
            join_streams(parts, joined)
            os.replace(joined, job.output)
            for part in parts:
                part.unlink()
        with bitstream.open(job.output) as reader:
            job.fps = reader.header.fps
    except (OSError, ValueError, StreamError) as error:
        _temporary(job.output).unlink(missing_ok=True)
        job.status, job.error = "failed", f"{type(error).__name__}: {error}"
        return
    job.status, job.bytes = "encoded", job.output.stat().st_size


def batch_summary(jobs: list[FileJob], seconds: float) -> dict[str, Any]:
    """The batch's JSON summary: totals and one record per file."""
    counts = {status: sum(job.status == status for job in jobs) for status in ("encoded", "skipped", "failed")}
    return {
        "files": len(jobs),
        **counts,
        "frames": sum(job.frames for job in jobs if job.status != "failed"),
        "bytes": sum(job.bytes for job in jobs if job.status != "failed"),
        "seconds": seconds,
        "jobs": [job.summary() for job in jobs],
    }


__all__ = [
    "VIDEO_SUFFIXES",
    "Chunk",
    "EncodeSettings",
    "FileJob",
    "ProcessPoolRunner",
    "RayRunner",
    "Task",
    "TaskError",
    "TaskResult",
    "batch_summary",
    "complete_stream",
    "join_streams",
    "plan_batch",
    "probe_frames",
    "run_batch",
    "run_task",
]
