"""The .scv container: round trips, pipes, seeking, and every kind of damage."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import random
import struct
import threading
import tracemalloc
from fractions import Fraction
from pathlib import Path

import crc32c
import pytest

from streamcodec import bitstream
from streamcodec.bitstream import (
    Damage,
    Packet,
    PacketType,
    StreamHeader,
    StreamReader,
    StreamWriter,
    writer,
)
from streamcodec.bitstream import format as fmt
from streamcodec.errors import (
    CorruptStreamError,
    FrameSizeError,
    StreamError,
    TruncatedStreamError,
    UnsupportedVersionError,
)

HEADER = StreamHeader("EVCS", "evc-ss", bytes(range(16)), coder_id=0x0102, width=64, height=48)
WIDTH_AT = 8 + 4 + 32 + 16 + 2  # magic, version, length; FourCC, model name, weights hash, coder id


def packets(count: int, size: int = 40) -> list[Packet]:
    return [
        Packet(PacketType.KEY, 10 * i, 100 + i, bytes((i * 37 + j * 11) % 256 for j in range(size)))
        for i in range(count)
    ]


def make_stream(
    count: int = 5, close: bool = True, size: int = 40, index_every: int = 1
) -> tuple[bytes, list[Packet], list[int]]:
    """A stream of ``count`` KEY packets (pts 0, 10, ...), with each packet's byte offset."""
    sink = io.BytesIO()
    out = StreamWriter(sink, HEADER, index_every=index_every)
    offsets = []
    for packet in packets(count, size):
        offsets.append(out.bytes_written)
        assert out.write(packet) == fmt.PACKET_HEADER_SIZE + len(packet.payload)
    if close:
        out.close()
    return sink.getvalue(), packets(count, size), offsets


def read_all(data: bytes, on_error: str = "resync") -> tuple[list[Packet], StreamReader]:
    reader = StreamReader(io.BytesIO(data), on_error=on_error)  # type: ignore[arg-type]
    return list(reader), reader


def reseal(header: bytes) -> bytes:
    """``header`` with its CRC recomputed, as a writer that meant those fields would write it."""
    return header[:-4] + struct.pack("<I", crc32c.crc32c(header[:-4]))


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x40]) + data[at + 1 :]


