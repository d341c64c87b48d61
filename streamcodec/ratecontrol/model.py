"""The per-frame rate model and the in-frame secant search.

**Parametrisation.** EVC divides its latent by ``q_basic * q_scale(q)``, where ``ln q_scale`` is piecewise
linear in q (log-linear interpolation between four anchors at q = 0, 21, 42, 63). The note's model
``ln R = a + b * ln(step)`` therefore becomes, in streamcodec's own knob,

    ln R = a + b * q            (R in bits, q in [-64, 96], b > 0: more q, more bits)

Measured on the shipped evc-s weights (first frames of carphone, bikes, vtest and cockatoo at ~320x176, the
entropy model's estimate at q = 0, 5, ..., 63): d ln R / d q = 0.013..0.020 and nearly constant over the trained
range (which spans only ~2.5x in rate), so one straight line in (q, ln R) per frame fits to about 1 %, with a
slope that hardly depends on content. Below q = 0 (the extrapolated steps) the slope grows to about 0.025; the
secant steps on each frame's own probes absorb that. Hence:

* ``b`` (the slope) is shared by all frames and fitted online by exponentially-weighted least squares on the
  slopes seen *within* a frame (two probes of the same frame at different q: content cancels out), each within
  ``SECANT_TRUST`` of the fit so far;
* ``a`` (the intercept, i.e. the frame's complexity) is re-measured on every frame by the first probe and
  warm-started from the previous frame;
* the real coded size is the estimate plus a small additive overhead (``EVC.estimate_bits`` already counts the
  payload framing; what remains is the 224-bit packet header the controllers are told about, and the arithmetic
  coder's flush and word padding, measured at 100..140 bits per frame whatever the frame size), learned online
  from ``real - predicted`` after each frame, with its spread, so caps can keep a safety margin.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .base import Q_MAX, Q_MIN, snap_q

#: d ln(bits) / d q measured on evc-s (see the module docstring); the prior of the online fit.
DEFAULT_SLOPE = 0.015
#: a frame's own two-probe slope is used (by the secant step) and learned from only within this factor of the
#: learned one, either way: content and q move the true slope over 0.013..0.025 (under 2x); a wider ratio is
#: noise, e.g. 0.0046 against 0.0172 from two probes 2.7 q apart on a ~1,500-bit 64x48 frame, whose secant step
#: then overshot the budget (and whose pair, learned from, pulled the shared slope from 0.015 to 0.010).
SECANT_TRUST = 2.0


class LogLinearRQ:
    """``ln R = a + b * q`` with an online slope, a per-frame intercept and an additive real-bits overhead."""

    def __init__(
        self,
        slope: float = DEFAULT_SLOPE,
        slope_bounds: tuple[float, float] = (0.004, 0.08),
        forgetting: float = 0.95,
        prior_weight: float = 4.0,
        offset_smoothing: float = 0.3,
    ) -> None:
        if not slope_bounds[0] <= slope <= slope_bounds[1]:
            raise ValueError("initial slope outside its bounds")
        self.slope_bounds = slope_bounds
        self.forgetting = forgetting
        self.prior_weight = prior_weight
        # weighted least squares of d(ln R) on d(q) through the origin, with the prior as a pseudo-pair
        self._sxx = prior_weight
        self._sxy = slope * prior_weight
        self._prior = slope
        self.slope = slope
        #: intercept of the last frame seen (None before the first)
        self.a: float | None = None
        #: real bits - predicted estimate (EMA) and its mean absolute deviation (EMA)
        self.offset = 0.0
        self.offset_dev = 0.0
        self.offset_smoothing = offset_smoothing
        self._offset_seen = False

    # -- predictions ----------------------------------------------------------------------------------------
    def ln_rate(self, q: float, a: float | None = None) -> float:
        """Predicted ``ln`` of the estimate (bits) at q: ``a + slope * q``, ``a`` by default the last frame's."""
        a = self.a if a is None else a
        if a is None:
            raise ValueError("the model has seen no frame yet")
        return a + self.slope * q

    def rate(self, q: float, a: float | None = None) -> float:
        """Predicted entropy-model estimate (bits) at q."""
        return math.exp(self.ln_rate(q, a))

    def q_for(self, est_bits: float, a: float | None = None) -> float:
        """The (unclamped, unsnapped) q whose predicted estimate is ``est_bits``."""
        a = self.a if a is None else a
        if a is None:
            raise ValueError("the model has seen no frame yet")
        return (math.log(max(est_bits, 1.0)) - a) / self.slope

    def intercept(self, q: float, est_bits: float) -> float:
        """The frame intercept a point (q, estimate) implies, at the current slope."""
        return math.log(max(est_bits, 1.0)) - self.slope * q

    # -- learning -------------------------------------------------------------------------------------------
    def observe_slope(self, q0: float, r0: float, q1: float, r1: float) -> None:
        """Two estimates of one frame at different q: one sample of the slope."""
        s = trusted_slope(q0, r0, q1, r1, self.slope, self.slope_bounds)
        if s is None:  # ignored, as the secant step ignores it
            return
        dq = q1 - q0
        lam = self.forgetting
        # the prior decays with the data but never below a fraction of its weight
        self._sxx = lam * self._sxx + dq * dq
        self._sxy = lam * self._sxy + dq * dq * s
        floor = 0.25 * self.prior_weight
        if self._sxx < floor:
            self._sxy += (floor - self._sxx) * self._prior
            self._sxx = floor
        lo, hi = self.slope_bounds
        self.slope = min(max(self._sxy / self._sxx, lo), hi)

    def observe_points(self, points: list[tuple[float, float]]) -> float:
        """All probes of one frame: update the slope from the pairs, set and return the frame's intercept."""
        for (q0, r0), (q1, r1) in zip(points, points[1:]):
            self.observe_slope(q0, r0, q1, r1)
        q, r = points[-1]
        self.a = self.intercept(q, r)
        return self.a

    def observe_real(self, predicted_est: float, real_bits: float) -> None:
        """After coding: learn the overhead of real bits over the predicted estimate."""
        resid = real_bits - predicted_est
        if not self._offset_seen:
            self.offset, self.offset_dev, self._offset_seen = resid, 0.0, True
            return
        w = self.offset_smoothing
        self.offset_dev += w * (abs(resid - self.offset) - self.offset_dev)
        self.offset += w * (resid - self.offset)

    def est_for_real(self, real_bits: float) -> float:
        """The estimate a frame should have to come out at ``real_bits`` real bits."""
        return real_bits - self.offset


