"""The four modes: CQP, CRF (optionally VBV-capped), ABR (optionally VBV-capped) and CBR (always with a VBV).

Every model-driven mode works the same way on each frame:

1. a per-frame **budget** in real bits (mode-specific: ABR from the bits still owed over a smoothing window,
   CBR from the decoder-buffer fullness, CRF has none), weighted by the frame's complexity relative to the
   recent average (``qcomp``: 0 = same bits for every frame, 1 = bits follow complexity, i.e. constant q);
2. a first probe at the q the model predicts for that budget (the previous frame's intercept, clamped to
   ``max_dq`` of the previous q). The probe measures this frame's complexity; a jump of more than
   ``cut_threshold`` in ln-rate at equal q is a **scene cut**: the complexity average restarts and the q clamp
   is lifted for this frame;
3. at most one more probe and a final secant step (:func:`~streamcodec.ratecontrol.model.secant_search`);
4. with a VBV, a hard cap: the frame's predicted real size (estimate + learned overhead + 3 spreads) must fit in
   95 % of the buffer's fullness; if the search result does not, the clamp is lifted and q is searched down
   (up to ``rescue_probes`` extra probes, the only case where more than two probes are made);
5. after coding, :meth:`update` learns the overhead and the intercept, and steps the VBV.

``probe`` may be None (no estimate available, e.g. a caller without features): the q then comes from the model
alone and the intercept is learned from the real size; tests and the benchmark use this to show what the
probes buy.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Sequence
from fractions import Fraction

from .base import Q_MAX, Q_MIN, Decision, Probe, RateController, snap_q
from .model import DEFAULT_SLOPE, LogLinearRQ, predict_from_points, secant_search
from .vbv import VBV

#: the share of the VBV fullness a frame may be planned to use (the rest absorbs prediction error)
VBV_SAFETY = 0.95
#: weight of each frame's duration in the running mean :attr:`ModelController.frame_duration`
DURATION_SMOOTHING = 0.3


class CQPController(RateController):
    """Constant q: no probes, no model (the controller form of ``--qp``)."""

    mode = "cqp"

    def __init__(self, q: float, fps: float | Fraction, history: int | None = 0) -> None:
        super().__init__(fps, history)
        self.q = snap_q(q)

    def choose(self, probe: Probe | None, frame_index: int) -> float:
        self._begin(frame_index, self.q)
        return self.q

    def describe(self) -> dict:
        return {**super().describe(), "q": self.q}


class ModelController(RateController):
    """Shared machinery of the model-driven modes (see the module docstring)."""

    #: complexity weighting of the budget (see module docstring)
    qcomp = 0.0

    def __init__(
        self,
        fps: float | Fraction,
        *,
        vbv: VBV | None = None,
        max_probes: int = 2,
        max_dq: float = 10.0,
        cut_threshold: float = 0.25,
        complexity_window: float = 2.0,
        start_q: float = 32.0,
        slope: float = DEFAULT_SLOPE,
        retry_tol: float = 0.03,
        rescue_probes: int = 3,
        q_min: float = Q_MIN,
        q_max: float = Q_MAX,
        history: int | None = 0,
    ) -> None:
        super().__init__(fps, history)
        if max_probes < 0 or rescue_probes < 0:
            raise ValueError("probe counts must be >= 0")
        if max_dq <= 0:
            raise ValueError("max_dq must be positive")
        if not Q_MIN <= q_min < q_max <= Q_MAX:
            raise ValueError(f"the q range must satisfy {Q_MIN:g} <= q_min < q_max <= {Q_MAX:g}, "
                             f"got {q_min:g}..{q_max:g}")
        #: the q range searched (default: the codec's whole extended range)
        self.q_min, self.q_max = snap_q(q_min), snap_q(q_max)
        self.vbv = vbv
        self.max_probes = max_probes
        self.max_dq = max_dq
        self.cut_threshold = cut_threshold
        self.complexity_frames = max(1.0, complexity_window * self.fps)
        self.start_q = snap_q(start_q, self.q_min, self.q_max)
        self.retry_tol = retry_tol
        self.rescue_probes = rescue_probes
        self.model = LogLinearRQ(slope=slope)
        self.q_prev: float | None = None
        #: running mean of the frame intercepts (complexity), restarted at scene cuts
        self.mean_a: float | None = None
        self._a_frame: float | None = None
        #: a cut was seen after coding (no probes): lift the q clamp for the next frame
        self._free_next = False
        self.probe_count = 0
        #: the media time a frame stands for, in seconds: 1/fps, then a running mean of the durations
        #: :meth:`update` reports (dropped frames and variable frame rates make frames last longer)
        self.frame_duration = 1.0 / self.fps
        self.scene_cuts = 0

    # -- mode hooks -----------------------------------------------------------------------------------------
    def base_budget(self) -> float | None:
        """This frame's budget in real bits before complexity weighting (None: q-driven mode)."""
        raise NotImplementedError

    def q_target(self, a: float | None) -> float | None:
        """For q-driven modes (CRF): the q to code at given this frame's intercept."""
        return None

    # -- helpers ---------------------------------------------------------------------------------------------
    def _budget(self, a: float | None) -> float | None:
        base = self.base_budget()
        if base is None:
            return None
        if a is not None and self.mean_a is not None and self.qcomp:
            base *= math.exp(max(-0.7, min(0.7, self.qcomp * (a - self.mean_a))))
        return max(base, 1.0)

    def _cap_est(self) -> float | None:
        """The most the entropy estimate of this frame may be, for the VBV (None: no VBV)."""
        if self.vbv is None:
            return None
        m = self.model
        return VBV_SAFETY * self.vbv.fullness - m.offset - 3 * m.offset_dev

    def _window(self, free: bool) -> tuple[float, float]:
        if free or self.q_prev is None:
            return self.q_min, self.q_max
        return max(self.q_min, self.q_prev - self.max_dq), min(self.q_max, self.q_prev + self.max_dq)

    # -- the per-frame decision ------------------------------------------------------------------------------
    def choose(self, probe: Probe | None, frame_index: int) -> float:
        m = self.model
        use_probe = probe is not None and self.max_probes > 0
        points: list[tuple[float, float]] = []
        snapped = _SnappedProbe(probe) if probe is not None else None
        dec = self._begin(frame_index, self.start_q)
        cap_est = self._cap_est()
        dec.buffer_before = self.vbv.fullness if self.vbv is not None else None

        # first guess from the previous frame's intercept
        lo, hi = self._window(self._free_next)
        self._free_next = False
        budget = self._budget(m.a)
        q_guess = self.q_target(m.a)
        if q_guess is None:
            if m.a is None:
                q_guess = self.start_q
            else:
                target = m.est_for_real(budget) if budget is not None else None
                if cap_est is not None:
                    target = min(target, cap_est) if target is not None else None
                q_guess = m.q_for(max(target, 1.0)) if target is not None else self.start_q
        q = snap_q(q_guess, lo, hi)
        a_frame = m.a
        cut = False

        if use_probe:
            points.append((q, snapped(q)))
            a_frame = m.intercept(*points[-1])
            cut = self._a_frame is not None and abs(a_frame - self._a_frame) > self.cut_threshold
            if cut:
                self.mean_a = a_frame
            lo, hi = self._window(cut or m.a is None)
            budget = self._budget(a_frame)
            q_fixed = self.q_target(a_frame)
            if q_fixed is not None:  # q-driven: no search, one probe was the complexity measurement
                q = snap_q(q_fixed, lo, hi)
                pred = predict_from_points(q, points, m.slope)
            else:
                target = m.est_for_real(budget)
                if cap_est is not None:
                    target = min(target, cap_est)
                q, pred = secant_search(snapped, target, m, points, lo, hi, self.max_probes, self.retry_tol)
        else:
            pred = m.rate(q) if m.a is not None else None

        # VBV: the planned size must fit; search down past the clamp when it does not
        if cap_est is not None and pred is not None and pred > cap_est:
            if use_probe:
                # past the clamp, probing until the estimate is within 0.2 % of 98 % of the cap
                allowed = len(points) + self.rescue_probes
                q, pred = secant_search(snapped, max(cap_est * 0.98, 1.0), m, points, self.q_min, min(hi, q), allowed,
                                        0.0)
            else:
                q = snap_q(m.q_for(max(cap_est * 0.98, 1.0)), self.q_min, q)
                pred = m.rate(q)

        if points:
            self._a_frame = m.observe_points(points)
        dec.q = q
        dec.budget = budget
        dec.predicted_bits = None if pred is None else pred + m.offset
        dec.probes = points
        dec.scene_cut = cut
        if cut:
            self.scene_cuts += 1
        return q

    def _after_frame(self, dec: Decision, duration: float) -> None:
        self.frame_duration += DURATION_SMOOTHING * (duration - self.frame_duration)
        m = self.model
        if dec.probes:
            pred = predict_from_points(dec.q, dec.probes, m.slope)
            m.observe_real(pred, dec.real_bits)
            a = self._a_frame
        else:
            if m.a is not None:
                m.observe_real(m.rate(dec.q), dec.real_bits)
            a = m.intercept(dec.q, max(dec.real_bits - m.offset, 1.0))
            cut = self._a_frame is not None and abs(a - self._a_frame) > self.cut_threshold
            if cut:
                self.mean_a = a
                self.scene_cuts += 1
                dec.scene_cut = True
                self._free_next = True
            m.a = a
            self._a_frame = a
        if a is not None:
            if self.mean_a is None:
                self.mean_a = a
            else:
                self.mean_a += (a - self.mean_a) / self.complexity_frames
        self.q_prev = dec.q
        self.probe_count += len(dec.probes)
        if self.vbv is not None:
            self.vbv.step(dec.real_bits, duration)

    def describe(self) -> dict:
        out = {**super().describe(), "qcomp": self.qcomp, "max_probes": self.max_probes, "max_dq": self.max_dq,
               "q_range": [self.q_min, self.q_max]}
        if self.vbv is not None:
            out["vbv"] = {"bufsize": self.vbv.bufsize, "maxrate": self.vbv.maxrate, "init": self.vbv.init}
        return out


