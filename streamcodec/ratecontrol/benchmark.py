"""``bench-rc`` measurements: how well each rate-control mode hits its target on real clips.

For each clip (downscaled, analysed once: the analysis features are cached and reused by every pass) and each
target rate:

* **CQP** at the q whose rate matches the target (for a ``qNN`` target: q = NN, and the target *is* the rate
  CQP achieved), with per-frame PSNR: the quality-stability reference at the same mean rate;
* **ABR** at the target, one pass (live) and two passes (offline: a first pass of one rate probe per frame):
  achieved / target, per-frame PSNR std-dev and max |ΔPSNR| against CQP's;
* **CBR** at the target with bufsize = 1 s and = 3 frames: VBV underflows/overflows (:mod:`.vbv`, the
  controller's own buffer and an independent re-simulation of the real sizes), the sliding 1-s window
  range of bits/s ÷ target;
* **convergence**: frames from a cold start (frame 0 of each pass) and from a scene cut (the first
  ``cut_frames`` frames of the clip followed by the first ``cut_frames`` of the next clip) until the frame
  size is within ±10 % of the controller's per-frame budget for 5 frames in a row; also for a model-only ABR
  (no probes), to show what the probes buy;
* the time the rate probes take per frame.

Every frame is really entropy-coded (the sizes are the packets', header included, not estimates). Measurement only:
no I/O except reading the clips; the CLI (``streamcodec bench-rc``) prints and plots.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .base import Q_MAX, Q_MIN, RateController
from .modes import ABRController, CBRController, CQPController, TwoPassABRController
from .settings import parse_bitrate
from .vbv import simulate

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".y4m")


@dataclass
class Clip:
    """Frames of one clip at the benchmark size, with their analysis features."""

    name: str
    fps: float
    images: list[np.ndarray]
    features: list[Any]
    looped: bool = False
    #: cached :func:`reachable_rates`
    reachable: tuple[float, float] | None = None

    def __len__(self) -> int:
        return len(self.images)

    def sub(self, start: int, stop: int) -> Clip:
        """Frames ``[start, stop)`` as a clip of their own (``reachable`` is not carried over)."""
        return Clip(self.name, self.fps, self.images[start:stop], self.features[start:stop], self.looped)


@dataclass
class PassResult:
    """One encode of a frame sequence under one controller."""

    label: str
    fps: float
    q: list[float] = field(default_factory=list)
    bits: list[int] = field(default_factory=list)
    budget: list[float | None] = field(default_factory=list)
    buffer_before: list[float | None] = field(default_factory=list)
    probes: list[int] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    probe_seconds: float = 0.0
    code_seconds: float = 0.0

    @property
    def bitrate(self) -> float:
        """Mean rate in bit/s: the mean bits per frame times ``fps``."""
        return sum(self.bits) * self.fps / len(self.bits)


def load_clip(path: str | Path, model: Any, scale: tuple[int, int] | None, frames: int | None,
              min_frames: int = 0) -> Clip:
    """Read (at most ``frames``) frames at ``scale`` and analyse them. A clip shorter than ``min_frames`` is
    extended ping-pong (forward, then backward, ...), so the extension adds no scene cut; ``looped`` says so."""
    import torch

    from ..codec.stream import to_tensor
    from ..io import open_source

    images = []
    with open_source(path, frames=frames, scale=scale) as source:
        fps = float(source.fps or 25)
        for frame in source:
            images.append(frame.image)
    if not images:
        raise ValueError(f"{path}: no frames")
    device = model.q_basic.device
    with torch.inference_mode():
        features = [model.analyse(to_tensor(im, device)) for im in images]
    looped = False
    want = max(min_frames, 0) if frames is None else min(max(min_frames, 0), frames)
    if len(images) < want and len(images) > 1:
        order = list(range(len(images))) + list(range(len(images) - 2, 0, -1))
        idx = [order[i % len(order)] for i in range(want)]
        images = [images[i] for i in idx]
        features = [features[i] for i in idx]
        looped = True
    return Clip(Path(str(path)).stem, fps, images, features, looped)


def encode_pass(model: Any, clip: Clip, controller: RateController, label: str, psnr: bool = False,
                substreams: int | None = None) -> PassResult:
    """Code every frame of ``clip`` under ``controller`` as ``FrameEncoder`` does with a plain (not block-masked)
    model (probe on the cached features, compress, report the real size), timing the probes."""
    import torch

    from ..bitstream.format import PACKET_HEADER_SIZE
    from ..codec.evc import DEFAULT_SUBSTREAMS
    from ..codec.quality import index_to_q
    from ..codec.stream import to_image, to_tensor
    from ..evaluate.metrics import psnr as psnr_db

    substreams = substreams or DEFAULT_SUBSTREAMS
    device = model.q_basic.device
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    res = PassResult(label, clip.fps)
    for i, (image, features) in enumerate(zip(clip.images, clip.features)):
        spent = [0.0]

        def probe(q: float, features: Any = features, spent: list = spent) -> float:
            t = time.perf_counter()
            bits = model.estimate_bits(features, q, substreams)
            sync()
            spent[0] += time.perf_counter() - t
            return bits

        q = controller.choose(probe, i)
        t0 = time.perf_counter()
        x = to_tensor(image, device)
        frame, x_hat = model.compress(x, q, substreams=substreams, features=features, reconstruct=psnr)
        sync()
        res.code_seconds += time.perf_counter() - t0
        bits = 8 * (PACKET_HEADER_SIZE + len(frame.payload))
        controller.update(index_to_q(frame.q_index), bits)
        dec = controller.last
        res.q.append(index_to_q(frame.q_index))
        res.bits.append(bits)
        res.budget.append(dec.budget if dec is not None else None)
        res.buffer_before.append(dec.buffer_before if dec is not None else None)
        res.probes.append(len(dec.probes) if dec is not None else 0)
        res.probe_seconds += spent[0]
        if x_hat is not None:
            res.psnr.append(psnr_db(to_image(x_hat), image))
    return res


# -- metrics ---------------------------------------------------------------------------------------------------
def window_range(bits: Sequence[float], fps: float, target: float, seconds: float = 1.0) -> tuple[float, float]:
    """(min, max) over all sliding windows of ``seconds`` (rounded to whole frames) of bits/s ÷ target."""
    n = max(1, round(seconds * fps))
    if len(bits) < n:
        r = sum(bits) * fps / len(bits) / target
        return r, r
    csum = np.concatenate([[0.0], np.cumsum(bits, dtype=np.float64)])
    rates = (csum[n:] - csum[:-n]) * fps / n / target
    return float(rates.min()), float(rates.max())


def convergence(bits: Sequence[float], budget: Sequence[float | None], start: int = 0, tol: float = 0.1,
                run: int = 5) -> int | None:
    """Frames after ``start`` until ``|bits/budget - 1| <= tol`` holds for ``run`` frames in a row (0: it held
    from the first frame); None if it never does."""
    ok = [b is not None and b > 0 and abs(x / b - 1) <= tol for x, b in zip(bits, budget)]
    for k in range(start, len(ok) - run + 1):
        if all(ok[k : k + run]):
            return k - start
    return None


def psnr_stats(psnr: Sequence[float]) -> dict[str, float]:
    """The ``mean``, ``std`` and ``max_delta`` (largest frame-to-frame change) of ``psnr``, in dB; empty if it is."""
    if not psnr:
        return {}
    diffs = [abs(b - a) for a, b in zip(psnr, psnr[1:])]
    return {
        "mean": statistics.fmean(psnr),
        "std": statistics.pstdev(psnr),
        "max_delta": max(diffs) if diffs else 0.0,
    }


def rate_for_q(model: Any, clip: Clip, target: float, step: int = 10, substreams: int | None = None) -> float:
    """The CQP q whose estimated mean rate over every ``step``-th frame is ``target`` bit/s (bisection)."""
    from ..codec.evc import DEFAULT_SUBSTREAMS

    feats = clip.features[::step]
    subs = substreams or DEFAULT_SUBSTREAMS

    def rate(q: float) -> float:
        return statistics.fmean(packet_estimate(model, f, q, subs) for f in feats) * clip.fps

    lo, hi = Q_MIN, Q_MAX
    for _ in range(11):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rate(mid) < target else (lo, mid)
    return round((lo + hi) / 2, 3)


def packet_estimate(model: Any, features: Any, q: float, substreams: int) -> float:
    """The estimated bits of a frame's packet at q: the entropy model's payload estimate plus the packet header."""
    from ..bitstream.format import PACKET_HEADER_SIZE

    return model.estimate_bits(features, q, substreams) + 8 * PACKET_HEADER_SIZE


def first_pass_estimates(model: Any, clip: Clip, q: float = 32.0, substreams: int | None = None) -> list[float]:
    """Every frame's entropy estimate at ``q``: the first pass of two-pass ABR (on the cached features)."""
    from ..codec.evc import DEFAULT_SUBSTREAMS

    subs = substreams or DEFAULT_SUBSTREAMS
    return [model.estimate_bits(f, q, subs) for f in clip.features]