def trusted_slope(q0: float, r0: float, q1: float, r1: float, learned: float,
                  bounds: tuple[float, float]) -> float | None:
    """The slope of two estimates of one frame, or None when the pair is unusable (too close in q, a rate <= 0),
    outside ``bounds`` (non-monotone or wild) or further than ``SECANT_TRUST`` from ``learned`` (noise at a tiny
    frame)."""
    if abs(q1 - q0) < 0.25 or r0 <= 0 or r1 <= 0:
        return None
    s = (math.log(r1) - math.log(r0)) / (q1 - q0)
    if bounds[0] <= s <= bounds[1] and learned / SECANT_TRUST <= s <= learned * SECANT_TRUST:
        return s
    return None


def point_slope(points: list[tuple[float, float]], fallback: float, bounds: tuple[float, float]) -> float:
    """Secant slope of the last two probes when :func:`trusted_slope` trusts it, else ``fallback``."""
    if len(points) >= 2:
        (q0, r0), (q1, r1) = points[-2], points[-1]
        s = trusted_slope(q0, r0, q1, r1, fallback, bounds)
        if s is not None:
            return s
    return fallback


def predict_from_points(q: float, points: list[tuple[float, float]], slope: float) -> float:
    """Estimate at q, extrapolated log-linearly from the nearest probe (exact at a probed q)."""
    qn, rn = min(points, key=lambda p: abs(p[0] - q))
    return math.exp(math.log(max(rn, 1.0)) + slope * (q - qn))


def secant_search(
    probe: Callable[[float], float],
    target_est: float,
    model: LogLinearRQ,
    points: list[tuple[float, float]],
    lo: float = Q_MIN,
    hi: float = Q_MAX,
    max_probes: int = 2,
    retry_tol: float = 0.03,
    exact_tol: float = 0.002,
) -> tuple[float, float]:
    """Find q with estimate ``target_est`` by secant steps on (q, ln R), continuing from ``points`` (the probes
    already made of this frame, appended to in place) and probing at most ``max_probes`` times in all.

    A probe whose result is within ``retry_tol`` of the target is not followed by another probe: the last step
    is taken on the slope alone (its error is the slope error times a small step). Returns (q, predicted
    estimate at q); q is snapped to the stream's grid and lies in [lo, hi].
    """
    lo, hi = snap_q(lo), snap_q(hi)
    lt = math.log(max(target_est, 1.0))
    if not points:
        if max_probes < 1:
            raise ValueError("secant_search needs a probe or a starting point")
        q = snap_q(model.q_for(target_est) if model.a is not None else (lo + hi) / 2, lo, hi)
        points.append((q, probe(q)))
    while True:
        q, r = points[-1]
        slope = point_slope(points, model.slope, model.slope_bounds)
        err = lt - math.log(max(r, 1.0))
        if abs(err) <= exact_tol and lo <= q <= hi:
            return q, r
        q_next = snap_q(q + err / slope, lo, hi)
        if any(abs(q_next - p[0]) < 1e-9 for p in points):
            return q_next, predict_from_points(q_next, points, slope)
        if abs(err) <= retry_tol or len(points) >= max_probes:
            return q_next, predict_from_points(q_next, points, slope)
        points.append((q_next, probe(q_next)))


__all__ = ["DEFAULT_SLOPE", "LogLinearRQ", "point_slope", "predict_from_points", "secant_search", "trusted_slope"]