class Trickle(io.RawIOBase):
    """A non-seekable raw input that returns at most 7 bytes per read, as a slow socket does."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        count = min(7, len(buffer), len(self._data))
        buffer[:count] = self._data[:count]
        self._data = self._data[count:]
        return count


# --- round trips ---------------------------------------------------------------------------------------------


def test_round_trip_bytesio() -> None:
    data, sent, _ = make_stream()
    got, reader = read_all(data)
    assert reader.header == HEADER
    assert got == sent
    assert reader.complete and reader.damage == [] and reader.packets_read == 5


def test_round_trip_file_with_every_field(tmp_path: Path) -> None:
    header = StreamHeader(
        "EVCM",
        "evc-mm ü",
        b"\xaa" * 16,
        7,
        1920,
        1080,
        pad_multiple=32,
        color_format=bitstream.ColorFormat.BGR,
        time_base=Fraction(1, 90000),
        fps=Fraction(30000, 1001),
        flags=0xDEADBEEF,
    )
    sent = [Packet(PacketType.KEY_MASKED, -5, 65535, b"", flags=0x81), Packet(PacketType.KEY, 2**62, 0, b"x" * 70000)]
    path = tmp_path / "clip.scv"
    with bitstream.open(path, "w", header=header) as out:
        for packet in sent:
            out.write(packet)
    assert out.closed
    with bitstream.open(path) as stream:
        assert stream.header == header
        assert list(stream) == sent
        assert stream.complete
    assert stream.closed


def test_golden_layout() -> None:
    data, _, offsets = make_stream(2)
    assert fmt.HEADER_SIZE == 96 and fmt.PACKET_HEADER_SIZE == 28 and fmt.FOOTER_SIZE == 16
    assert data[:4] == b"SCV1" and struct.unpack_from("<HH", data, 4) == (1, 96)
    assert struct.unpack_from("<II", data, WIDTH_AT) == (64, 48)
    assert offsets == [96, 96 + 68]
    assert data[96:100] == b"\xffSCP" and struct.unpack_from("<BBqHI", data, 100) == (1, 0, 0, 100, 40)
    assert data[-8:-4] == b"SCVX"
    assert hashlib.md5(data).hexdigest() == "d48bb08d4bc927d9c55cba7b60e00e9c"


def test_reads_from_a_pipe_as_packets_arrive() -> None:
    read_fd, write_fd = os.pipe()
    first_seen = threading.Event()
    waited: list[bool] = []

    def produce() -> None:
        with os.fdopen(write_fd, "wb") as pipe, StreamWriter(pipe, HEADER) as out:
            sent = packets(4)
            out.write(sent[0])
            waited.append(first_seen.wait(5))  # the reader must get packet 0 before the writer goes on
            for packet in sent[1:]:
                out.write(packet)

    thread = threading.Thread(target=produce)
    thread.start()
    with os.fdopen(read_fd, "rb") as pipe, StreamReader(pipe) as reader:
        got = [next(reader)]
        first_seen.set()
        got += list(reader)
        with pytest.raises(io.UnsupportedOperation):
            reader.seek(0)
    thread.join()
    assert waited == [True]
    assert got == packets(4) and reader.complete


def test_reads_a_trickling_input_and_writes_through_short_writes() -> None:
    class ShortWrites(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, data: bytes) -> int:  # type: ignore[override]
            self.data += bytes(data[:5])
            return min(5, len(data))

    sink = ShortWrites()
    with StreamWriter(sink, HEADER) as out:
        for packet in packets(3):
            out.write(packet)
    data, _, _ = make_stream(3)
    assert bytes(sink.data) == data
    reader = StreamReader(Trickle(data))
    assert list(reader) == packets(3) and reader.complete


def test_plain_iteration_never_seeks() -> None:
    class NoSeek(io.BytesIO):
        def seek(self, *args: int) -> int:
            raise AssertionError("seek during iteration")

    data, sent, _ = make_stream()
    assert list(StreamReader(NoSeek(data))) == sent


# --- seeking -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("target", "expected"), [(35, 30), (-5, 0), (0, 0), (40, 40), (1000, 90)])
def test_seek_with_index(target: int, expected: int) -> None:
    data, _, _ = make_stream(10)
    reader = StreamReader(io.BytesIO(data))
    list(reader)
    reader.seek(target)
    assert next(reader).pts == expected
    assert [p.pts for p in reader] == list(range(expected + 10, 100, 10))


def test_index_read_mid_iteration_leaves_iteration_in_place() -> None:
    data, _, offsets = make_stream(10)
    reader = StreamReader(io.BytesIO(data))
    assert [next(reader).pts for _ in range(3)] == [0, 10, 20]
    assert reader.index == [(10 * i, offset) for i, offset in enumerate(offsets)]
    assert [p.pts for p in reader] == list(range(30, 100, 10)) and reader.complete


def test_seek_with_sparse_index() -> None:
    data, _, _ = make_stream(10, index_every=3)
    reader = StreamReader(io.BytesIO(data))
    reader.seek(55)
    assert next(reader).pts == 30


def test_seek_in_a_stream_after_other_bytes() -> None:
    data, _, _ = make_stream(10)
    file = io.BytesIO(b"prefix" + data)
    file.seek(6)
    reader = StreamReader(file)
    reader.seek(75)
    assert [p.pts for p in reader] == [70, 80, 90]


@pytest.mark.parametrize("damage", ["cut", "footer"])
def test_seek_without_valid_footer_scans(damage: str) -> None:
    data, _, offsets = make_stream(10)
    data = data[: offsets[7]] if damage == "cut" else flip(data, len(data) - 1)
    reader = StreamReader(io.BytesIO(data))
    reader.seek(35)
    assert [p.pts for p in reader] == ([30, 40, 50, 60] if damage == "cut" else [30, 40, 50, 60, 70, 80, 90])


def test_seek_in_a_scanned_stream_with_packets_out_of_order() -> None:
    data, _, offsets = make_stream(7, close=False)  # no footer: the index is scanned
    stray = data[offsets[6] :]  # the packet of pts 60 again, after pts 30
    reader = StreamReader(io.BytesIO(data[: offsets[4]] + stray + data[offsets[4] :]))
    reader.seek(45)
    assert [p.pts for p in reader] == [40, 50, 60]


def test_index_is_thinned_to_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "_MAX_INDEX_ENTRIES", 4)
    data, _, offsets = make_stream(10)
    index_offset = fmt.unpack_footer(data[-16:])
    head = fmt.unpack_packet_head(data[index_offset : index_offset + 28])
    index = fmt.unpack_index(data[index_offset + 28 : index_offset + 28 + head.length])
    assert index == [(0, offsets[0]), (40, offsets[4]), (80, offsets[8])]


# --- damage --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [0, 3, 7, 50, 95])
def test_truncated_header(length: int) -> None:
    data, _, _ = make_stream()
    with pytest.raises(TruncatedStreamError):
        StreamReader(io.BytesIO(data[:length]))


def test_truncated_last_packet() -> None:
    data, sent, offsets = make_stream(5, close=False)
    cut = data[:-10]
    with pytest.raises(TruncatedStreamError, match=f"at byte {offsets[4]} .*pts 30"):
        read_all(cut, "raise")
    got, reader = read_all(cut)
    assert got == sent[:4] and not reader.complete
    assert reader.damage == [Damage(offsets[4], len(cut), 30, "stream ends inside a packet payload")]


def test_flipped_payload_byte_in_the_middle() -> None:
    data, sent, offsets = make_stream(5)
    bad = flip(data, offsets[2] + 28 + 5)
    got, reader = read_all(bad)
    assert got == sent[:2] + sent[3:] and reader.complete
    assert reader.damage == [Damage(offsets[2], offsets[3], 10, "payload CRC mismatch")]
    reader.seek(0)
    assert list(reader) == got and len(reader.damage) == 1
    stream = StreamReader(io.BytesIO(bad), on_error="raise")
    assert [next(stream), next(stream)] == sent[:2]
    with pytest.raises(CorruptStreamError, match=f"payload CRC mismatch at byte {offsets[2]} .*pts 10"):
        next(stream)


@pytest.mark.parametrize(("at", "reason"), [(0, "bad sync word"), (10, "packet header CRC mismatch")])
def test_damaged_packet_header(at: int, reason: str) -> None:
    data, sent, offsets = make_stream(5)
    got, reader = read_all(flip(data, offsets[0] + at))
    assert got == sent[1:]
    assert reader.damage == [Damage(offsets[0], offsets[1], None, reason)]


def test_garbage_between_packets_is_skipped() -> None:
    data, sent, offsets = make_stream(3)
    junk = b"\xff\xffSC junk \xffSCP"  # the last four bytes look like a sync word, but no packet header follows
    got, reader = read_all(data[: offsets[1]] + junk + data[offsets[1] :])
    assert got == sent
    assert reader.damage == [Damage(offsets[1], offsets[1] + len(junk), 0, "bad sync word")]


def test_unknown_packet_type_is_skipped() -> None:
    data, sent, offsets = make_stream(2)
    head = struct.pack("<4sBBqHII", fmt.SYNC, 99, 0, 5, 0, 3, crc32c.crc32c(b"new"))
    future = head + struct.pack("<I", crc32c.crc32c(head)) + b"new"
    got, reader = read_all(data[: offsets[1]] + future + data[offsets[1] :])
    assert got == sent and reader.damage == []
    # damage right after a skipped packet: the damaged range starts at the damaged packet, not the skipped one
    bad = data[: offsets[1]] + future + flip(data, offsets[1] + 10)[offsets[1] :]
    got, reader = read_all(bad)
    start = offsets[1] + len(future)
    (damage,) = reader.damage
    assert got == sent[:1] and damage.offset_start == start and damage.reason == "packet header CRC mismatch"


@pytest.mark.parametrize("at", [0, 20, 60, 95])
def test_damaged_header_raises(at: int) -> None:
    data, _, _ = make_stream()
    for on_error in ("raise", "resync"):
        with pytest.raises(CorruptStreamError):
            StreamReader(io.BytesIO(flip(data, at)), on_error=on_error)  # type: ignore[arg-type]


def test_unknown_version() -> None:
    data, _, _ = make_stream()
    newer = reseal(data[:4] + struct.pack("<H", 2) + data[6:96]) + data[96:]
    with pytest.raises(UnsupportedVersionError, match="version 2"):
        StreamReader(io.BytesIO(newer))


def test_longer_header_of_a_later_revision_is_read() -> None:
    data, sent, _ = make_stream()
    longer = reseal(data[:6] + struct.pack("<H", 104) + data[8:92] + b"newfield" + data[92:96])
    got, reader = read_all(longer + data[96:])
    assert reader.header == HEADER and got == sent


def test_huge_frame_size_fails_fast() -> None:
    data, _, _ = make_stream()
    huge = reseal(data[:WIDTH_AT] + struct.pack("<II", 100_000, 100_000) + data[WIDTH_AT + 8 : 96]) + data[96:]
    tracemalloc.start()
    try:
        with pytest.raises(FrameSizeError, match="100000"):
            StreamReader(io.BytesIO(huge))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.parametrize("garbage", [b"hello, this is not a video stream" * 5, b"\x89PNG\r\n\x1a\n" + bytes(200)])
def test_garbage_input(garbage: bytes) -> None:
    with pytest.raises(CorruptStreamError, match="not an SCV stream"):
        StreamReader(io.BytesIO(garbage))


def test_random_mutations_only_raise_stream_errors_and_end() -> None:
    data, sent, _ = make_stream(6, size=20)
    rng = random.Random(1234)
    mutants = []
    for _ in range(200):
        mutant = bytearray(data)
        if rng.random() < 0.3:
            del mutant[rng.randrange(len(mutant)) :]
        for _ in range(rng.randint(1, 3)):
            if mutant:
                mutant[rng.randrange(len(mutant))] ^= 1 << rng.randrange(8)
        mutants.append(bytes(mutant))
    failures: list[str] = []

    def check_all() -> None:
        for number, mutant in enumerate(mutants):
            try:
                got: list[Packet] = []
                with contextlib.suppress(StreamError):
                    for packet in StreamReader(io.BytesIO(mutant), on_error="raise"):
                        got.append(packet)
                if got != sent[: len(got)]:
                    failures.append(f"{number}: raise mode returned a damaged packet")
                try:
                    got, reader = read_all(mutant)
                except StreamError:  # header damage raises in both modes
                    continue
                if any(packet not in sent for packet in got) or any(
                    not 0 <= d.offset_start < d.offset_end <= len(mutant) for d in reader.damage
                ):
                    failures.append(f"{number}: resync returned a damaged packet or a bad range")
            except Exception as exc:  # the test is that nothing else escapes
                failures.append(f"{number}: {exc!r}")

    thread = threading.Thread(target=check_all, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "reader hung on a mutated stream"
    assert failures == []


# --- writer lifecycle, late join, validation -----------------------------------------------------------------


def test_writer_close_is_idempotent() -> None:
    sink = io.BytesIO()
    out = StreamWriter(sink, HEADER)
    out.write(packets(1)[0])
    out.close()
    closed_once = sink.getvalue()
    out.close()
    assert sink.getvalue() == closed_once and not sink.closed
    with pytest.raises(ValueError, match="closed"):
        out.write(packets(2)[1])


def test_killed_writer_leaves_a_readable_stream(tmp_path: Path) -> None:
    path = tmp_path / "live.scv"
    out = StreamWriter(path, HEADER)
    for packet in packets(3):
        out.write(packet)
    got, reader = read_all(path.read_bytes())  # the writer is still open: never closed, as if killed
    assert got == packets(3) and not reader.complete and reader.damage == []
    out.close()


def test_late_joiner_starts_at_a_header_repeat() -> None:
    sink = io.BytesIO()
    with StreamWriter(sink, HEADER) as out:
        sent = packets(3)
        out.write(sent[0])
        join_at = out.bytes_written
        out.repeat_header()
        out.write(sent[1])
        out.write(sent[2])
    data = sink.getvalue()
    assert read_all(data)[0] == sent  # HEADER_REPEAT is consumed, not returned
    got, reader = read_all(data[join_at:])
    assert reader.header == HEADER and got == sent[1:] and reader.complete


def test_writer_rejects_bad_packets() -> None:
    out = StreamWriter(io.BytesIO(), HEADER)
    out.write(Packet(PacketType.KEY, 5, 0, b"a"))
    with pytest.raises(ValueError, match="does not follow"):
        out.write(Packet(PacketType.KEY, 5, 0, b"b"))
    with pytest.raises(ValueError, match="EOS"):
        out.write(Packet(PacketType.EOS, 6, 0, b""))


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"width": 0}, FrameSizeError),
        ({"height": 16385}, FrameSizeError),
        ({"model_name": "m" * 33}, ValueError),
        ({"weights_hash": bytes(15)}, ValueError),
        ({"codec_id": "EVC"}, ValueError),
        ({"coder_id": 1 << 16}, ValueError),
        ({"time_base": Fraction(0)}, ValueError),
    ],
)
def test_header_validation(change: dict[str, object], error: type[Exception]) -> None:
    fields = {
        "codec_id": "EVCS",
        "model_name": "evc-ss",
        "weights_hash": bytes(16),
        "coder_id": 1,
        "width": 64,
        "height": 48,
        **change,
    }
    with pytest.raises(error):
        StreamHeader(**fields)  # type: ignore[arg-type]


def test_packet_validation() -> None:
    with pytest.raises(ValueError):
        Packet(PacketType.KEY, 0, 1 << 16, b"")
    with pytest.raises(ValueError):
        Packet(9, 0, 0, b"")  # type: ignore[arg-type]


def test_open_modes() -> None:
    with pytest.raises(ValueError, match="needs a header"):
        bitstream.open(io.BytesIO(), "w")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="mode"):
        bitstream.open(io.BytesIO(), "a")  # type: ignore[call-overload]
    with pytest.raises(ValueError, match="on_error"):
        bitstream.open(io.BytesIO(make_stream()[0]), on_error="ignore")  # type: ignore[arg-type]
    with bitstream.open(io.BytesIO(make_stream()[0]), on_error="raise") as stream:
        assert isinstance(stream, StreamReader) and len(list(stream)) == 5
