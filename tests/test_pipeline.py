"""The streaming pipeline with real components on loopback: files, a real RTSP server, a silent camera, TCP
clients, MPEG-TS, and signals sent to a real ``streamcodec encode`` process.

Frames are tiny (64x48) and few; torch runs one thread (the machines running this are small and shared).
"""

from __future__ import annotations

import asyncio
import math
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamcodec import bitstream
from streamcodec.codec.stream import FrameDecoder, FrameEncoder
from streamcodec.io import open_source as open_frames
from streamcodec.pipeline import (
    CallbackSink,
    DecodeStage,
    HopStats,
    Item,
    IteratorSink,
    IteratorSource,
    MediaSource,
    Pipeline,
    PipelineStats,
    ScvFileSink,
    ScvSource,
    Source,
    SourceTimeoutError,
    Stage,
    TcpClientSource,
    TcpServerSink,
    TsSink,
    TsSource,
    WorkerStage,
    encode_stages,
    open_source,
)
from streamcodec.ratecontrol import make_controller

W, H = 64, 48

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def warm_model(model):
    """The session model, its coding tables built once (threads of one test then share them)."""
    FrameEncoder(model, W, H, 32).encode(drawn(0), 0)
    return model


def drawn(i: int, width: int = W, height: int = H) -> np.ndarray:
    """A gradient with a bright square moving right."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([x * 255 // width, y * 255 // height, np.full_like(x, (40 * i) % 256)], axis=-1)
    image[8:20, (3 * i) % (width - 12) : (3 * i) % (width - 12) + 12] = 255
    return image.astype(np.uint8)


def write_video(path: Path, count: int, rate: int = 25, first_pts: int = 0) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "20"}
        for i in range(count):
            frame = av.VideoFrame.from_ndarray(drawn(i), format="rgb24")
            frame.pts = first_pts + i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def read_scv(path: Path) -> tuple[bitstream.StreamHeader, list[bitstream.Packet], bool]:
    with bitstream.open(path) as reader:
        packets = list(reader)
        return reader.header, packets, reader.complete


def run(coroutine, timeout: float = 60.0):
    async def bounded():
        return await asyncio.wait_for(coroutine, timeout)

    return asyncio.run(bounded())


async def encode_pipeline(source, model, sinks_for, **kwargs) -> tuple[Pipeline, FrameEncoder]:
    await source.open()
    encoder = FrameEncoder(model, source.width, source.height, 32, source.time_base, source.fps)
    return Pipeline(source, encode_stages(encoder), sinks_for(encoder.header), **kwargs), encoder


# -- files: every frame, back-pressure -------------------------------------------------------------------------


def test_file_source_encodes_every_frame_with_its_pts(tmp_path: Path, warm_model) -> None:
    video = write_video(tmp_path / "in.mp4", 12, first_pts=7)
    with open_frames(video) as reference:
        expected = [frame.pts for frame in reference]
    out = tmp_path / "out.scv"

    async def main():
        source = open_source(video)
        assert not source.live
        pipeline, _ = await encode_pipeline(source, warm_model, lambda header: [ScvFileSink(out, header)])
        return await pipeline.run()

    stats = run(main())
    header, packets, complete = read_scv(out)
    assert complete and len(packets) == 12 == stats.frames
    assert [p.pts for p in packets] == expected and expected == sorted(set(expected))
    assert stats.dropped == 0 and (header.width, header.height) == (W, H)
    decoder = FrameDecoder(warm_model, header)
    assert all(decoder.decode(p, i).shape == (H, W, 3) for i, p in enumerate(packets))


def test_slow_sink_applies_back_pressure_and_drops_nothing(tmp_path: Path, warm_model) -> None:
    video = write_video(tmp_path / "in.mp4", 10)
    seen: list[tuple[int, int]] = []  # (pts, frames the source had read when the sink got it)

    async def main():
        source = open_source(video)

        async def slow(item):
            seen.append((item.pts, pipeline.stats.source.frames_out))
            await asyncio.sleep(0.08)

        pipeline, _ = await encode_pipeline(source, warm_model, lambda header: [CallbackSink(slow)], queue_size=1)
        return await pipeline.run()

    stats = run(main())
    pts = [p for p, _ in seen]
    assert len(seen) == 10 and pts == sorted(pts) and stats.dropped == 0
    # With one-slot queues the reader may run ahead of the sink by at most: the frame in each queue (3), the one
    # in each encode stage (2) and the one being read. Without back-pressure it would have read all 10 at once.
    assert max(read - i for i, (_, read) in enumerate(seen)) <= 6
    assert stats.hops[1].queue_max <= 1 and stats.hops[2].queue_max <= 1


# -- overlap: frame t is arithmetic-coded while the networks take frame t+1 ------------------------------------


@pytest.mark.parametrize("rate_control", [None, "abr"])
def test_entropy_coding_overlaps_the_next_frames_networks_and_changes_no_byte(warm_model, monkeypatch, rate_control):
    count = 6
    frames = [drawn(i) for i in range(count)]

    def encoder():
        controller = make_controller(rate_control, fps=25, q=32, bitrate="60k") if rate_control else None
        return FrameEncoder(warm_model, W, H, 32, controller=controller)

    one_at_a_time = encoder()
    reference = [one_at_a_time.encode(frame, i)[0] for i, frame in enumerate(frames)]

    # Coding frame k waits until the networks have begun frame k+1 (its analysis): without the overlap this
    # deadlocks and every wait times out. With a rate controller the analysis still overlaps; the choice of q
    # for frame k+1 waits for frame k's real size.
    analysed = [threading.Event() for _ in range(count)]
    overlapped: list[bool] = []
    analyse, code_frame = warm_model.analyse, warm_model.code_frame

    def counting_analyse(x):
        analysed[next(i for i, e in enumerate(analysed) if not e.is_set())].set()
        return analyse(x)

    def waiting_code_frame(quantised):
        k = len(overlapped)
        overlapped.append(analysed[k + 1].wait(20) if k + 1 < count else True)
        return code_frame(quantised)

    monkeypatch.setattr(warm_model, "analyse", counting_analyse)
    monkeypatch.setattr(warm_model, "code_frame", waiting_code_frame)

    async def main():
        packets = []
        sink = CallbackSink(lambda item: packets.append(item.data))
        pipeline = Pipeline(IteratorSource(iter(frames), fps=25), encode_stages(encoder()), [sink])
        stats = await pipeline.run()
        return packets, stats

    packets, stats = run(main())
    assert overlapped == [True] * count
    assert [(p.pts, p.q_index, p.payload) for p in packets] == [(r.pts, r.q_index, r.payload) for r in reference]
    assert [hop.name for hop in stats.stages] == ["quantise", "entropy"]
    if rate_control:
        assert len({p.q_index for p in packets}) > 1  # the controller chose q frame by frame


def test_quantising_again_before_coding_under_rate_control_is_refused(warm_model) -> None:
    encoder = FrameEncoder(warm_model, W, H, 32, controller=make_controller("abr", fps=25, q=32, bitrate="60k"))
    encoder.code_timeout = 0.2
    first = encoder.quantise(drawn(0))
    with pytest.raises(RuntimeError, match="quantised but not coded"):
        encoder.quantise(drawn(1))  # the controller would choose without frame 0's real size
    packet, _ = encoder.code(first, 0)
    assert encoder.controller.last.real_bits == 8 * (bitstream.format.PACKET_HEADER_SIZE + len(packet.payload))
    encoder.code(encoder.quantise(drawn(1)), 1)  # in order again: fine


# -- frame threads: several intra frames through the networks at once ------------------------------------------


class Shuffled(WorkerStage):
    """Takes longer over earlier items: with several in flight, later ones finish first."""

    name = "shuffled"

    def __init__(self, threads: int, fail_at: int | None = None) -> None:
        super().__init__(threads)
        self.fail_at = fail_at

    async def process(self, item: Item) -> Item:
        return await self._call(self._work, item)

    def _work(self, item: Item) -> Item:
        time.sleep(0.02 * (3 - item.index % 3))
        if item.index == self.fail_at:
            raise RuntimeError(f"item {item.index} failed")
        return item


@pytest.mark.parametrize("threads", [1, 3])
def test_a_concurrent_stage_passes_results_on_in_order(threads: int) -> None:
    async def main(stage):
        out = []
        source = IteratorSource(iter([drawn(i) for i in range(9)]), fps=25)
        return await Pipeline(source, [stage], [CallbackSink(lambda item: out.append(item.index))]).run(), out

    stats, order = run(main(Shuffled(threads)))
    assert order == list(range(9)) and stats.stages[0].frames_out == 9
    with pytest.raises(RuntimeError, match="item 4 failed"):
        run(main(Shuffled(threads, fail_at=4)))


class Slow(Stage):
    name = "slow"

    async def process(self, item: Item) -> Item:
        await asyncio.sleep(0.2)
        return item


class StopAt(IteratorSource):
    """Calls ``pipeline.stop()`` as it returns frame ``at`` (None: the end of the input), as Ctrl-C would then."""

    def __init__(self, frames, at: int | None) -> None:
        super().__init__(frames, fps=25)
        self.at, self.reads, self.pipeline = at, 0, None

    async def read(self) -> Item | None:
        item = await super().read()
        if (item.index if item is not None else None) == self.at:
            asyncio.get_running_loop().call_soon(self.pipeline.stop)
        return item


@pytest.mark.parametrize("at", [None, 1])
def test_stop_codes_and_writes_every_frame_read_and_finishes(at: int | None) -> None:
    """Stop after the last frame was read (the source waiting for room for the end of the stream) or while the
    queues are full: every frame read is still written and the sinks are closed."""

    async def main():
        written, closed = [], []
        sink = CallbackSink(lambda item: written.append(item.index))
        sink.close = lambda: closed.append(True) or asyncio.sleep(0)  # type: ignore[method-assign]
        source = StopAt(iter([drawn(i) for i in range(4)]), at)
        pipeline = Pipeline(source, [Slow()], [sink], queue_size=1)
        source.pipeline = pipeline
        return await pipeline.run(), written, closed

    stats, written, closed = run(main(), timeout=20)
    assert written == list(range(4 if at is None else at + 1)) and closed == [True]
    assert stats.frames == len(written)


def test_stop_interrupts_a_blocked_read() -> None:
    async def frames():
        yield drawn(0)
        await asyncio.Event().wait()  # a camera that went quiet
        yield drawn(1)

    async def main():
        written = []
        pipeline = Pipeline(IteratorSource(frames(), fps=25), [], [CallbackSink(lambda i: written.append(i.index))])
        asyncio.get_running_loop().call_later(0.3, pipeline.stop)
        return await pipeline.run(), written

    stats, written = run(main(), timeout=20)
    assert written == [0] and stats.frames == 1


def test_stop_while_a_tcp_sink_waits_for_clients_ends_the_run(warm_model) -> None:
    async def main():
        source = IteratorSource(iter([drawn(0)]), fps=25)
        encoder = FrameEncoder(warm_model, W, H, 32)
        server = TcpServerSink(encoder.header, port=0, wait_for_clients=1)
        pipeline = Pipeline(source, encode_stages(encoder), [server])
        asyncio.get_running_loop().call_later(0.3, pipeline.stop)
        stats = await pipeline.run()
        with pytest.raises(OSError):  # the listening socket is closed
            await asyncio.open_connection("127.0.0.1", server.port)
        return stats

    assert run(main(), timeout=20).frames == 0


def test_a_hop_whose_open_fails_is_closed_too() -> None:
    closed = []

    class Broken(CallbackSink):
        async def open(self) -> None:
            raise OSError("no room")

        async def close(self) -> None:
            closed.append(self.name)

    first = CallbackSink(lambda item: None)
    first.close = lambda: closed.append("first") or asyncio.sleep(0)  # type: ignore[method-assign]
    with pytest.raises(OSError, match="no room"):
        run(Pipeline(IteratorSource(iter([drawn(0)]), fps=25), [], [first, Broken(lambda item: None)]).run())
    assert closed == [Broken.name, "first"]


def test_options_an_input_cannot_honour_are_refused() -> None:
    import cv2

    with pytest.raises(ValueError, match="frames, scale: not for a list_iterator input"):
        open_source(iter([drawn(0)]), frames=3, scale=(32, 24))
    with pytest.raises(ValueError, match="realtime, scale: not for a VideoCapture input"):
        open_source(cv2.VideoCapture(), scale=(32, 24), realtime=True)
    assert isinstance(open_source(cv2.VideoCapture(), frames=3), Source)  # a capture stops after frames


def test_iterator_sink_bounds_what_waits_and_a_consumer_may_leave_early() -> None:
    async def main():
        sink = IteratorSink(maxsize=2)
        pipeline = Pipeline(IteratorSource(iter([drawn(i) for i in range(6)]), fps=25), [], [sink], queue_size=1)
        task = asyncio.create_task(pipeline.run())
        await asyncio.sleep(0.3)
        waiting = sink._queue.qsize()  # nobody iterates yet: back-pressure holds the rest upstream
        got = [item.index async for item in sink]
        await task
        # a consumer that stops after one item: the pipeline still ends (closing does not wait for room)
        early = IteratorSink(maxsize=1)
        run_task = asyncio.create_task(Pipeline(IteratorSource(iter([drawn(i) for i in range(6)]), fps=25), [],
                                                [early], queue_size=1).run())
        async for item in early:
            break
        await asyncio.sleep(0.3)  # the pipeline fills the sink's room and waits
        assert not run_task.done()
        run_task.cancel()
        stats = await asyncio.gather(run_task, return_exceptions=True)
        return waiting, got, item.index, stats

    waiting, got, first, stats = run(main(), timeout=20)
    assert waiting == 2 and got == list(range(6)) and first == 0
    assert isinstance(stats[0], asyncio.CancelledError)


@pytest.mark.parametrize(
    ("pts", "rate", "seconds"),
    [([0, 1, 2, 3], None, 0.16), ([0, 2, 3, 7], None, 0.32), ([0, 99], 25, 4.0), ([0, 99], None, 7.92),
     ([5], 25, 0.04), ([5], None, 0.0)],
)
def test_media_time_and_bitrate_count_drops_and_gaps_as_time(pts: list[int], rate: int | None, seconds: float) -> None:
    """A frame lasts 1/fps, or without a frame rate the shortest pts step; gaps count as the time they span."""
    stats = PipelineStats(HopStats("source"), [], HopStats("sink"), Fraction(1, 25), rate and Fraction(rate))
    for i, t in enumerate(pts):
        stats.sink.frames_out += 1
        stats.sink.bytes += 1000
        stats.record_output(Item(None, t, i, Fraction(1, 25), created=0.0), now=0.01 * (i + 1))
    assert stats.media_seconds == pytest.approx(seconds)
    assert stats.bitrate == (pytest.approx(8000 * len(pts) / seconds) if seconds else 0.0)
    assert stats.latency_p95_ms == pytest.approx(10.0 * math.ceil(0.95 * len(pts)))


def test_frame_threads_run_frames_at_once_and_change_no_byte(tmp_path: Path, warm_model, monkeypatch) -> None:
    count = 6
    frames = [drawn(i) for i in range(count)]
    one_at_a_time = FrameEncoder(warm_model, W, H, 32)
    reference = [one_at_a_time.encode(frame, i)[0] for i, frame in enumerate(frames)]
    decoder = FrameDecoder(warm_model, one_at_a_time.header)
    expected_images = [decoder.decode(p) for p in reference]

    # Frame 2k's networks (encoding) or decoding finish only once frame 2k+1's have begun: with one thread
    # each wait times out.
    def paired(method: str) -> list[bool]:
        started = [threading.Event() for _ in range(count)]
        together: list[bool] = []
        original = getattr(warm_model, method)

        def hooked(*args, **kwargs):
            k = next(i for i, e in enumerate(started) if not e.is_set())
            started[k].set()
            if k % 2 == 0:
                together.append(started[k + 1].wait(20))
            return original(*args, **kwargs)

        monkeypatch.setattr(warm_model, method, hooked)
        return together

    async def main(source, stages):
        out = []
        sink = CallbackSink(lambda item: out.append(item.data))
        await Pipeline(source, stages, [sink]).run()
        return out

    encoded_together = paired("quantise_frame")
    encoder = FrameEncoder(warm_model, W, H, 32)
    packets = run(main(IteratorSource(iter(frames), fps=25), encode_stages(encoder, frame_threads=2)))
    assert encoded_together == [True] * (count // 2)
    assert [(p.pts, p.payload) for p in packets] == [(r.pts, r.payload) for r in reference]

    with bitstream.open(tmp_path / "s.scv", "w", header=one_at_a_time.header) as writer:
        for packet in reference:
            writer.write(packet)
    decoded_together = paired("decompress")
    images = run(main(ScvSource(tmp_path / "s.scv"), [DecodeStage(decoder, frame_threads=2)]))
    assert decoded_together == [True] * (count // 2)
    assert all(np.array_equal(a, b) for a, b in zip(images, expected_images, strict=True))

    controlled = FrameEncoder(warm_model, W, H, 32, controller=make_controller("abr", fps=25, bitrate="60k"))
    with pytest.raises(ValueError, match="constant q"):
        encode_stages(controlled, frame_threads=2)


# -- live: drops, bounded latency ------------------------------------------------------------------------------


def test_live_source_with_slow_encoder_drops_and_keeps_latency_bounded(warm_model) -> None:
    produced = 60

    def camera():  # a 500 fps camera (several frames per ~15 ms encode, even on a loaded host): it never waits
        for i in range(produced):
            time.sleep(0.002)
            yield drawn(i)

    async def main():
        source = IteratorSource(camera(), fps=500, live=True)
        outputs = []
        pipeline, _ = await encode_pipeline(source, warm_model, lambda header: [CallbackSink(outputs.append)])
        assert pipeline.live
        return await pipeline.run(), outputs

    stats, outputs = run(main())
    encode_max = max(item.info["encode_ms"] for item in outputs) / 1e3
    assert stats.source.frames_out == produced
    assert stats.dropped > 0 and stats.frames + stats.dropped == produced
    assert [item.pts for item in outputs] == sorted({item.pts for item in outputs})
    # A frame waits at most for the frame being coded, then is coded itself: latency never builds up.
    assert stats.latency_max <= 2 * encode_max + 0.3, (stats.latency_max, encode_max)


# -- a real RTSP server, killed and restarted ------------------------------------------------------------------

def test_rtsp_source_reconnects_after_server_restart(tmp_path: Path, rtsp_server, warm_model) -> None:
    out = tmp_path / "rtsp.scv"
    marks: dict[str, int] = {}

    async def main():
        source = MediaSource(
            rtsp_server.url, open_timeout=5, read_timeout=3, reconnect_delay=(0.2, 1.0), reconnect_attempts=20
        )
        assert source.live and source.reconnect_enabled

        async def on_item(item):
            count = pipeline.stats.frames
            if count == 5:
                rtsp_server.kill()
                marks["killed"] = item.pts
                await asyncio.sleep(0.3)
                await asyncio.to_thread(rtsp_server.start)
            if source.reconnects and "back" not in marks:
                marks["back"] = count
            if "back" in marks and count >= marks["back"] + 5:
                pipeline.stop()

        pipeline, _ = await encode_pipeline(source, warm_model, lambda h: [ScvFileSink(out, h)], on_item=on_item)
        return await pipeline.run(), source

    stats, source = run(main(), timeout=45)
    header, packets, complete = read_scv(out)
    pts = [p.pts for p in packets]
    assert complete and stats.reconnects >= 1 and len(source.outages) >= 1
    assert len(packets) >= 10 and pts == sorted(set(pts))
    assert pts[marks["back"]] > marks["killed"]  # pts went on increasing across the reconnect
    decoder = FrameDecoder(warm_model, header)
    assert decoder.decode(packets[-1]).shape == (H, W, 3)


# -- a camera that accepts and sends nothing -------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts every connection and never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    listener.close()
    for conn in accepted:
        conn.close()


@pytest.mark.parametrize("scheme", ["rtsp", "tcp"])
def test_silent_camera_times_out_within_the_configured_time(silent_server: int, scheme: str) -> None:
    if scheme == "rtsp":
        source = MediaSource(f"rtsp://127.0.0.1:{silent_server}/cam", open_timeout=1.0, read_timeout=1.0)
    else:  # the decoding mirror's TCP client, waiting for a stream header that never comes
        source = TcpClientSource(f"tcp://127.0.0.1:{silent_server}", open_timeout=1.0, read_timeout=1.0)

    async def main():
        await Pipeline(source, [], [CallbackSink(lambda item: None)]).run()

    started = time.monotonic()
    with pytest.raises(SourceTimeoutError, match="timeout|within"):
        run(main(), timeout=20)
    assert 0.8 <= time.monotonic() - started <= 4.0


# -- TCP: clients joining at any time; MPEG-TS -----------------------------------------------------------------


def test_tcp_clients_decode_bit_exactly_what_the_file_sink_wrote(tmp_path: Path, warm_model) -> None:
    out = tmp_path / "ref.scv"
    count = 10

    async def main():
        may_go_on = asyncio.Event()

        async def frames():
            for i in range(count):
                yield drawn(i)
                if i == 5:
                    await may_go_on.wait()  # hold the stream until the late client has joined

        server: list[TcpServerSink] = []

        def sinks(header):
            server.append(TcpServerSink(header, port=0, wait_for_clients=1))
            return [ScvFileSink(out, header), server[0]]

        pipeline, _ = await encode_pipeline(IteratorSource(frames(), fps=10), warm_model, sinks)
        encoding = asyncio.create_task(pipeline.run())
        while not server[0].port:
            await asyncio.sleep(0.01)

        async def client():
            decoded: dict[int, np.ndarray] = {}
            source = TcpClientSource(server[0].url, open_timeout=5, read_timeout=10)
            await source.open()
            decoder = FrameDecoder(warm_model, source.header)
            sink = CallbackSink(lambda item: decoded.__setitem__(item.pts, item.data))
            await Pipeline(source, [DecodeStage(decoder)], [sink]).run()
            return decoded

        early = asyncio.create_task(client())
        while pipeline.stats.frames < 3:
            await asyncio.sleep(0.01)
        late = asyncio.create_task(client())
        await server[0].wait_clients(2)
        may_go_on.set()
        await encoding
        return await early, await late, server[0]

    early, late, server = run(main())
    header, packets, _ = read_scv(out)
    decoder = FrameDecoder(warm_model, header)
    reference = {p.pts: decoder.decode(p) for p in packets}
    assert len(reference) == count and server.clients_total == 2
    assert sorted(early) == sorted(reference)
    assert 0 < len(late) < count and min(late) > min(reference) and max(late) == max(reference)
    for got in (early, late):
        assert all(np.array_equal(image, reference[pts]) for pts, image in got.items())


def test_mpegts_carries_the_same_packets(tmp_path: Path, warm_model) -> None:
    ts, scv = tmp_path / "out.ts", tmp_path / "out.scv"

    async def encode():
        source = IteratorSource((drawn(i) for i in range(4)), fps=10)
        sinks = lambda h: [TsSink(ts, h, header_every=0.2), ScvFileSink(scv, h)]  # noqa: E731
        pipeline, _ = await encode_pipeline(source, warm_model, sinks)
        await pipeline.run()

    async def demux():
        got = []
        source = TsSource(ts)
        await Pipeline(source, [], [CallbackSink(lambda item: got.append(item.data))]).run()
        return got, source.complete

    run(encode())
    packets, complete = run(demux())
    assert complete and packets == read_scv(scv)[1]


def test_mpegts_file_holds_every_packet_before_close(tmp_path: Path, warm_model) -> None:
    """Each packet reaches the file at once (an encoder killed mid-stream leaves it); closing twice is fine."""
    ts = tmp_path / "live.ts"

    async def main():
        encoder = FrameEncoder(warm_model, W, H, 32)
        sink = TsSink(ts, encoder.header)
        await sink.open()
        sizes = []
        for i in range(3):
            packet = encoder.encode(drawn(i), pts=i)[0]
            await sink.write(Item(packet, i, i, Fraction(1, 25)))
            sizes.append(ts.stat().st_size)
        await sink.close()
        await sink.close()
        return sizes

    sizes = run(main())
    assert sizes[0] > 0 and sizes[0] < sizes[1] < sizes[2] and all(size % 188 == 0 for size in sizes)


# -- signals to a real `streamcodec encode` --------------------------------------------------------------------


@pytest.mark.parametrize("signals", ["SIGINT", "SIGINT SIGINT", "SIGKILL"])
def test_interrupted_encoder_leaves_a_decodable_stream(tmp_path: Path, warm_model, signals: str) -> None:
    import signal as sig

    video = write_video(tmp_path / "in.mp4", 150)
    out = tmp_path / "out.scv"
    command = [sys.executable, "-m", "streamcodec", "encode", str(video), str(out), "--threads", "1", "--no-progress"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while (not out.exists() or out.stat().st_size < 2000) and process.poll() is None:
            assert time.monotonic() < deadline, "the encoder wrote nothing"
            time.sleep(0.05)
        before = read_scv(out)[1]
        for name in signals.split():
            process.send_signal(getattr(sig, name))
            time.sleep(0.05)
        err = process.communicate(timeout=30)[1]
    finally:
        process.kill()
    header, packets, complete = read_scv(out)
    assert len(before) <= len(packets) < 150
    if signals == "SIGINT":  # drained and finalised: EOS, index and footer, exit 0 with a summary
        assert process.returncode == 0 and complete and "frames" in err, err
    elif signals == "SIGINT SIGINT":
        assert process.returncode == 130, err
    else:
        assert process.returncode == -sig.SIGKILL and not complete
    decoder = FrameDecoder(warm_model, header)
    assert [p.pts for p in packets] == sorted({p.pts for p in packets})
    assert all(decoder.decode(p, i).shape == (H, W, 3) for i, p in enumerate(packets))
