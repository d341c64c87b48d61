"""Fuzzing of the ``.scv`` reader and the frame decoder with mutated real streams.

A short stream is coded with the shipped model at a tiny size; each case mutates it (bit flips, truncation,
inserted, deleted and copied bytes, header and packet fields set to extremes with their CRCs fixed so that the
change reaches the code behind the checks, crafted frame payloads, index and footer) and runs the reader on it
twice (from a file and through small reads, as from a pipe), a seek, and the decoder on every packet returned.

Cases run in worker processes: the parent bounds each case in time and the worker bounds its own address space
(``RLIMIT_AS``), both derived from the frame size the case's header declares (itself bounded by the format), so
a hang or a runaway allocation is caught and reported instead of taking the machine down. Outcomes:

* ``ok``, ``stream-error``: expected (the only exceptions allowed are :class:`~streamcodec.StreamError`\\ s);
* ``crash`` (another exception, or the worker died), ``hang`` (past the time bound), ``over-memory`` (an
  allocation past the bound), ``lost`` (an intact packet before or after the damage was not returned) and
  ``mismatch`` (reading through small reads returned other packets than reading the file): bugs.

Hand-written rather than atheris (needs instrumented native builds) or hypothesis (one example at a time, no
process isolation): the mutations know the container's layout, so they get past its CRCs, which blind byte
mutation would almost never do. Case ``n`` of seed ``s`` is always the same mutation (``--start n --cases 1``
reproduces it).
"""

from __future__ import annotations

import io
import multiprocessing
import random
import re
import resource
import struct
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from .bitstream import Packet, PacketType, StreamHeader, StreamReader, StreamWriter
from .bitstream import format as fmt
from .errors import StreamError

#: The stream each case mutates: frames of this size, coded with the shipped model.
FRAME_SIZE = (64, 48)
FRAMES = 4
#: Per-case bounds: a base plus a cost per padded pixel the header declares (decoding measured at ~270 bytes and
#: ~12 microseconds per padded pixel on a 2-core CPU, 1024x1024 to 2048x2048).
BASE_SECONDS = 20.0
SECONDS_PER_PIXEL = 40e-6
BASE_MEMORY = 256 << 20
MEMORY_PER_PIXEL = 1024
STATUSES = ("ok", "stream-error", "crash", "hang", "over-memory", "lost", "mismatch")
BUGS = frozenset(STATUSES[2:])
#: Integers a field is set to: its type's edges and the values around them.
_EDGES = (0, 1, 2, 3, 63, 64, 65, 255, 256, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**63 - 1, 2**64 - 1)
_HEADER_FIELDS = (
    "magic", "version", "header_length", "codec_id", "model_name", "weights_hash", "coder_id", "width", "height",
    "pad_multiple", "color_format", "tb_num", "tb_den", "fps_num", "fps_den", "flags",
)  # fmt: skip
_PACKET_FIELDS = ("sync", "type", "flags", "pts", "q_index", "length", "payload_crc")


def _slots(layout: str, base: int = 0) -> list[tuple[int, str]]:
    """(offset, struct code) of each field of a little-endian struct layout such as ``"<4sHH"``."""
    slots, offset = [], base
    for count, code in re.findall(r"(\d*)([a-zA-Z])", layout.lstrip("<")):
        slots.append((offset, count + code))
        offset += struct.calcsize("<" + count + code)
    return slots


HEADER_SLOTS = dict(zip(_HEADER_FIELDS, _slots(fmt._HEADER_PREFIX.format) + _slots(
    fmt._HEADER_FIELDS.format, fmt.HEADER_PREFIX_SIZE)))  # fmt: skip
PACKET_SLOTS = dict(zip(_PACKET_FIELDS, _slots(fmt._PACKET_HEAD.format)))