def reachable_rates(model: Any, clip: Clip, step: int = 3, substreams: int | None = None) -> tuple[float, float]:
    """(max over frames of the rate at the lowest q, min over frames of the rate at the highest), in bit/s, from
    the entropy estimate of every ``step``-th frame, over the controllers' whole (extended) q range. When the
    first exceeds the second, no constant per-frame budget fits every frame of the clip."""
    from ..codec.evc import DEFAULT_SUBSTREAMS

    subs = substreams or DEFAULT_SUBSTREAMS
    feats = clip.features[::step]
    lo = max(packet_estimate(model, f, Q_MIN, subs) for f in feats) * clip.fps
    hi = min(packet_estimate(model, f, Q_MAX, subs) for f in feats) * clip.fps
    return lo, hi


def pick_cut_partner(model: Any, clip: Clip, candidates: Sequence[Clip], frames: int) -> Clip | None:
    """The clip to cut into from ``clip`` for the scene-cut test: of the candidates with the same frame size,
    the one whose first ``frames`` frames share the widest range of reachable frame sizes with ``clip``'s
    (a cut between clips of very different complexity can leave no rate both sides can hit, and convergence
    would then measure the q bounds, not the controller)."""

    def head_range(c: Clip) -> tuple[float, float]:
        lo, hi = reachable_rates(model, c.sub(0, frames))
        return lo / c.fps, hi / c.fps

    mine = head_range(clip)
    best, best_overlap = None, -math.inf
    for other in candidates:
        if other is clip or other.images[0].shape != clip.images[0].shape:
            continue
        lo, hi = head_range(other)
        overlap = math.log(min(mine[1], hi) / max(mine[0], lo))
        if overlap > best_overlap:
            best, best_overlap = other, overlap
    return best


