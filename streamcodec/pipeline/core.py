"""The pipeline's plumbing: a source, stages and sinks joined by queues, run on asyncio.

A :class:`Pipeline` runs one task per hop. The source task reads frames and puts them in the first queue; each
stage task takes an :class:`Item`, processes it and puts the result in the next queue; the sink task hands each
item to every sink in turn. Blocking work (PyAV, the model, file writes) runs in a :class:`Worker` thread, never on
the event loop. :data:`EOS` follows the last item through every queue.

Two policies, chosen from the source (``live``) unless the pipeline is told otherwise:

* **file**: bounded queues everywhere; a slow hop makes the ones before it wait (back-pressure); nothing is
  dropped, every frame is coded in order with its pts.
* **live**: the first queue is a :class:`Mailbox` holding only the newest frame; frames the encoder had no time for
  are dropped and counted, so latency stays bounded by about two frame-coding times.
"""

from __future__ import annotations

import asyncio
import atexit
import itertools
import logging
import math
import queue
import threading
import time
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, TypeVar

log = logging.getLogger("streamcodec.pipeline")

T = TypeVar("T")


class PipelineError(Exception):
    """Base class of the errors sources, stages and sinks raise about their I/O."""


class SourceError(PipelineError, OSError):
    """A source cannot be opened or read (and, if live, could not reconnect)."""


class SourceTimeoutError(SourceError, TimeoutError):
    """A source sent nothing within its open or read timeout."""


class SinkError(PipelineError, OSError):
    """A sink cannot be opened or written."""


class _EndOfStream:
    def __repr__(self) -> str:
        return "EOS"


#: The end-of-stream sentinel that follows the last item through every queue.
EOS: Any = _EndOfStream()


@dataclass
class Item:
    """One frame on its way through the pipeline.

    ``data`` is an RGB image (HxWx3 uint8 array or tensor) before the encoder, a
    :class:`~streamcodec.bitstream.Packet` after it (and the reverse when decoding). ``created`` is the
    :func:`time.perf_counter` instant the source produced the frame: latencies count from it. Stages add what
    they learn to ``info`` (``q``, ``bytes``, ``encode_ms`` ...).
    """

    data: Any
    pts: int
    index: int
    time_base: Fraction
    created: float = field(default_factory=time.perf_counter)
    info: dict[str, Any] = field(default_factory=dict)


class Worker:
    """One daemon thread that runs blocking calls in submission order (a PyAV container, a model, a file).

    ``await worker.call(fn, *args)`` returns ``fn``'s result on the event loop. A caller that is cancelled stops
    waiting, but the call already running finishes in the thread; calls queued after it still run in order, so a
    ``close`` submitted after a ``read`` never races it. The thread is a daemon: a call stuck in I/O never keeps
    the process alive.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[Any, ...] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the thread after the calls submitted before it; return its result or raise its error."""
        if self._closed:
            raise RuntimeError(f"worker {self.name} is closed")
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name=self.name, daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((loop, future, fn, args))
        return await future

    def close(self) -> None:
        """Let the thread end once the calls already submitted are done. Idempotent."""
        if not self._closed:
            self._closed = True
            self._jobs.put(None)
            if self._thread is not None:
                _closed_threads.add(self._thread)

    def _main(self) -> None:
        while (job := self._jobs.get()) is not None:
            loop, future, fn, args = job
            try:
                outcome: tuple[bool, Any] = (True, fn(*args))
            except BaseException as exc:  # handed to the awaiting task
                outcome = (False, exc)
            try:
                loop.call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass


#: Threads of closed workers, joined (briefly) at exit: see :func:`_join_workers`.
_closed_threads: weakref.WeakSet[threading.Thread] = weakref.WeakSet()


