"""Network exposure of the TCP sink on loopback: bind address, client limit, bounded per-client buffers, the
shared-secret token, and clients that send garbage, hang up, half-close or never speak."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from fractions import Fraction

import pytest

from streamcodec.bitstream import Packet, PacketType, StreamHeader, StreamReader
from streamcodec.pipeline import SourceError, TcpClientSource, TcpServerSink
from streamcodec.pipeline.core import Item
from streamcodec.pipeline.sinks import HELLO_LIMIT, open_packet_sink

HEADER = StreamHeader("EVCS", "evc-ss", bytes(16), coder_id=0x0101, width=64, height=48)


def packet(i: int, size: int = 200) -> Packet:
    return Packet(PacketType.KEY, i, 32000, bytes((i + j) % 251 for j in range(size)))


def item(p: Packet) -> Item:
    return Item(p, p.pts, p.pts, Fraction(1, 25))


def run(coroutine, timeout: float = 30.0):
    async def bounded():
        return await asyncio.wait_for(coroutine, timeout)

    return asyncio.run(bounded())


def connect(port: int, hello: bytes | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    if hello is not None:
        sock.sendall(hello)
    return sock


def read_to_end(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (a reset counts as the end)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


class Reader(threading.Thread):
    """A client reading its connection to the end in a thread, as a remote viewer would."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(daemon=True)
        self.sock, self.data = sock, b""
        self.start()

    def run(self) -> None:
        self.data = read_to_end(self.sock)

    def packets(self) -> list[Packet]:
        self.join(10)
        assert not self.is_alive(), "the server never closed the stream"
        with StreamReader(io.BytesIO(self.data)) as reader:
            got = list(reader)
            assert reader.complete
            return got


async def until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# -- bind address ----------------------------------------------------------------------------------------------


def test_tcp_sink_binds_loopback_unless_a_host_is_named(caplog: pytest.LogCaptureFixture) -> None:
    async def main():
        bound = {}
        for url in ("tcp://:0", "tcp://0.0.0.0:0"):
            sink = open_packet_sink(url, HEADER)
            await sink.open()
            bound[url] = sink._server.sockets[0].getsockname()[0]
            await sink.close()
        default = TcpServerSink(HEADER)
        await default.open()
        bound["default"] = default._server.sockets[0].getsockname()[0]
        await default.close()
        return bound

    with caplog.at_level(logging.WARNING, logger="streamcodec.pipeline"):
        bound = run(main())
    assert bound == {"tcp://:0": "127.0.0.1", "default": "127.0.0.1", "tcp://0.0.0.0:0": "0.0.0.0"}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "0.0.0.0" in warnings[0] and "without a token" in warnings[0]


# -- client limit ----------------------------------------------------------------------------------------------


def test_client_limit_closes_extra_connections_and_frees_slots() -> None:
    async def main():
        sink = TcpServerSink(HEADER, max_clients=2)
        await sink.open()
        first, second = connect(sink.port), connect(sink.port)
        await sink.wait_clients(2)
        third = connect(sink.port)
        extra = await asyncio.to_thread(read_to_end, third)
        refused_source = TcpClientSource(sink.url, open_timeout=2, read_timeout=2)
        with pytest.raises(SourceError, match="too many clients"):
            await refused_source.open()
        first.close()  # a slot frees: the next client is served
        await until(lambda: sink.clients == 1)
        fourth = connect(sink.port)
        await sink.wait_clients(2)
        readers = [Reader(second), Reader(fourth)]
        for i in range(3):
            await sink.write(item(packet(i)))
        await sink.close()
        return extra, sink, [r.packets() for r in readers]

    extra, sink, got = run(main())
    assert extra == b"" and sink.refused == 2 and sink.clients_total == 3
    assert got == [[packet(i) for i in range(3)]] * 2


# -- bounded per-client buffers --------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["cut", "skip"])
def test_a_client_that_never_reads_is_bounded_and_never_stalls_the_others(policy: str) -> None:
    bound, size, count = 64 << 10, 16 << 10, 300

    async def main():
        sink = TcpServerSink(HEADER, max_buffer=bound, slow_client=policy)
        await sink.open()
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", sink.port))  # never reads
        viewer_socket = connect(sink.port)
        viewer = Reader(viewer_socket)
        await sink.wait_clients(2)
        me = "127.0.0.1:%d" % viewer_socket.getsockname()[1]
        slowest, largest = 0.0, 0
        for i in range(count):
            started = time.perf_counter()
            await sink.write(item(packet(i, size)))
            slowest = max(slowest, time.perf_counter() - started)
            largest = max(largest, *(c.writer.transport.get_write_buffer_size() for c in sink._clients))
            # the viewer keeps up (however loaded the machine running this): it never exceeds the bound
            await until(lambda: all(c.writer.transport.get_write_buffer_size() == 0 for c in sink._clients
                                    if c.address == me))  # fmt: skip
        await sink.close()
        stalled.close()
        return sink, viewer.packets(), slowest, largest

    sink, got, slowest, largest = run(main(), timeout=60)
    assert got == [packet(i, size) for i in range(count)]  # the reading client lost nothing
    assert slowest < 0.5 and largest <= bound + size + 64
    if policy == "cut":
        assert sink.cut == 1 and sink.skipped == 0
    else:
        assert sink.cut == 0 and sink.skipped > 0  # (the kernel's socket buffers took the packets before those)


