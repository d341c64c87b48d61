"""Fuzzing the reader and decoder: a short run of ``streamcodec fuzz`` (the long one is in README.md), truncation
at every byte offset, the findings it made, and the checks of the harness itself."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from streamcodec import bitstream, cli
from streamcodec.bitstream import Packet, PacketType, StreamHeader, StreamWriter
from streamcodec.bitstream import format as fmt
from streamcodec.fuzz import BUGS, Case, CaseRunner, layout, sample_stream

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runner(model) -> CaseRunner:
    return CaseRunner(model, sample_stream(model), seed=0)


def test_short_fuzz_run_finds_no_crash_hang_or_lost_packet(runner: CaseRunner, capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["fuzz", "--cases", "1300", "--seed", "0", "--workers", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["bugs"] == [] and report["cases"] == 1300
    assert all(report["statuses"][status] == 0 for status in BUGS)
    assert report["statuses"]["ok"] > 0 and report["statuses"]["stream-error"] > 0
    assert set(report["kinds"]) == {kind for kind, _ in runner.mutator.kinds}


def test_truncation_at_every_byte_offset_decodes_every_complete_packet(runner: CaseRunner) -> None:
    clean = runner.mutator.clean
    ends = [s.end for s in runner.mutator.data_spans]
    seen = set()
    for cut in range(len(clean) + 1):
        case = Case(cut, "truncate", clean[:cut], (cut, len(clean)))
        status, detail = runner.run(case)
        assert status in ("ok", "stream-error"), (cut, status, detail)
        seen.add(sum(end <= cut for end in ends))
    assert seen == set(range(len(ends) + 1))


def test_a_missing_intact_packet_is_reported_as_lost(runner: CaseRunner) -> None:
    clean, spans = runner.mutator.clean, runner.mutator.data_spans
    dropped = clean[: spans[1].start] + clean[spans[1].end :]  # packet 1 gone, but the case claims no damage
    status, detail = runner.run(Case(0, "forged", dropped, (len(clean), len(clean))))
    assert status == "lost" and "[1]" in detail


def test_kinds_of_mutation_are_reproducible(runner: CaseRunner) -> None:
    mutator = runner.mutator
    cases = [mutator.case(n) for n in range(2 * len(mutator.kinds))]
    assert [c.data for c in cases] == [mutator.case(n).data for n in range(len(cases))]
    assert {c.kind for c in cases} == {kind for kind, _ in mutator.kinds}
    assert all(c.data != mutator.clean for c in cases if c.kind not in ("trailer", "truncate"))


# -- findings ------------------------------------------------------------------------------------------------------


def test_index_entry_pointing_past_the_stream_falls_back_to_a_scan() -> None:
    """Fuzz finding (seed 1, case 935): an INDEX entry offset of 2**64-1 with valid CRCs made seek() raise
    OverflowError; the reader now treats such an index as damaged and scans instead."""
    header = StreamHeader("EVCS", "evc-ss", bytes(16), coder_id=1, width=64, height=48)
    out = io.BytesIO()
    with StreamWriter(out, header) as writer:
        for pts in range(5):
            writer.write(Packet(PacketType.KEY, pts, 1, bytes([pts]) * 30))
        writer.close()
        clean = out.getvalue()
    _, spans = layout(clean)
    index = spans[-1]
    entries = fmt.unpack_index(clean[index.start + fmt.PACKET_HEADER_SIZE : index.end])
    for bad in ([(p, 2**64 - 1 if p == 3 else o) for p, o in entries], entries[::-1]):
        forged = fmt.pack_packet(Packet(PacketType.INDEX, 4, 0, fmt.pack_index(bad)))
        with bitstream.open(io.BytesIO(clean[: index.start] + forged + clean[index.end :])) as reader:
            reader.seek(3)
            assert [p.pts for p in reader] == [3, 4]


def test_the_worker_memory_bound_turns_a_runaway_allocation_into_memory_error() -> None:
    script = (
        "from streamcodec.fuzz import _address_space, _limit_memory\n"
        "_limit_memory(_address_space() + (64 << 20))\n"
        "try:\n    bytearray(512 << 20)\nexcept MemoryError:\n    print('bounded')\n"
        "_limit_memory(None)\nbytearray(512 << 20)\nprint('released')\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["bounded", "released"], result.stderr