class _SnappedProbe:
    def __init__(self, probe: Probe) -> None:
        self.probe = probe

    def __call__(self, q: float) -> float:
        return float(self.probe(snap_q(q)))


class CRFController(ModelController):
    """Constant quality: q = crf, moved by at most ``max_adjust`` against the frame's complexity relative to the
    recent average (complex frames a little lower, simple ones a little higher, ``strength`` of the way to equal
    bits); optionally capped by a VBV (capped CRF). One probe per frame (the complexity measurement)."""

    mode = "crf"

    def __init__(self, crf: float, fps: float | Fraction, *, strength: float = 0.2, max_adjust: float = 4.0,
                 **kwargs) -> None:
        kwargs.setdefault("max_probes", 1)
        kwargs.setdefault("start_q", crf)
        super().__init__(fps, **kwargs)
        if not self.q_min <= crf <= self.q_max:
            raise ValueError(f"crf must lie in [{self.q_min:g}, {self.q_max:g}]")
        self.crf = snap_q(crf)
        self.strength = strength
        self.max_adjust = max_adjust

    def base_budget(self) -> float | None:
        return None

    def q_target(self, a: float | None) -> float | None:
        if a is None or self.mean_a is None:
            return self.crf
        adj = -self.strength * (a - self.mean_a) / self.model.slope
        return self.crf + max(-self.max_adjust, min(self.max_adjust, adj))

    def _window(self, free: bool) -> tuple[float, float]:
        return self.q_min, self.q_max

    def describe(self) -> dict:
        return {**super().describe(), "crf": self.crf, "strength": self.strength}


