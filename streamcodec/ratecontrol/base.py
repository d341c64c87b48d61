"""The rate-controller interface, shared by every mode.

A controller is told, once per frame, how to ask the codec for the rate of this frame at a quality (the
*probe*: the entropy model's estimate in bits, no arithmetic coding), and answers with the quality ``q`` to code
at; after coding it is told the real size. It is pure Python: no torch, no I/O, no clock of its own (the frame
rate is given, a frame's duration may be passed to :meth:`RateController.update`), so it can be driven by a
synthetic rate world in tests exactly as by the codec.

Quality here is streamcodec's ``q``: a float, HIGHER = better quality = more bits; 0..63 is the model's trained
range, and controllers may search the extended range [-64, 96] (``streamcodec.codec.quality``: the quantisation
step extrapolated) when a rate target needs it. A stream stores q as ``round(q * 400) + 25600``; every q a
controller probes or returns is already on that grid (:func:`snap_q`), so the probe sees exactly the q the
frame will be coded at.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

#: ``probe(q) -> estimated bits`` of the current frame at quality q.
Probe = Callable[[float], float]

# The codec's extended q range and stream grid (``streamcodec.codec.quality``, which needs torch: repeated here so
# that rate control stays pure Python; tests/test_ratecontrol.py checks that the two agree).
Q_MIN = -64.0
Q_MAX = 96.0
Q_QUANTUM = 400


def snap_q(q: float, lo: float = Q_MIN, hi: float = Q_MAX) -> float:
    """Clamp q to [lo, hi] and round it to the grid a stream can store."""
    if math.isnan(q):
        raise ValueError("q is NaN")
    q = min(max(q, lo), hi)
    return round(q * Q_QUANTUM) / Q_QUANTUM


@dataclass
class Decision:
    """What a controller decided for one frame, and (after :meth:`RateController.update`) what happened."""

    frame_index: int
    q: float
    #: the per-frame target in real bits the controller aimed at (None for constant-q modes)
    budget: float | None = None
    #: the controller's prediction of the frame's real size at ``q``
    predicted_bits: float | None = None
    probes: list[tuple[float, float]] = field(default_factory=list)
    scene_cut: bool = False
    real_bits: int | None = None
    #: decoder-buffer fullness before this frame was removed (VBV modes): the hard upper bound on its size
    buffer_before: float | None = None


class RateController(ABC):
    """Base of every mode: frame-rate bookkeeping, the decision log, the choose/update contract."""

    mode = "?"

    def __init__(self, fps: float | Fraction, history: int | None = 0) -> None:
        if not fps or float(fps) <= 0:
            raise ValueError(f"frame rate must be positive, got {fps}")
        self.fps = float(fps)
        #: the last decision (after update: with its real bits)
        self.last: Decision | None = None
        #: kept decisions: ``history=None`` keeps all (benchmarks), 0 none, n the last n
        self.history: deque[Decision] = deque(maxlen=history)
        self.frames = 0
        self.total_bits = 0

    @abstractmethod
    def choose(self, probe: Probe | None, frame_index: int) -> float:
        """The quality to code frame ``frame_index`` at. ``probe`` may be None (no rate probe available):
        the controller then decides from its model alone."""

    def update(self, q: float, real_bits: int, duration: float | None = None) -> None:
        """Report the real coded size of the frame just chosen (``q`` as coded; it may differ from the choice
        if the caller overrode it). ``duration`` in seconds defaults to 1/fps."""
        if real_bits < 0:
            raise ValueError("real_bits must be >= 0")
        dec = self.last
        if dec is None or dec.real_bits is not None:  # update without choose (caller chose q itself)
            dec = Decision(frame_index=self.frames, q=q)
            self.last = dec
        dec.q = q
        dec.real_bits = int(real_bits)
        self.frames += 1
        self.total_bits += int(real_bits)
        self._after_frame(dec, duration if duration is not None else 1.0 / self.fps)
        if self.history.maxlen != 0:
            self.history.append(dec)

    def _after_frame(self, dec: Decision, duration: float) -> None:  # noqa: B027 - optional hook
        """Mode-specific learning from the coded frame."""

    def _begin(self, frame_index: int, q: float) -> Decision:
        self.last = Decision(frame_index=frame_index, q=q)
        return self.last

    def describe(self) -> dict:
        """The settings, for logs and --json output."""
        return {"mode": self.mode, "fps": self.fps}


__all__ = ["Decision", "Probe", "Q_MAX", "Q_MIN", "RateController", "snap_q"]