@atexit.register
def _join_workers(timeout: float = 2.0) -> None:
    """Give closed workers up to ``timeout`` seconds to end before the interpreter tears down: a daemon thread
    still finishing torch work at exit aborts the process ("terminate called without an active exception")."""
    deadline = time.monotonic() + timeout
    for thread in list(_closed_threads):
        thread.join(max(0.0, deadline - time.monotonic()))


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if not future.done():
        ok, value = outcome
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class Mailbox:
    """A one-slot queue for live frames: a put replaces a frame not yet taken, counting it in :attr:`dropped`.

    Puts never wait. :data:`EOS` is never dropped: it queues behind the frame in the slot.
    """

    def __init__(self) -> None:
        self._items: deque[Any] = deque()
        self._ready = asyncio.Event()
        self.dropped = 0
        self.maxsize = 1

    def put_nowait(self, item: Any) -> None:
        """Put ``item`` in the slot, replacing (and counting as dropped) a frame not yet taken; never waits."""
        if item is not EOS and self._items and self._items[-1] is not EOS:
            self._items.pop()
            self.dropped += 1
        self._items.append(item)
        self._ready.set()

    async def put(self, item: Any) -> None:
        """Same as :meth:`put_nowait` (the ``asyncio.Queue`` interface); never waits."""
        self.put_nowait(item)

    async def get(self) -> Any:
        """Take the oldest item, waiting until there is one."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def qsize(self) -> int:
        """Items waiting: at most the frame in the slot and :data:`EOS`."""
        return len(self._items)


class _Queue(asyncio.Queue):  # type: ignore[type-arg]
    """A bounded queue: puts wait while it is full (back-pressure); nothing is ever dropped."""

    dropped = 0


# -- the three kinds of hop -----------------------------------------------------------------------------------


class Source(ABC):
    """Where items come from. :meth:`read` returns the next item, or None at the end of the stream.

    ``live`` sources (cameras, network streams) produce at their own pace and run under the live policy by
    default. A source may reconnect by itself; :attr:`reconnects` counts how often it did.
    """

    name = "source"
    live = False
    width = 0
    height = 0
    fps: Fraction | None = None
    time_base = Fraction(1, 25)
    frame_count: int | None = None
    reconnects = 0
    #: the input's streams the source does not read (audio, subtitles, ...), described for people
    other_streams: tuple[str, ...] = ()

    async def open(self) -> None:
        """Connect and learn the stream's properties; called by the pipeline if not called before."""

    @abstractmethod
    async def read(self) -> Item | None:
        """Return the next item, or None at the end of the stream."""

    def stop(self) -> None:
        """Ask a blocking read or a reconnect back-off to end early (thread-safe). The next read may end the
        stream."""

    async def close(self) -> None:
        """Release the input. Idempotent."""

    async def __aenter__(self) -> Source:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Stage(ABC):
    """A transformation of items: :meth:`process` returns the new item, or None to let it go.

    The pipeline keeps up to :attr:`concurrency` calls of :meth:`process` in flight (items taken in order,
    results passed on in the same order), for a stage that can work on several items at once.
    """

    name = "stage"
    concurrency = 1

    async def open(self) -> None:
        """Prepare; called once before the first item."""

    @abstractmethod
    async def process(self, item: Item) -> Item | None:
        """Return the new item made from ``item``, or None to let it go."""

    async def close(self) -> None:
        """Release resources. Idempotent."""


class WorkerStage(Stage):
    """A stage whose work runs in ``threads`` worker threads, items handed to them in turn: the pipeline keeps
    that many items in flight and passes the results on in order. One thread keeps the calls in order; several
    suit work on independent items (intra-coded frames) whose single calls leave cores idle.

    ``worker``, when given, is the first of them (e.g. the thread that loaded a model, see
    :class:`~streamcodec.pipeline.stages.QuantiseStage`); its owner closes it, the stage closes its own.
    """

    def __init__(self, threads: int = 1, worker: Worker | None = None) -> None:
        if threads < 1:
            raise ValueError(f"a stage needs at least one thread, not {threads}")
        self.concurrency = threads
        self._own = [Worker(f"{self.name}-{i}" if threads > 1 else self.name) for i in range(threads - bool(worker))]
        self._workers = ([worker] if worker else []) + self._own
        self._turn = itertools.count()

    async def _call(self, fn: Callable[[Item], T], item: Item) -> T:
        return await self._workers[next(self._turn) % len(self._workers)].call(fn, item)

    async def close(self) -> None:
        for worker in self._own:
            worker.close()


