"""Leaky-bucket (VBV/HRD) decoder-buffer simulation, in x264's ``update_vbv`` order.

The decoder buffer starts at ``init * bufsize`` bits. For each frame: the frame's bits leave the buffer
(``B -= bits``; an **underflow** when B < 0: the frame had not fully arrived when due); then one frame interval
of channel bits arrives (``B += maxrate * duration``) and the buffer is clipped to ``bufsize`` (an **overflow**:
the channel had to send filler, i.e. the stream used less than the channel). This is the simulation the CBR
controller steers by and the one ``bench-rc`` checks with.

An underflowed buffer is not reset: the deficit carries to the next frame (the decoder is late until the channel
catches up), and every frame removed below zero counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction


@dataclass
class VBV:
    """One decoder buffer: ``bufsize`` bits, filled at ``maxrate`` bit/s, starting ``init`` full."""

    bufsize: float
    maxrate: float
    fps: float | Fraction
    init: float = 0.9
    level: float = field(init=False)
    underflows: int = field(default=0, init=False)
    overflows: int = field(default=0, init=False)
    #: bits of filler the channel had to send (sum of what the clip at bufsize cut off)
    filler_bits: float = field(default=0.0, init=False)
    #: most negative level seen (0 if never underflowed)
    worst_deficit: float = field(default=0.0, init=False)
    frames: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.bufsize <= 0 or self.maxrate <= 0:
            raise ValueError("VBV bufsize and maxrate must be positive")
        if not 0.0 <= self.init <= 1.0:
            raise ValueError(f"VBV initial fullness must lie in [0, 1], got {self.init}")
        if float(self.fps) <= 0:
            raise ValueError("frame rate must be positive")
        self.fps = float(self.fps)
        self.level = self.init * self.bufsize

    @property
    def inflow(self) -> float:
        """Channel bits per nominal frame interval."""
        return self.maxrate / self.fps

    @property
    def fullness(self) -> float:
        """Bits in the buffer now, i.e. the most the next frame may take without underflowing."""
        return self.level

    def step(self, bits: float, duration: float | None = None) -> tuple[bool, bool]:
        """Remove one frame of ``bits``, then refill for ``duration`` seconds (default 1/fps).
        Returns (underflow, overflow) for this frame."""
        self.frames += 1
        self.level -= bits
        under = self.level < 0
        if under:
            self.underflows += 1
            self.worst_deficit = min(self.worst_deficit, self.level)
        self.level += self.maxrate * (duration if duration is not None else 1.0 / self.fps)
        over = self.level > self.bufsize
        if over:
            self.overflows += 1
            self.filler_bits += self.level - self.bufsize
            self.level = self.bufsize
        return under, over


def simulate(bits: list[float] | tuple[float, ...], bufsize: float, maxrate: float, fps: float | Fraction,
             init: float = 0.9) -> dict:
    """Run a whole sequence of frame sizes through a fresh :class:`VBV`: the counts, the per-frame levels before
    removal and after refill, and the indices of the frames that underflowed / overflowed."""
    vbv = VBV(bufsize, maxrate, fps, init)
    before, after, under_frames, over_frames = [], [], [], []
    for i, b in enumerate(bits):
        before.append(vbv.level)
        under, over = vbv.step(b)
        after.append(vbv.level)
        if under:
            under_frames.append(i)
        if over:
            over_frames.append(i)
    return {
        "underflows": vbv.underflows,
        "overflows": vbv.overflows,
        "filler_bits": vbv.filler_bits,
        "worst_deficit": vbv.worst_deficit,
        "level_before": before,
        "level_after": after,
        "underflow_frames": under_frames,
        "overflow_frames": over_frames,
    }


__all__ = ["VBV", "simulate"]