def parse_target(text: str) -> tuple[str, float]:
    """``q32`` (the rate CQP q=32 gives on the clip) or a bitrate (``300k``, ``1.2M``, ``250000``)."""
    text = text.strip()
    if text[:1].lower() == "q":
        q = float(text[1:])
        if not Q_MIN <= q <= Q_MAX:
            raise ValueError(f"target {text!r}: q must lie in {Q_MIN:g}..{Q_MAX:g}")
        return "q", q
    return "bitrate", parse_bitrate(text)


# -- one clip --------------------------------------------------------------------------------------------------
def bench_clip(model: Any, clip: Clip, target_spec: str, next_clip: Clip | None = None, cut_frames: int = 30,
               progress: Callable[[str], None] | None = None) -> tuple[dict[str, Any], dict[str, PassResult]]:
    """All passes and metrics of one clip at one target. Returns (summary, passes by label)."""
    say = progress or (lambda _msg: None)
    fps = clip.fps
    kind, value = parse_target(target_spec)
    q_ref = value if kind == "q" else rate_for_q(model, clip, value)
    say(f"{clip.name} {target_spec}: CQP q={q_ref:g}")
    passes: dict[str, PassResult] = {}
    passes["cqp"] = encode_pass(model, clip, CQPController(q_ref, fps), "cqp", psnr=True)
    target = passes["cqp"].bitrate if kind == "q" else value
    r = target / fps
    say(f"{clip.name} {target_spec}: ABR at {target / 1e3:.1f} kb/s")
    passes["abr"] = encode_pass(model, clip, ABRController(target, fps, history=8), "abr", psnr=True)
    say(f"{clip.name} {target_spec}: two-pass ABR")
    start = time.perf_counter()
    first_pass = first_pass_estimates(model, clip)
    first_pass_seconds = time.perf_counter() - start
    passes["abr_2pass"] = encode_pass(model, clip, TwoPassABRController(target, fps, first_pass, history=8),
                                      "abr_2pass", psnr=True)
    buffers = {"1s": target, "3f": 3 * r}
    for name, size in buffers.items():
        say(f"{clip.name} {target_spec}: CBR bufsize {name}")
        passes[f"cbr_{name}"] = encode_pass(model, clip, CBRController(target, fps, size, history=8),
                                           f"cbr_{name}", psnr=True)

    if clip.reachable is None:
        say(f"{clip.name}: reachable rates")
        clip.reachable = reachable_rates(model, clip)
    lo_rate, hi_rate = clip.reachable
    summary: dict[str, Any] = {
        "clip": clip.name,
        "frames": len(clip),
        "looped": clip.looped,
        "size": f"{clip.images[0].shape[1]}x{clip.images[0].shape[0]}",
        "fps": fps,
        "target_spec": target_spec,
        "target_bps": target,
        "cqp_q": q_ref,
        # every frame fits at the lowest q above lo, and can fill its share at the highest below hi (estimates):
        # a per-frame-budget CBR is only feasible for lo <= target <= hi
        "reachable_bps": [lo_rate, hi_rate],
    }
    cqp_psnr = psnr_stats(passes["cqp"].psnr)
    for label, p in passes.items():
        n = len(p.bits)
        entry: dict[str, Any] = {
            "bitrate": p.bitrate,
            "error": p.bitrate / target - 1,
            "q_mean": statistics.fmean(p.q),
            "q_std": statistics.pstdev(p.q),
            "q_range": [min(p.q), max(p.q)],
            "probes_per_frame": sum(p.probes) / n,
            "probe_ms_per_frame": 1e3 * p.probe_seconds / n,
            "code_ms_per_frame": 1e3 * p.code_seconds / n,
            "window_1s": window_range(p.bits, fps, target),
            "psnr": psnr_stats(p.psnr),
        }
        if p.psnr and cqp_psnr.get("std"):
            entry["psnr_std_ratio_vs_cqp"] = entry["psnr"]["std"] / cqp_psnr["std"]
        if label != "cqp":
            entry["convergence_cold"] = convergence(p.bits, p.budget)
        if label == "abr_2pass":
            # the first pass over cached features: one probe a frame (a real first pass also runs the analysis)
            entry["first_pass_probe_ms_per_frame"] = 1e3 * first_pass_seconds / n
        if label.startswith("cbr_"):
            size = buffers[label[4:]]
            sim = simulate(p.bits, size, target, fps, 0.9)
            entry["bufsize_bits"] = size
            entry["underflows"] = sim["underflows"]
            entry["overflows"] = sim["overflows"]
            entry["worst_deficit_bits"] = sim["worst_deficit"]
            # attribution: at the lowest q the controller had no smaller size left; at the highest no bigger one
            entry["underflows_at_qmin"] = sum(1 for i in sim["underflow_frames"] if p.q[i] <= Q_MIN)
            entry["overflows_at_qmax"] = sum(1 for i in sim["overflow_frames"] if p.q[i] >= Q_MAX)
            entry["frames_below_q0"] = sum(1 for q in p.q if q < 0.0)
            entry["min_level"] = min(sim["level_before"]) / size
        summary[label] = entry

    if next_clip is not None and cut_frames > 0:
        n = min(cut_frames, len(clip), len(next_clip))
        seq = Clip(f"{clip.name}+{next_clip.name}", fps, clip.images[:n] + next_clip.images[:n],
                   clip.features[:n] + next_clip.features[:n])
        say(f"{clip.name} {target_spec}: scene cut into {next_clip.name}")
        # the two halves can differ by more than EVC's whole q range: aim at a rate both can reach
        lo_a, hi_a = reachable_rates(model, seq.sub(0, n))
        lo_b, hi_b = reachable_rates(model, seq.sub(n, 2 * n))
        lo, hi = max(lo_a, lo_b), min(hi_a, hi_b)
        cut_target = math.sqrt(lo * hi) if lo < hi else math.sqrt(lo_a * hi_a * lo_b * hi_b) ** 0.5
        cut: dict[str, Any] = {"sequence": seq.name, "cut_at": n, "target_bps": cut_target,
                               "common_reachable": lo < hi}
        target, r = cut_target, cut_target / fps
        buffers = {"1s": target, "3f": 3 * r}
        makers = {
            "abr": lambda: ABRController(target, fps, history=8),
            "cbr_1s": lambda: CBRController(target, fps, target, history=8),
            "cbr_3f": lambda: CBRController(target, fps, 3 * r, history=8),
            "abr_model_only": lambda: ABRController(target, fps, max_probes=0, history=8),
        }
        for label, make in makers.items():
            p = encode_pass(model, seq, make(), f"cut_{label}")
            passes[f"cut_{label}"] = p
            entry = {
                "convergence_cold": convergence(p.bits, p.budget),
                "convergence_cut": convergence(p.bits, p.budget, start=n),
                "first_after_cut": [round(b / bu - 1, 4) if bu else None for b, bu in zip(p.bits[n : n + 3],
                                                                                         p.budget[n : n + 3])],
                "q_at_bound_after_cut": sum(1 for q in p.q[n:] if q <= Q_MIN or q >= Q_MAX),
            }
            if label.startswith("cbr_"):
                sim = simulate(p.bits, buffers[label[4:]], target, fps, 0.9)
                entry["underflows"] = sim["underflows"]
                entry["underflows_at_qmin"] = sum(1 for i in sim["underflow_frames"] if p.q[i] <= Q_MIN)
            cut[label] = entry
        summary["scene_cut"] = cut
    return summary, passes