class Sink(ABC):
    """Where items end up. :meth:`close` finalises the output (index, trailer) and is idempotent."""

    name = "sink"

    async def open(self) -> None:
        """Create the output; called once before the first item."""

    @abstractmethod
    async def write(self, item: Item) -> None:
        """Write ``item`` to the output."""

    async def close(self) -> None:
        """Finish the output. Idempotent."""


# -- statistics ------------------------------------------------------------------------------------------------


@dataclass
class HopStats:
    """Counters of one hop. ``busy_s``/``latency_max_ms`` time :meth:`Stage.process` (or the source's read, or
    all sinks' writes); ``queue_depth`` is the hop's input queue at its last take."""

    name: str
    frames_in: int = 0
    frames_out: int = 0
    dropped: int = 0
    queue_depth: int = 0
    queue_max: int = 0
    queue_size: int = 0
    busy_s: float = 0.0
    latency_max_ms: float = 0.0
    bytes: int = 0
    first: float | None = None
    last: float | None = None

    def record(self, seconds: float) -> None:
        """Add one call that took ``seconds`` to the busy time and worst latency; stamp the first and last output."""
        now = time.perf_counter()
        self.first = now if self.first is None else self.first
        self.last = now
        self.busy_s += seconds
        self.latency_max_ms = max(self.latency_max_ms, 1e3 * seconds)

    @property
    def latency_ms(self) -> float:
        """Mean time per frame spent in this hop."""
        return 1e3 * self.busy_s / self.frames_out if self.frames_out else 0.0

    @property
    def fps(self) -> float:
        """Frames out per second between the first and the last output (0.0 before two frames)."""
        if self.first is None or self.last is None or self.frames_out < 2 or self.last <= self.first:
            return 0.0
        return (self.frames_out - 1) / (self.last - self.first)

    def as_dict(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict (rates rounded)."""
        return {
            "name": self.name,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
            "dropped": self.dropped,
            "queue_depth": self.queue_depth,
            "queue_max": self.queue_max,
            "queue_size": self.queue_size,
            "fps": round(self.fps, 3),
            "latency_ms": round(self.latency_ms, 3),
            "latency_max_ms": round(self.latency_max_ms, 3),
            "bytes": self.bytes,
        }


class PipelineStats:
    """Everything a progress line or a summary needs: per-hop counters and end-to-end latency."""

    def __init__(
        self,
        source: HopStats,
        stages: list[HopStats],
        sink: HopStats,
        time_base: Fraction,
        frame_rate: Fraction | None = None,
    ) -> None:
        self.source = source
        self.stages = stages
        self.sink = sink
        self.time_base = time_base
        #: the source's nominal frame rate, if it has one: one frame's duration at the end of the media time
        self.frame_rate = frame_rate
        self.reconnects = 0
        self.started = time.perf_counter()
        self.ended: float | None = None
        self.first_pts: int | None = None
        self.last_pts: int | None = None
        #: the shortest pts step between consecutive outputs: one frame's duration (drops and gaps are longer)
        self.frame_step: int | None = None
        self.last_q: float | None = None
        self.latency_sum = 0.0
        self.latency_max = 0.0
        self._recent: deque[float] = deque(maxlen=512)

    def record_output(self, item: Item, now: float) -> None:
        """Count ``item`` as written at ``now`` (perf_counter time)."""
        latency = now - item.created
        self.latency_sum += latency
        self.latency_max = max(self.latency_max, latency)
        self._recent.append(latency)
        self.first_pts = item.pts if self.first_pts is None else self.first_pts
        if self.last_pts is not None and item.pts > self.last_pts:
            step = item.pts - self.last_pts
            self.frame_step = step if self.frame_step is None else min(self.frame_step, step)
        self.last_pts = item.pts
        if "q" in item.info:
            self.last_q = item.info["q"]

    @property
    def hops(self) -> list[HopStats]:
        """The source, stages and sink counters, in pipeline order."""
        return [self.source, *self.stages, self.sink]

    @property
    def frames(self) -> int:
        """Items that reached the sinks."""
        return self.sink.frames_out

    @property
    def dropped(self) -> int:
        """Frames dropped, all hops together."""
        return sum(h.dropped for h in self.hops)

    @property
    def elapsed(self) -> float:
        """Wall-clock seconds from the start of the run to its end (or to now while it runs)."""
        return (self.ended or time.perf_counter()) - self.started

    @property
    def fps(self) -> float:
        """Frames that reached the sinks per wall-clock second."""
        return self.frames / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def media_seconds(self) -> float:
        """Media time covered so far: from the first pts to one frame past the last (dropped frames and gaps in
        the timestamps count as the time they cover). A frame lasts 1 / :attr:`frame_rate`, or without one the
        shortest pts step seen."""
        if self.first_pts is None or self.last_pts is None:
            return 0.0
        if self.frame_rate:
            last = 1 / self.frame_rate
        elif self.frame_step is not None:
            last = self.frame_step * self.time_base
        else:
            return 0.0
        return float((self.last_pts - self.first_pts) * self.time_base + last)

    @property
    def bitrate(self) -> float:
        """Bits per second of media time, from the coded frames' bytes (``item.info["bytes"]``)."""
        seconds = self.media_seconds
        return 8 * self.sink.bytes / seconds if seconds > 0 else 0.0

    @property
    def latency_ms(self) -> float:
        """Mean end-to-end latency per frame: from the source producing it to all sinks having written it."""
        return 1e3 * self.latency_sum / self.frames if self.frames else 0.0

    @property
    def latency_p95_ms(self) -> float:
        """95th percentile over the last 512 frames."""
        if not self._recent:
            return 0.0
        ordered = sorted(self._recent)
        return 1e3 * ordered[math.ceil(0.95 * len(ordered)) - 1]  # nearest rank

    def as_dict(self) -> dict[str, Any]:
        """The summary as a JSON-ready dict, per-hop counters under ``hops``."""
        return {
            "frames": self.frames,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
            "seconds": round(self.elapsed, 3),
            "fps": round(self.fps, 3),
            "bitrate": round(self.bitrate, 1),
            "latency_ms": round(self.latency_ms, 3),
            "latency_p95_ms": round(self.latency_p95_ms, 3),
            "latency_max_ms": round(1e3 * self.latency_max, 3),
            "hops": [h.as_dict() for h in self.hops],
        }

    def progress_line(self) -> str:
        """A status line shaped like FFmpeg's: frames, fps, q, size, time, bitrate, drops, queue, latency."""
        seconds = self.media_seconds
        whole = int(seconds)
        clock = f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}.{int(100 * (seconds - whole)):02d}"
        first = self.stages[0] if self.stages else self.sink
        q = f" q={self.last_q:.1f}" if self.last_q is not None else ""
        speed = seconds / self.elapsed if self.elapsed > 0 else 0.0
        line = (
            f"frame={self.frames:5d} fps={self.fps:5.1f}{q} size={self.sink.bytes / 1024:8.0f}KiB time={clock} "
            f"bitrate={self.bitrate / 1e3:7.1f}kbits/s drop={self.dropped} queue={first.queue_depth}/"
            f"{first.queue_size} latency={self.latency_ms:.0f}ms speed={speed:.2f}x"
        )
        return line + (f" reconnects={self.reconnects}" if self.reconnects else "")