class ABRController(ModelController):
    """Average bitrate: each frame's budget is the nominal ``bitrate/fps`` minus the bits owed (spent minus
    allowed so far) spread over ``window`` seconds, weighted by complexity (``qcomp``); optionally VBV-capped."""

    mode = "abr"
    qcomp = 0.8

    def __init__(self, bitrate: float, fps: float | Fraction, *, window: float = 1.0, qcomp: float | None = None,
                 **kwargs) -> None:
        super().__init__(fps, **kwargs)
        if bitrate <= 0:
            raise ValueError("bitrate must be positive")
        self.bitrate = float(bitrate)
        self.window_frames = max(1.0, window * self.fps)
        if qcomp is not None:
            self.qcomp = qcomp
        self.allowed_bits = 0.0

    @property
    def frame_bits(self) -> float:
        """The bits one frame may spend at the target rate."""
        return self.bitrate * self.frame_duration

    def base_budget(self) -> float:
        owed = self.total_bits - self.allowed_bits
        r = self.frame_bits
        return min(max(r - owed / self.window_frames, 0.5 * r), 2.0 * r)

    def _allowance(self, dec: Decision, duration: float) -> float:
        """The bits frame ``dec`` was allowed (what the bits owed are counted against)."""
        return self.bitrate * duration

    def _after_frame(self, dec: Decision, duration: float) -> None:
        self.allowed_bits += self._allowance(dec, duration)
        super()._after_frame(dec, duration)

    def describe(self) -> dict:
        return {**super().describe(), "bitrate": self.bitrate, "window_frames": self.window_frames}