def plot_clip(summary: dict[str, Any], passes: dict[str, PassResult], path: str | Path) -> None:
    """Per-frame bits vs budget, q, and buffer fullness of one clip (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(11, 12), sharex=True)
    target_frame = summary["target_bps"] / summary["fps"]
    ax = axes[0]
    for label in ("cqp", "abr", "abr_2pass", "cbr_1s", "cbr_3f"):
        ax.plot(passes[label].bits, label=label, lw=0.8)
    ax.axhline(target_frame, color="k", ls="--", lw=0.8, label="target/fps")
    ax.set_ylabel("bits per frame")
    ax.legend(fontsize=8)
    ax = axes[1]
    for label in ("abr", "cbr_3f"):
        p = passes[label]
        ax.plot([b / bu - 1 if bu else np.nan for b, bu in zip(p.bits, p.budget)], label=f"{label} bits/budget-1",
                lw=0.8)
    ax.axhspan(-0.1, 0.1, color="g", alpha=0.1)
    ax.set_ylabel("vs budget")
    ax.legend(fontsize=8)
    ax = axes[2]
    for label in ("cqp", "abr", "abr_2pass", "cbr_1s", "cbr_3f"):
        ax.plot(passes[label].q, label=label, lw=0.8)
    ax.set_ylabel("q")
    ax.legend(fontsize=8)
    ax = axes[3]
    for label in ("cbr_1s", "cbr_3f"):
        p = passes[label]
        size = summary[label]["bufsize_bits"]
        ax.plot([(b or 0) / size for b in p.buffer_before], label=f"{label} fullness before frame", lw=0.8)
    ax.axhline(0, color="r", lw=0.8)
    ax.set_ylabel("buffer / bufsize")
    ax.set_xlabel("frame")
    ax.legend(fontsize=8)
    fig.suptitle(f"{summary['clip']} {summary['size']} target {summary['target_bps'] / 1e3:.1f} kb/s")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def clip_paths(folder: str | Path) -> list[Path]:
    """The video clips in ``folder``, sorted (:data:`VIDEO_SUFFIXES`), or ``[folder]`` if it is a file."""
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise FileNotFoundError(f"no such clip folder: {folder}")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not paths:
        raise ValueError(f"{folder} holds no video clip ({', '.join(VIDEO_SUFFIXES)})")
    return paths


__all__ = ["Clip", "PassResult", "bench_clip", "clip_paths", "convergence", "encode_pass", "first_pass_estimates",
           "load_clip", "packet_estimate", "parse_target",
           "pick_cut_partner", "plot_clip", "psnr_stats", "rate_for_q", "reachable_rates", "window_range"]