# -- the pipeline ----------------------------------------------------------------------------------------------


class Pipeline:
    """Runs ``source -> stages... -> sinks`` until the source ends, :meth:`stop` is called, or a hop fails.

    ``live`` (default: the source's) picks the policy, see the module doc. ``queue_size`` bounds each queue
    (default 4 for files, 2 for live; the live source's own queue is always a one-slot mailbox). ``on_item`` is
    called with every item after all sinks wrote it (sync or async), e.g. to log per-frame statistics.

    :meth:`run` opens every hop, moves the items and closes every hop (sinks finalise their outputs even after
    an error or a stop), then returns the :class:`PipelineStats`, or raises the first error a hop raised.
    """

    def __init__(
        self,
        source: Source,
        stages: Sequence[Stage] = (),
        sinks: Sequence[Sink] = (),
        *,
        live: bool | None = None,
        queue_size: int | None = None,
        on_item: Callable[[Item], Awaitable[None] | None] | None = None,
    ) -> None:
        if not sinks:
            raise ValueError("a pipeline needs at least one sink")
        self.source = source
        self.stages = list(stages)
        self.sinks = list(sinks)
        self.live = source.live if live is None else live
        self.queue_size = queue_size if queue_size is not None else (2 if self.live else 4)
        if self.queue_size < 1:
            raise ValueError(f"queue_size must be at least 1, not {queue_size}")
        self.on_item = on_item
        self._queues: list[Mailbox | _Queue] = []
        self._stopping = False
        self._source_task: asyncio.Task[None] | None = None
        self._opening: asyncio.Task[None] | None = None
        #: True while the source task waits in ``source.read()``, the one place :meth:`stop` interrupts it
        self._reading = False
        hops = [HopStats(stage.name) for stage in self.stages]
        sink_name = "+".join(sink.name for sink in self.sinks)
        self.stats = PipelineStats(HopStats(source.name), hops, HopStats(sink_name), source.time_base)

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping

    def stop(self) -> None:
        """Stop reading the source; what is in flight is still coded and written, then :meth:`run` returns.
        While the hops are still opening (e.g. a TCP sink waiting for its first clients), opening ends at once.

        Call it from the event loop's thread (e.g. a signal handler installed with ``loop.add_signal_handler``).
        """
        if self._stopping:
            return
        self._stopping = True
        self.source.stop()
        if self._opening is not None:
            self._opening.cancel()
        if self._source_task is not None and self._reading:
            # Only a read is cancelled: a frame already read is still queued, and the end of the stream always is.
            self._source_task.cancel()

    async def run(self) -> PipelineStats:
        """Open every hop, move the items, close every hop; return the :class:`PipelineStats` or raise the first
        error a hop raised."""
        hops = [self.source, *self.stages, *self.sinks]
        opened: list[Source | Stage | Sink] = []
        error: BaseException | None = None

        async def open_all() -> None:
            for hop in hops:
                opened.append(hop)  # closed on the way out even if its open() fails half-way
                await hop.open()

        try:
            opening = self._opening = asyncio.create_task(open_all(), name="pipeline-open")
            try:
                await asyncio.wait({opening})
            except asyncio.CancelledError:
                opening.cancel()
                await asyncio.gather(opening, return_exceptions=True)
                raise
            finally:
                self._opening = None
            if opening.cancelled():  # by stop(): no frame was read; the hops are closed below
                return self.stats
            opening.result()  # a hop's error
            self.stats.time_base, self.stats.frame_rate = self.source.time_base, self.source.fps
            self.stats.started = time.perf_counter()
            await self._move()
        except BaseException as exc:
            error = exc
        finally:
            for hop in reversed(opened):  # sinks first: their outputs get finalised even after an error
                try:
                    await hop.close()
                except Exception as exc:  # noqa: BLE001 - the first error wins
                    if error is None:
                        error = exc
                    else:  # most often the same fault again (a full disk fails the write and the close)
                        log.debug("closing %s failed too: %s", hop.name, exc)
            self.stats.reconnects = self.source.reconnects
            self.stats.ended = time.perf_counter()
        if error is not None:
            raise error
        return self.stats

    async def _move(self) -> None:
        count = len(self.stages) + 1
        first: Mailbox | _Queue = Mailbox() if self.live else _Queue(self.queue_size)
        self._queues = [first] + [_Queue(self.queue_size) for _ in range(count - 1)]
        hops = [*self.stats.stages, self.stats.sink]
        for hop, q in zip(hops, self._queues, strict=True):
            hop.queue_size = q.maxsize
        self._source_task = asyncio.create_task(self._read_source(), name="pipeline-source")
        tasks = [self._source_task]
        for i, stage in enumerate(self.stages):
            tasks.append(asyncio.create_task(self._run_stage(stage, i), name=f"pipeline-{stage.name}"))
        tasks.append(asyncio.create_task(self._run_sinks(), name="pipeline-sinks"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _read_source(self) -> None:
        out = self._queues[0]
        hop = self.stats.source
        while not self._stopping:
            start = time.perf_counter()
            self._reading = True
            try:
                item = await self.source.read()
            except asyncio.CancelledError:
                if not self._stopping:
                    raise
                break
            finally:
                self._reading = False
            if item is None:
                break
            hop.frames_out += 1
            hop.record(time.perf_counter() - start)
            self.stats.reconnects = self.source.reconnects
            await out.put(item)
            hop.dropped = out.dropped
        hop.dropped = out.dropped
        await out.put(EOS)

    async def _take(self, index: int, hop: HopStats) -> Any:
        q = self._queues[index]
        hop.queue_depth = q.qsize()
        hop.queue_max = max(hop.queue_max, hop.queue_depth)
        item = await q.get()
        hop.queue_depth = q.qsize()
        return item

    async def _run_stage(self, stage: Stage, index: int) -> None:
        hop = self.stats.stages[index]
        out = self._queues[index + 1]
        in_flight: deque[tuple[float, asyncio.Future[Item | None]]] = deque()

        async def pass_oldest() -> None:
            start, call = in_flight[0]
            result = await call
            in_flight.popleft()
            if result is None:
                return
            hop.frames_out += 1
            hop.record(time.perf_counter() - start)
            hop.bytes += int(result.info.get("bytes", 0))
            await out.put(result)

        try:
            while (item := await self._take(index, hop)) is not EOS:
                hop.frames_in += 1
                in_flight.append((time.perf_counter(), asyncio.ensure_future(stage.process(item))))
                if len(in_flight) >= stage.concurrency:
                    await pass_oldest()
            while in_flight:
                await pass_oldest()
        finally:
            for _, call in in_flight:
                call.cancel()
        await out.put(EOS)

    async def _run_sinks(self) -> None:
        hop = self.stats.sink
        while (item := await self._take(len(self.stages), hop)) is not EOS:
            hop.frames_in += 1
            start = time.perf_counter()
            for sink in self.sinks:
                await sink.write(item)
            now = time.perf_counter()
            hop.frames_out += 1
            hop.record(now - start)
            hop.bytes += int(item.info.get("bytes", 0))
            item.info.setdefault("sink_ms", 1e3 * (now - start))
            self.stats.record_output(item, now)
            if self.on_item is not None:
                result = self.on_item(item)
                if asyncio.iscoroutine(result):
                    await result


__all__ = [
    "EOS",
    "HopStats",
    "Item",
    "Mailbox",
    "Pipeline",
    "PipelineError",
    "PipelineStats",
    "Sink",
    "SinkError",
    "Source",
    "SourceError",
    "SourceTimeoutError",
    "Stage",
    "Worker",
    "WorkerStage",
]
