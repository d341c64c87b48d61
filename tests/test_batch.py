"""``streamcodec batch``: a folder of clips on a process pool and on a local Ray instance, chunked files joined
back, complete outputs skipped, truncated ones redone, failed tasks retried and reported."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import av
import numpy as np
import pytest
import ray

from streamcodec import bitstream
from streamcodec.batch import (
    EncodeSettings,
    FileJob,
    ProcessPoolRunner,
    RayRunner,
    Task,
    complete_stream,
    plan_batch,
    run_batch,
)
from streamcodec.cli import main
from streamcodec.codec.evc import EVC
from streamcodec.codec.stream import FrameDecoder

CLIPS = {"a": 6, "b": 8, "c": 10}  # name -> frames
SETTINGS = EncodeSettings(model="evc-s", device="cpu", qp=40, threads=1)


def make_clip(path: Path, frames: int, seed: int) -> Path:
    """A 64x48 H.264 clip (with B-frames, so decoding reorders) of a moving random texture."""
    texture = np.random.default_rng(seed).integers(0, 256, (48, 96, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.options = {"bf": "2", "g": "4"}  # key frames every 4: chunks must seek to the one before them
        for i in range(frames):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(texture[:, 2 * i : 2 * i + 64].copy(), "rgb24")))
        container.mux(stream.encode())
    return path


def decoded(path: Path, model: EVC) -> list[tuple[int, np.ndarray]]:
    """(pts, RGB) of every frame of a .scv file, decoded by the plain torch decoder."""
    with bitstream.open(path) as stream:
        decoder = FrameDecoder(model, stream.header)
        return [(packet.pts, decoder.decode(packet, i)) for i, packet in enumerate(stream)]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("clips")
    for seed, (name, frames) in enumerate(CLIPS.items()):
        make_clip(folder / f"{name}.mp4", frames, seed)
    (folder / "notes.txt").write_text("not a video")
    return folder


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolRunner]:
    runner = ProcessPoolRunner(2)
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def pool_outputs(clips: Path, pool: ProcessPoolRunner, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pool")
    jobs = run_batch(plan_batch(clips, out), SETTINGS, pool)
    assert [job.status for job in jobs] == ["encoded"] * 3
    return out


def test_process_pool_encodes_every_clip_like_encode(clips: Path, pool_outputs: Path, tmp_path: Path) -> None:
    assert sorted(p.name for p in pool_outputs.iterdir()) == ["a.scv", "b.scv", "c.scv"]  # no temporary left
    for name, frames in CLIPS.items():
        finished = complete_stream(pool_outputs / f"{name}.scv")
        assert finished is not None and finished[1] == frames
    reference = tmp_path / "ref.scv"  # `streamcodec encode` with the worker's thread count
    cmd = [sys.executable, "-m", "streamcodec", "encode", clips / "c.mp4", reference, "--qp", "40", "--threads", "1"]
    subprocess.run([str(part) for part in cmd], check=True, capture_output=True)
    assert (pool_outputs / "c.scv").read_bytes() == reference.read_bytes()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_outputs_decode_bit_exact_to_the_pool_outputs(
    clips: Path, pool_outputs: Path, local_ray: None, tmp_path: Path, model: EVC, one_torch_thread: None
) -> None:
    runner = RayRunner("auto")
    assert runner.workers == 2
    jobs = run_batch(plan_batch(clips, tmp_path, chunk_frames=4), SETTINGS, runner)  # b and c in chunks
    runner.close()  # a session it did not start stays up
    assert ray.is_initialized()
    assert [len(job.tasks) for job in jobs] == [2, 2, 3]
    assert [job.status for job in jobs] == ["encoded"] * 3
    ours, theirs = decoded(tmp_path / "c.scv", model), decoded(pool_outputs / "c.scv", model)
    assert [pts for pts, _ in ours] == [pts for pts, _ in theirs] == list(range(0, 10 * 512, 512))
    assert all(np.array_equal(x, y) for (_, x), (_, y) in zip(ours, theirs, strict=True))
    for name in CLIPS:  # chunked on Ray, whole on the pool: the same streams, byte for byte
        assert (tmp_path / f"{name}.scv").read_bytes() == (pool_outputs / f"{name}.scv").read_bytes()


def test_chunks_join_into_the_unchunked_stream(
    clips: Path, pool_outputs: Path, pool: ProcessPoolRunner, tmp_path: Path
) -> None:
    jobs = plan_batch(clips, tmp_path, chunk_frames=3)
    c = jobs[2]
    assert [task.chunk.frames for task in c.tasks] == [3, 3, 3, 1]
    assert [task.chunk.start_pts for task in c.tasks] == sorted({task.chunk.start_pts for task in c.tasks})
    run_batch([c], SETTINGS, pool)
    assert (c.status, c.frames, c.attempts) == ("encoded", 10, 1)
    # the same packets with the same pts, one index and footer: byte for byte the unchunked stream
    assert (tmp_path / "c.scv").read_bytes() == (pool_outputs / "c.scv").read_bytes()
    with bitstream.open(tmp_path / "c.scv") as reader:  # the joined index finds the last chunk's frame
        pts = [packet.pts for packet in reader]
        reader.seek(pts[-1])
        assert next(reader).pts == pts[-1] and len(pts) == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.scv"]


def test_rerun_skips_complete_outputs_and_redoes_a_truncated_one(
    clips: Path, pool_outputs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(clips, inputs)
    (inputs / "bad.mp4").write_bytes(b"junk")
    shutil.copytree(pool_outputs, out)
    expected = (out / "b.scv").read_bytes()
    (out / "b.scv").write_bytes(expected[:-5])  # the footer cut: EOS is there, the index is not reachable
    assert complete_stream(out / "b.scv") is None
    assert main(["batch", str(inputs), str(out), "--qp", "40", "--workers", "1", "--retries", "0"]) == 1
    err = capsys.readouterr().err
    assert "bad.mp4: failed: ValueError: cannot open" in err and "1 encoded, 2 skipped, 1 failed" in err
    summary = json.loads((out / "batch.json").read_text())
    assert [(job["status"], job["frames"], job["attempts"]) for job in summary["jobs"]] == [
        ("skipped", 6, 0), ("encoded", 8, 1), ("failed", 0, 1), ("skipped", 10, 0)
    ]  # fmt: skip
    assert summary["jobs"][1]["bitrate"] > 0 and summary["jobs"][1]["seconds"] > 0
    assert (out / "b.scv").read_bytes() == expected
    assert sorted(p.name for p in out.iterdir()) == ["a.scv", "b.scv", "batch.json", "c.scv"]
    assert main(["batch", str(tmp_path / "nowhere"), str(out)]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_failed_task_is_retried_and_a_bad_file_reported(clips: Path, pool: ProcessPoolRunner, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(clips / "a.mp4", inputs / "a.mp4")
    (inputs / "late.mp4").write_bytes(b"\0" * 4096)  # not a video yet: its first attempt fails
    (inputs / "junk.mkv").write_bytes(b"junk" * 1000)  # never a video
    seen: list[tuple[str, bool]] = []

    def on_task(job: FileJob, task: Task, error: BaseException | None) -> None:
        seen.append((task.input.name, error is None))
        if task.input.name == "late.mp4" and error is not None:  # runs before the retry is queued
            shutil.copy(clips / "b.mp4", task.input)

    jobs = run_batch(plan_batch(inputs, tmp_path / "out"), SETTINGS, pool, retries=1, on_task=on_task)
    a, junk, late = jobs
    assert (a.status, a.attempts) == ("encoded", 1)
    assert (late.status, late.attempts, late.frames) == ("encoded", 2, 8)
    assert (junk.status, junk.attempts) == ("failed", 2)
    assert "junk.mkv" in junk.error and junk.summary()["error"] == junk.error
    assert sorted(seen) == [("a.mp4", True), ("junk.mkv", False), ("junk.mkv", False), ("late.mp4", False),
                            ("late.mp4", True)]  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.scv", "late.scv"]


def test_batch_names_the_streams_each_file_leaves_out(clips: Path, clip_with_audio: Path, tmp_path: Path,
                                                      capsys) -> None:
    folder = clip_with_audio.parent
    shutil.copy(clips / "a.mp4", folder / "a.mp4")
    out = tmp_path / "out"
    assert main(["batch", str(folder), str(out), "--workers", "1", "--threads", "1", "--qp", "40"]) == 0
    assert "av.mp4: not kept: audio #1 (aac, mono, 16000 Hz)" in capsys.readouterr().err
    summary = json.loads((out / "batch.json").read_text())
    assert [(job["status"], job["streams_not_kept"]) for job in summary["jobs"]] == [
        ("encoded", []), ("encoded", ["audio #1 (aac, mono, 16000 Hz)"])
    ]


def test_a_killed_worker_is_replaced(clips: Path, tmp_path: Path) -> None:
    runner = ProcessPoolRunner(1)
    killed: list[int] = []

    def on_task(job: FileJob, task: Task, error: BaseException | None) -> None:
        if not killed:  # the first file is done: kill the worker as the OOM killer would
            pid = next(iter(runner._pool._processes))
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    (tmp_path / "in").mkdir()
    for name in ("a.mp4", "b.mp4"):
        shutil.copy(clips / name, tmp_path / "in" / name)
    try:
        jobs = run_batch(plan_batch(tmp_path / "in", tmp_path / "out"), SETTINGS, runner, retries=1, on_task=on_task)
    finally:
        runner.close()
    assert killed and [job.status for job in jobs] == ["encoded"] * 2
    assert all(job.attempts in (1, 2) for job in jobs)  # whether the pool noticed before or after a submit


def test_late_failures_of_a_replaced_pool_leave_the_fresh_pool_alone(clips: Path, tmp_path: Path) -> None:
    """A broken pool's futures may fail one after another, after retries went to its replacement: only the
    first failure of the current pool restarts it (a second restart would cancel the retries)."""
    (tmp_path / "in").mkdir()
    shutil.copy(clips / "a.mp4", tmp_path / "in" / "a.mp4")
    (job,) = plan_batch(tmp_path / "in", tmp_path / "out")
    job.output.parent.mkdir()
    runner = ProcessPoolRunner(1)
    try:
        future = runner.submit(job.tasks[0], SETTINGS)
        assert future.result().frames > 0
        first = runner._pool
        runner.recover(BrokenProcessPool("a worker died"), future)
        fresh = runner._pool
        assert fresh is not first
        runner.recover(BrokenProcessPool("the same death, reported late"), future)
        runner.recover(RuntimeError("a task's own error"), runner.submit(job.tasks[0], SETTINGS))
        assert runner._pool is fresh
    finally:
        runner.close()