def case_bounds(width: int, height: int) -> tuple[float, int]:
    """(seconds, bytes) a case whose header declares ``width`` x ``height`` may take."""
    from .codec.evc import PAD_MULTIPLE

    pixels = -(-max(width, 1) // PAD_MULTIPLE) * PAD_MULTIPLE * -(-max(height, 1) // PAD_MULTIPLE) * PAD_MULTIPLE
    return BASE_SECONDS + SECONDS_PER_PIXEL * pixels, BASE_MEMORY + MEMORY_PER_PIXEL * pixels


def sample_stream(model: Any, frames: int = FRAMES, size: tuple[int, int] = FRAME_SIZE) -> bytes:
    """A closed ``.scv`` stream of ``frames`` synthetic frames coded with ``model`` at qp 32."""
    from .bench import synthetic_frame
    from .codec.stream import FrameEncoder

    encoder = FrameEncoder(model, *size, 32)
    out = io.BytesIO()
    with StreamWriter(out, encoder.header) as writer:
        for pts in range(frames):
            writer.write(encoder.encode(synthetic_frame(*size, seed=pts), pts)[0])
        writer.close()
        return out.getvalue()


@dataclass(frozen=True)
class Span:
    """A packet of the clean stream: its byte range and type."""

    start: int
    end: int
    type: int


def layout(data: bytes) -> tuple[int, list[Span]]:
    """The header's size and every packet of a clean stream (the footer follows the last)."""
    offset = fmt.header_size(data[: fmt.HEADER_PREFIX_SIZE])
    header_end, spans = offset, []
    while offset + fmt.PACKET_HEADER_SIZE <= len(data) and data[offset : offset + 4] == fmt.SYNC:
        head = fmt.unpack_packet_head(data[offset : offset + fmt.PACKET_HEADER_SIZE])
        end = offset + fmt.PACKET_HEADER_SIZE + head.length
        spans.append(Span(offset, end, head.type))
        offset = end
    return header_end, spans


@dataclass
class Case:
    """One mutated stream; ``damage`` is the ``[start, end)`` range of clean bytes it touched."""

    number: int
    kind: str
    data: bytes
    damage: tuple[int, int]
    detail: str = ""
    ends_data: bool = False  # a valid EOS or INDEX was made: packets after it are legitimately not read


class Mutator:
    """Makes case ``n`` of a seed from a clean stream, always the same way."""

    def __init__(self, clean: bytes, seed: int) -> None:
        self.clean = clean
        self.seed = seed
        self.header_end, self.spans = layout(clean)
        self.data_spans = [s for s in self.spans if s.type in (PacketType.KEY, PacketType.KEY_MASKED)]
        self.kinds: list[tuple[str, Callable[[random.Random, int], Case]]] = [
            ("bitflip", self._bitflip), ("truncate", self._truncate), ("insert", self._insert),
            ("delete", self._delete), ("overwrite", self._overwrite), ("copy", self._copy),
            ("duplicate", self._duplicate), ("header-field", self._header_field),
            ("header-repeat", self._header_repeat),
            ("packet-field", self._packet_field), ("payload", self._payload), ("payload", self._payload),
            ("trailer", self._trailer),
        ]  # fmt: skip

    def case(self, number: int) -> Case:
        """Make case ``number``: the mutation kinds taken in turn, always the same case for a seed and number."""
        rng = random.Random(f"{self.seed}:{number}")
        kind, make = self.kinds[number % len(self.kinds)]
        case = make(rng, number // len(self.kinds))
        case.number, case.kind = number, kind
        return case

    def expected(self, case: Case) -> list[int]:
        """Indices of the clean data packets that the damage left intact and the reader must still return."""
        start, end = case.damage
        if start < self.header_end:
            return []
        keep = []
        for i, span in enumerate(self.data_spans):
            touched = span.start < end and start < span.end if end > start else span.start < start < span.end
            after = span.end > start
            if not touched and not (case.ends_data and after):
                keep.append(i)
        return keep

    # -- mutations: each returns the bytes and the clean range it touched ------------------------------------

    def _bitflip(self, rng: random.Random, _: int) -> Case:
        data = bytearray(self.clean)
        where = [rng.randrange(len(data)) for _ in range(rng.randint(1, 8))]
        for i in where:
            data[i] ^= 1 << rng.randrange(8)
        return Case(0, "", bytes(data), (min(where), max(where) + 1), f"bits at {sorted(where)}")

    def _truncate(self, _: random.Random, sweep: int) -> Case:
        cut = sweep % (len(self.clean) + 1)  # successive cases of this kind walk every offset
        return Case(0, "", self.clean[:cut], (cut, len(self.clean)), f"cut at {cut}")

    def _insert(self, rng: random.Random, _: int) -> Case:
        at = rng.randrange(len(self.clean) + 1)
        junk = rng.choice([fmt.SYNC, fmt.MAGIC, b"\xff", b""]) + rng.randbytes(rng.randint(0, 64))
        return Case(0, "", self.clean[:at] + junk + self.clean[at:], (at, at), f"{len(junk)} bytes at {at}")

    def _delete(self, rng: random.Random, _: int) -> Case:
        at = rng.randrange(len(self.clean))
        end = min(len(self.clean), at + rng.choice([1, 2, 4, rng.randint(1, 200)]))
        return Case(0, "", self.clean[:at] + self.clean[end:], (at, end), f"bytes {at}-{end} deleted")

    def _overwrite(self, rng: random.Random, _: int) -> Case:
        at = rng.randrange(len(self.clean))
        junk = rng.choice([b"\x00", b"\xff"]) * rng.randint(1, 64) if rng.random() < 0.3 else rng.randbytes(64)
        end = min(len(self.clean), at + len(junk))
        return Case(0, "", self.clean[:at] + junk[: end - at] + self.clean[end:], (at, end), f"bytes {at}-{end}")

    def _copy(self, rng: random.Random, _: int) -> Case:
        """Bytes of the data region copied elsewhere into it (may hold whole packets: extra, valid ones)."""
        low, high = self.data_spans[0].start, self.data_spans[-1].end
        a = rng.randrange(low, high)
        b = min(high, a + rng.randint(1, high - low))
        at = rng.randrange(low, high + 1)
        return Case(0, "", self.clean[:at] + self.clean[a:b] + self.clean[at:], (at, at), f"{a}-{b} copied to {at}")

    def _duplicate(self, rng: random.Random, _: int) -> Case:
        span = rng.choice(self.data_spans)
        at = rng.choice([s.start for s in self.spans] + [self.spans[-1].end])
        copy = self.clean[span.start : span.end]
        return Case(0, "", self.clean[:at] + copy + self.clean[at:], (at, at), f"packet at {span.start} to {at}")

    def _header_field(self, rng: random.Random, _: int) -> Case:
        name = rng.choice(_HEADER_FIELDS)
        offset, code = HEADER_SLOTS[name]
        head = bytearray(self.clean[: self.header_end])
        value = _extreme(rng, code)
        struct.pack_into("<" + code, head, offset, value)
        if rng.random() < 0.9:  # a header whose CRC matches reaches the field checks behind it
            head[-4:] = crc32c_bytes(bytes(head[:-4]))
        return Case(0, "", bytes(head) + self.clean[self.header_end :], (0, self.header_end), f"{name}={value!r}")

    def _header_repeat(self, rng: random.Random, _: int) -> Case:
        """A HEADER_REPEAT packet between two packets: a copy with one field changed (CRC fixed), or junk."""
        head = bytearray(self.clean[: self.header_end])
        if rng.random() < 0.8:
            name = rng.choice(_HEADER_FIELDS)
            offset, code = HEADER_SLOTS[name]
            struct.pack_into("<" + code, head, offset, _extreme(rng, code))
            head[-4:] = crc32c_bytes(bytes(head[:-4]))
        else:
            name, head = "junk", bytearray(rng.randbytes(rng.randint(0, 200)))
        at = rng.choice([s.start for s in self.spans])
        repeat = fmt.pack_packet(Packet(PacketType.HEADER_REPEAT, 0, 0, bytes(head)))
        return Case(0, "", self.clean[:at] + repeat + self.clean[at:], (at, at), f"header repeat ({name}) at {at}")

    def _packet_field(self, rng: random.Random, _: int) -> Case:
        span = rng.choice(self.spans)
        name = rng.choice(_PACKET_FIELDS)
        offset, code = PACKET_SLOTS[name]
        data = bytearray(self.clean)
        value = _extreme(rng, code)
        struct.pack_into("<" + code, data, span.start + offset, value)
        body_end = span.start + fmt.PACKET_HEADER_SIZE - 4
        data[body_end : body_end + 4] = crc32c_bytes(bytes(data[span.start : body_end]))
        ends = name == "type" and value in (PacketType.EOS, PacketType.INDEX)
        return Case(0, "", bytes(data), (span.start, span.end), f"packet at {span.start}: {name}={value!r}", ends)

    def _payload(self, rng: random.Random, _: int) -> Case:
        """A data packet's frame payload changed and re-wrapped with valid CRCs: it reaches the decoder."""
        from .codec.evc import PAYLOAD_HEAD, PAYLOAD_VERSION

        span = rng.choice(self.data_spans)
        head = fmt.unpack_packet_head(self.clean[span.start : span.start + fmt.PACKET_HEADER_SIZE])
        payload = bytearray(self.clean[span.start + fmt.PACKET_HEADER_SIZE : span.end])
        how = rng.choice(["bits", "version", "substreams", "length", "cut", "extend", "empty", "other", "swap"])
        if how == "bits":
            for _ in range(rng.randint(1, 4)):
                payload[rng.randrange(len(payload))] ^= 1 << rng.randrange(8)
        elif how == "version":
            payload[0] = rng.choice([0, PAYLOAD_VERSION - 1, PAYLOAD_VERSION + 1, 255, rng.randrange(256)])
        elif how == "substreams":
            payload[PAYLOAD_HEAD.size - 1] = rng.choice([0, 2, 3, 127, 255, rng.randrange(256)])
        elif how == "length":
            slot = PAYLOAD_HEAD.size + 4 * rng.randrange(3)
            struct.pack_into("<I", payload, slot, _extreme(rng, "I"))
        elif how == "cut":
            del payload[rng.randrange(len(payload)) :]
        elif how == "extend":
            payload += rng.randbytes(rng.choice([1, 4, 8, 64]))
        elif how == "empty":
            payload = bytearray()
        elif how == "other":
            other = rng.choice(self.data_spans)
            payload = bytearray(self.clean[other.start + fmt.PACKET_HEADER_SIZE : other.end])
        else:  # the three parts of a one-sub-stream payload (z, step 1, step 2) exchanged, their lengths too
            lengths = list(struct.unpack_from("<3I", payload, PAYLOAD_HEAD.size))
            chunks, at = [], PAYLOAD_HEAD.size + 12
            for n in lengths:
                chunks.append(bytes(payload[at : at + n]))
                at += n
            order = rng.sample(range(3), 3)
            table = struct.pack("<3I", *(lengths[i] for i in order))
            payload = payload[: PAYLOAD_HEAD.size] + table + b"".join(chunks[i] for i in order)
        packet = fmt.pack_packet(Packet(PacketType(head.type), head.pts, head.q_index, bytes(payload), head.flags))
        data = self.clean[: span.start] + packet + self.clean[span.end :]
        return Case(0, "", data, (span.start, span.end), f"packet at {span.start}: payload {how}")

    def _trailer(self, rng: random.Random, _: int) -> Case:
        """The INDEX entries or the footer's offset set to extremes, with valid CRCs: what seeking trusts."""
        index = next(s for s in self.spans if s.type == PacketType.INDEX)
        head = fmt.unpack_packet_head(self.clean[index.start : index.start + fmt.PACKET_HEADER_SIZE])
        entries = fmt.unpack_index(self.clean[index.start + fmt.PACKET_HEADER_SIZE : index.end])
        if rng.random() < 0.5:
            i = rng.randrange(len(entries))
            pts, offset = entries[i]
            entries[i] = (_extreme(rng, "q"), offset) if rng.random() < 0.5 else (pts, _extreme(rng, "Q"))
            packet = fmt.pack_packet(Packet(PacketType.INDEX, head.pts, 0, fmt.pack_index(entries)))
            return Case(0, "", self.clean[: index.start] + packet + self.clean[index.end :], (index.start, index.end),
                        f"index entry {i}: {entries[i]}")  # fmt: skip
        target = rng.choice([_extreme(rng, "Q"), rng.randrange(len(self.clean)), *(s.start for s in self.spans)])
        footer = fmt.pack_footer(target)
        return Case(0, "", self.clean[: index.end] + footer, (index.end, len(self.clean)), f"footer -> {target}")


def crc32c_bytes(data: bytes) -> bytes:
    import crc32c

    return struct.pack("<I", crc32c.crc32c(data))


def _extreme(rng: random.Random, code: str) -> Any:
    """An extreme value for a field of struct ``code``: an edge of its type, a small or a random value."""
    if code.endswith("s"):
        size = int(code[:-1])
        return rng.choice([bytes(size), b"\xff" * size, rng.randbytes(size), b"\x80" + bytes(size - 1)])
    bits = 8 * struct.calcsize("<" + code)
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if code.islower() else (0, (1 << bits) - 1)
    edges = [v for v in _EDGES if low <= v <= high] + ([low, low + 1, -1] if low else [])
    return rng.choice([*edges, rng.randint(low, high), rng.randint(0, min(high, 130))])


# -- running cases ----------------------------------------------------------------------------------------------


class _SmallReads(io.RawIOBase):
    """The bytes of a case delivered a few at a time, not seekable: a pipe or socket."""

    def __init__(self, data: bytes, rng: random.Random) -> None:
        self._data, self._pos, self._rng = data, 0, rng

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        n = self._rng.choice([1, 3, 7, 28, 100, 4096])
        chunk = self._data[self._pos : self._pos + min(n, size if size >= 0 else n)]
        self._pos += len(chunk)
        return chunk

    read = read1


def _read(file: Any) -> tuple[list[Packet], list[StreamHeader], str | None]:
    """The data packets, the header in force at each (a HEADER_REPEAT may change it), and the StreamError (its
    class name) that ended the reading, if any."""
    packets, headers = [], []
    try:
        with StreamReader(file) as reader:
            for packet in reader:
                packets.append(packet)
                headers.append(reader.header)
    except StreamError as exc:
        return packets, headers, type(exc).__name__
    return packets, headers, None


class CaseRunner:
    """Runs cases in this process: reader (file and small reads), seek, decoder.

    Decoder results are cached by the packet and the header fields the decoder reads (coder, weights, frame
    size): the decoder is a pure function of them, so only packets and sizes not seen before are decoded.
    """

    def __init__(self, model: Any, clean: bytes, seed: int) -> None:
        self.model = model
        self.mutator = Mutator(clean, seed)
        self.clean_packets, (self.header, *_), _ = _read(io.BytesIO(clean))
        self._decoded: dict[tuple[Any, ...], str] = {}

    def declared_size(self, case: Case) -> tuple[int, int]:
        """The largest frame size the case's headers declare (the first, and any HEADER_REPEAT that parses)."""
        try:
            with StreamReader(io.BytesIO(case.data)) as reader:
                sizes = [(reader.header.width, reader.header.height)]
        except StreamError:  # nothing will be decoded
            sizes = [(self.header.width, self.header.height)]
        sizes += [(h.width, h.height) for h in _read(io.BytesIO(case.data))[1]]
        return max(sizes, key=lambda wh: wh[0] * wh[1])

    def run(self, case: Case) -> tuple[str, str]:
        """(status, detail) of one case; raises anything but a StreamError it meets (a crash)."""
        packets, headers, error = _read(io.BytesIO(case.data))
        rng = random.Random(case.number)
        piped = _read(_SmallReads(case.data, rng))
        if piped != (packets, headers, error):
            return "mismatch", f"small reads gave {len(piped[0])} packets ({piped[2]}), a file {len(packets)} ({error})"
        if packets:
            with StreamReader(io.BytesIO(case.data)) as reader:  # seeking trusts the footer and index
                reader.seek(rng.choice([*(p.pts for p in packets), -(2**63), 2**63 - 1, rng.randint(-9, 9)]))
                list(reader)
        lost = [i for i in self.mutator.expected(case) if self.clean_packets[i] not in packets]
        if lost:
            return "lost", f"intact packets {lost} not returned ({error or 'no error'})"
        errors = [error] if error else []
        for number, (packet, header) in enumerate(zip(packets, headers)):
            result = self._decode(header, packet, number)
            if result != "ok":
                errors.append(result)
        return ("stream-error", ", ".join(sorted(set(errors)))) if errors else ("ok", "")

    def _decode(self, header: StreamHeader, packet: Packet, number: int) -> str:
        from .codec.stream import FrameDecoder

        key = (header.coder_id, header.weights_hash, header.width, header.height, packet.type, packet.q_index)
        key += (packet.payload,)
        if key not in self._decoded:
            try:
                FrameDecoder(self.model, header).decode(packet, number)
                result = "ok"
            except StreamError as exc:
                result = type(exc).__name__
            if len(self._decoded) > 4096:
                self._decoded.clear()
            self._decoded[key] = result
        return self._decoded[key]


def _limit_memory(limit: int | None) -> None:
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    soft = hard if limit is None or (hard != resource.RLIM_INFINITY and limit > hard) else limit
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _worker(conn: Connection, seed: int) -> None:
    """A worker process: loads the model, codes the clean stream, then runs the case numbers it is sent."""
    import torch

    from .codec.registry import load_model

    torch.set_num_threads(1)
    model = load_model("evc-s", "cpu")
    runner = CaseRunner(model, sample_stream(model), seed)
    for number, packet in enumerate(runner.clean_packets):  # warm up: the decoder's first allocations
        runner._decode(runner.header, packet, number)
    base = _address_space()
    conn.send(("ready", len(runner.mutator.clean), len(runner.clean_packets)))
    while (number := conn.recv()) is not None:
        case = runner.mutator.case(number)
        seconds, memory = case_bounds(*runner.declared_size(case))
        conn.send(("begin", number, case.kind, seconds))
        _limit_memory(base + memory)
        try:
            status, detail = runner.run(case)
        except MemoryError:
            status, detail = "over-memory", "MemoryError"
        except Exception as exc:  # noqa: BLE001 - anything but a StreamError is the bug this looks for
            over = isinstance(exc, RuntimeError) and "alloc" in str(exc)
            status = "over-memory" if over else "crash"
            detail = "".join(traceback.format_exception_only(exc)).strip()
            detail += " at " + "; ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in
                                          traceback.extract_tb(exc.__traceback__)[-3:])  # fmt: skip
        finally:
            _limit_memory(None)
        conn.send(("end", number, status, f"{case.detail}: {detail}" if detail else case.detail))


@dataclass
class FuzzReport:
    """Counts of a fuzz run and every case that found a bug."""

    seed: int
    start: int
    cases: int = 0
    seconds: float = 0.0
    stream_bytes: int = 0
    stream_packets: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    bugs: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no case found a bug."""
        return not self.bugs

    def as_dict(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (every status counted, even at 0)."""
        return {
            "ok": self.ok, "seed": self.seed, "start": self.start, "cases": self.cases, "seconds": self.seconds,
            "stream_bytes": self.stream_bytes, "stream_packets": self.stream_packets,
            "statuses": {s: self.statuses.get(s, 0) for s in STATUSES}, "kinds": dict(self.kinds),
            "bugs": self.bugs,
        }  # fmt: skip


class _Slot:
    """One worker process and the case it runs."""

    def __init__(self, seed: int) -> None:
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch threads
        self.seed = seed
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(child, seed), daemon=True)
        self.process.start()
        child.close()
        _, self.stream_bytes, self.stream_packets = self.conn.recv()
        self.case: int | None = None
        self.kind = ""
        self.bound = 0.0
        self.deadline = float("inf")

    def send(self, number: int | None) -> None:
        """Start case ``number`` (None: finish); until the worker reports the case's own bound, the base one holds."""
        self.conn.send(number)
        self.case, self.kind, self.bound = number, "", BASE_SECONDS
        self.deadline = time.monotonic() + BASE_SECONDS if number is not None else float("inf")

    def stop(self, grace: float = 0.0) -> None:
        """End the worker: at once, or after ``grace`` seconds for it to finish on its own."""
        self.process.join(grace)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def run_fuzz(
    cases: int, seed: int = 0, *, start: int = 0, workers: int = 1,
    on_progress: Callable[[FuzzReport], None] | None = None,
) -> FuzzReport:  # fmt: skip
    """Run cases ``start`` .. ``start + cases - 1`` of ``seed`` in ``workers`` processes."""
    report = FuzzReport(seed, start)
    began = time.monotonic()
    numbers = iter(range(start, start + cases))
    slots = [_Slot(seed) for _ in range(max(1, min(workers, cases)))]
    report.stream_bytes, report.stream_packets = slots[0].stream_bytes, slots[0].stream_packets

    def record(slot: _Slot, status: str, detail: str) -> None:
        report.cases += 1
        report.statuses[status] += 1
        report.kinds[slot.kind] += 1
        if status in BUGS:
            report.bugs.append({"case": slot.case, "kind": slot.kind, "status": status, "detail": detail})
        if on_progress is not None and report.cases % 1000 == 0:
            report.seconds = time.monotonic() - began
            on_progress(report)

    def outcome(slot: _Slot) -> tuple[str, str, bool] | None:
        """The finished case's status, detail and whether its worker must be replaced; None while it runs."""
        if slot.conn.poll():
            try:
                message = slot.conn.recv()
            except EOFError:
                slot.process.join()
                return "crash", f"worker died (exit status {slot.process.exitcode})", True
            if message[0] == "begin":
                slot.kind, slot.bound = message[2], message[3]
                slot.deadline = time.monotonic() + slot.bound
                return None
            return message[2], message[3], False
        if time.monotonic() > slot.deadline:
            return "hang", f"no result within its {slot.bound:.0f} s bound", True
        return None

    try:
        busy = list(slots)
        for slot in slots:
            slot.send(next(numbers))
        while busy:
            timeout = max(0.0, min(s.deadline for s in busy) - time.monotonic())
            wait([s.conn for s in busy], timeout=min(timeout, 60.0))
            for slot in list(busy):
                while (result := outcome(slot)) is None and slot.conn.poll():
                    pass
                if result is None:
                    continue
                status, detail, replace = result
                record(slot, status, detail)
                if replace:
                    slot.stop()
                    fresh = _Slot(seed)
                    slots[slots.index(slot)] = fresh
                    busy[busy.index(slot)] = slot = fresh
                number = next(numbers, None)
                slot.send(number)
                if number is None:
                    busy.remove(slot)
    finally:
        for slot in slots:
            slot.stop(5.0 if slot.case is None else 0.0)  # an idle worker was sent None: it finishes
    report.seconds = time.monotonic() - began
    return report


__all__ = ["Case", "CaseRunner", "FuzzReport", "Mutator", "case_bounds", "layout", "run_fuzz", "sample_stream"]