# -- token -----------------------------------------------------------------------------------------------------


def test_token_admits_only_clients_that_send_it_first() -> None:
    token = "s3cret-ẞ"

    async def main():
        sink = TcpServerSink(HEADER, token=token, hello_timeout=0.5)
        await sink.open()
        good = TcpClientSource(sink.url, token=token, open_timeout=2, read_timeout=5)
        await good.open()
        refused = {}
        for name, hello in [
            ("wrong", b"s3cret\n"),
            ("prefix", token.encode() + b"x\n"),
            ("silent", None),
            ("huge line", b"x" * (4 * HELLO_LIMIT)),
            ("half-closed", b""),
        ]:
            sock = connect(sink.port, hello)
            if name == "half-closed":
                sock.shutdown(socket.SHUT_WR)
            started = time.monotonic()
            refused[name] = (await asyncio.to_thread(read_to_end, sock), time.monotonic() - started)
            sock.close()
        for name, wrong in [("no token", None), ("wrong token", "guess")]:
            source = TcpClientSource(sink.url, token=wrong, open_timeout=2, read_timeout=5)
            with pytest.raises(SourceError, match="token"):
                await source.open()
        await sink.write(item(packet(0)))
        await sink.close()
        got = [(await good.read()).data, await good.read()]
        await good.close()
        return sink, refused, good.header, got

    sink, refused, header, got = run(main())
    assert header == HEADER and got == [packet(0), None]
    assert all(data == b"" for data, _ in refused.values()), "a refused client got stream bytes"
    assert refused["silent"][1] < 3.0  # closed after the hello timeout, not left open
    assert sink.refused == 7 and sink.clients_total == 1


def test_token_must_fit_one_hello_line() -> None:
    for bad in ("", "two\nlines", "x" * HELLO_LIMIT):
        with pytest.raises(ValueError, match="token"):
            TcpServerSink(HEADER, token=bad)


# -- malformed clients -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "t0k"])
def test_garbage_hangups_and_half_open_clients_do_not_disturb_the_server(token: str | None) -> None:
    hello = None if token is None else token.encode() + b"\n"

    def storm(port: int) -> None:
        rng = __import__("random").Random(7)
        for round_ in range(30):
            kind = round_ % 5
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if kind == 0:  # garbage, a lot of it
                try:
                    sock.sendall(rng.randbytes(256 << 10))
                except OSError:
                    pass
            elif kind == 1:  # hangs up at once with a reset
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif kind == 2:  # half-open: stops sending, keeps reading a bit
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(0.2)
                try:
                    sock.recv(100)
                except OSError:
                    pass
            elif kind == 3:  # a hello followed by garbage lines
                try:
                    sock.sendall((hello or b"") + b"\n".join(rng.randbytes(50) for _ in range(100)))
                except OSError:
                    pass
            sock.close()  # kind 4: connects and leaves

    async def main():
        sink = TcpServerSink(HEADER, token=token, hello_timeout=1.0, max_clients=4)
        await sink.open()
        viewer = Reader(connect(sink.port, hello))
        await sink.wait_clients(1)
        attack = threading.Thread(target=storm, args=(sink.port,), daemon=True)
        attack.start()
        i = 0
        while attack.is_alive() or i < 20:
            await sink.write(item(packet(i)))
            i += 1
            await asyncio.sleep(0.01)
        await until(lambda: sink.connections == 1)  # every other connection was closed
        await sink.close()
        return viewer.packets(), i

    got, sent = run(main(), timeout=60)
    assert got == [packet(i) for i in range(sent)]


# -- the command line --------------------------------------------------------------------------------------------


def test_cli_token_and_client_limit_end_to_end(tmp_path) -> None:
    port = _free_port()
    env = {**os.environ, "STREAMCODEC_TOKEN": ""}
    env.pop("STREAMCODEC_TOKEN")
    encoder = subprocess.Popen(
        [sys.executable, "-m", "streamcodec", "encode", "lavfi:testsrc=size=64x48:rate=25", f"tcp://127.0.0.1:{port}",
         "--frames", "6", "--threads", "1", "--token", "pass-1", "--max-clients", "1", "--wait-clients", "1"],
        env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    decode = [sys.executable, "-m", "streamcodec", "decode", f"tcp://127.0.0.1:{port}", "--threads", "1",
              "--open-timeout", "30"]  # fmt: skip
    try:
        _wait_listening(port, encoder)
        wrong = subprocess.run([*decode, str(tmp_path / "x.y4m"), "--token", "nope"], env=env, capture_output=True,
                               text=True, timeout=60)  # fmt: skip
        right = subprocess.run([*decode, str(tmp_path / "out.y4m")], env={**env, "STREAMCODEC_TOKEN": "pass-1"},
                               capture_output=True, text=True, timeout=120)  # fmt: skip
        assert encoder.wait(timeout=120) == 0, encoder.stderr.read()
    finally:
        encoder.kill()
        encoder.wait()
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr
    assert wrong.stderr.strip().count("\n") == 0 and "token" in wrong.stderr
    assert right.returncode == 0, right.stderr
    assert (tmp_path / "out.y4m").read_bytes().count(b"FRAME") == 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return  # this probe sent no token: the server closes it, which counts as nothing
        time.sleep(0.2)
    raise AssertionError("the encoder never listened")