class TwoPassABRController(ABRController):
    """Average bitrate with the whole clip's complexity known in advance (offline encoding).

    ``first_pass`` holds every frame's entropy-model estimate at one q (``FrameEncoder.estimate_bits``); frame
    i's budget is the nominal ``bitrate/fps`` times ``first_pass[i] ** qcomp`` over the clip's mean of that
    weight, corrected by the bits owed against that plan (over ``window`` seconds, as one-pass ABR repays its
    debt). One-pass ABR cannot see a complex stretch coming: it repays what the stretch costs from the frames
    around it, and quality swings with content. With the first pass every frame gets its share of the whole
    clip's bits; at the default ``qcomp = 1`` the shares follow the frames' rates at one q, so q stays nearly
    constant (the CQP whose rate is the target, found without coding the clip twice)."""

    qcomp = 1.0

    def __init__(self, bitrate: float, fps: float | Fraction, first_pass: Sequence[float], **kwargs) -> None:
        super().__init__(bitrate, fps, **kwargs)
        if not first_pass or min(first_pass) <= 0:
            raise ValueError("first_pass must hold a positive bit estimate for every frame")
        ref = statistics.fmean(math.log(e) for e in first_pass)
        weights = [math.exp(self.qcomp * (math.log(e) - ref)) for e in first_pass]
        mean = statistics.fmean(weights)
        #: per-frame share of the nominal frame budget (mean 1); frames past the first pass get 1
        self.shares = [w / mean for w in weights]

    def _share(self, index: int) -> float:
        return self.shares[index] if 0 <= index < len(self.shares) else 1.0

    def _budget(self, a: float | None) -> float | None:
        index = self.last.frame_index if self.last is not None else self.frames
        return max(self.base_budget() * self._share(index), 1.0)

    def _allowance(self, dec: Decision, duration: float) -> float:
        # the plan, not a flat rate: a complex stretch spending its planned share owes nothing
        return self.bitrate * duration * self._share(dec.frame_index)

    def describe(self) -> dict:
        return {**super().describe(), "passes": 2, "first_pass_frames": len(self.shares)}


class CBRController(ModelController):
    """Constant bitrate through a leaky-bucket VBV.

    The budget is one channel interval of bits plus the excess of the buffer over its target fullness
    (``init``), spread over ``drain`` frames (half the buffer's duration, at least 2 frames, at most one second;
    an excess is spent at most ``max_spend`` faster than the channel), weighted a little by complexity
    (``qcomp``), then capped so that the trailing one-second window stays below ``1 + window_tol`` times the rate,
    and never below what keeps the buffer from overflowing. The VBV cap (see :class:`ModelController`) comes last:
    a frame underflows only when even the lowest q (``q_min``) does not fit."""

    mode = "cbr"
    #: bench-rc, intel_car at 192x108: 0.4 let the 1-s windows fall to -13 % as the cars left; 0.2 keeps them
    #: within -4.5..+4 % (1-s buffer) and -2.3..+1.6 % (3 frames)
    qcomp = 0.2

    def __init__(self, bitrate: float, fps: float | Fraction, bufsize: float, *, maxrate: float | None = None,
                 init: float = 0.9, qcomp: float | None = None, max_spend: float = 0.05, window_tol: float = 0.08,
                 **kwargs) -> None:
        maxrate = float(maxrate or bitrate)
        vbv = VBV(bufsize, maxrate, fps, init)
        if bufsize < vbv.inflow:
            raise ValueError(f"bufsize {bufsize:.0f} bits is less than one frame's share of the rate "
                             f"({vbv.inflow:.0f} bits): CBR needs at least one frame of buffer")
        super().__init__(fps, vbv=vbv, **kwargs)
        self.bitrate = float(bitrate)
        if qcomp is not None:
            self.qcomp = qcomp
        self.target_level = init * bufsize
        self.drain_frames = min(max(2.0, 0.5 * bufsize / vbv.inflow), self.fps)
        self.max_spend = max_spend
        self.window_tol = window_tol
        self._window_frames = max(1, round(self.fps))
        self._recent: deque[int] = deque(maxlen=self._window_frames - 1)

    def base_budget(self) -> float:
        vbv = self.vbv
        r = self.bitrate * self.frame_duration
        # below its target the buffer is refilled as fast as ``drain`` allows (safety); above it, it is spent
        # at most ``max_spend`` faster than the channel
        return r + min((vbv.fullness - self.target_level) / self.drain_frames, self.max_spend * r)

    def _budget(self, a: float | None) -> float | None:
        budget = super()._budget(a)
        vbv = self.vbv
        r = self.bitrate * self.frame_duration
        n, spent = self._window_frames, sum(self._recent)
        if len(self._recent) == n - 1:
            # a full trailing second: keep it below (1 + window_tol) x the rate. (No floor: a floor asks for big
            # frames after a starved stretch, and the window cap then echoes them one second later.)
            budget = min(budget, (1 + self.window_tol) * n * r - spent)
        # never plan filler: use at least what keeps the buffer from overflowing
        return max(budget, vbv.fullness + vbv.inflow - vbv.bufsize, 0.1 * r)

    def _after_frame(self, dec: Decision, duration: float) -> None:
        self._recent.append(dec.real_bits)
        super()._after_frame(dec, duration)

    def describe(self) -> dict:
        return {**super().describe(), "bitrate": self.bitrate, "drain_frames": self.drain_frames,
                "window_tol": self.window_tol}


__all__ = ["ABRController", "CBRController", "CQPController", "CRFController", "ModelController",
           "TwoPassABRController", "VBV_SAFETY"]
