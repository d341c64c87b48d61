"""Bjøntegaard delta rate and PSNR with piecewise cubic (PCHIP) interpolation.

This is the "pchip" variant of the JCT-VC/JVET CTC spreadsheet and AOM's tools (Bjøntegaard's VCEG-M33
with the unstable cubic polynomial fit replaced): interpolate each curve with scipy's
:class:`~scipy.interpolate.PchipInterpolator`, integrate both over the interval they share and compare
the means.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.interpolate import PchipInterpolator


def _curve(rate: Sequence[float], psnr: Sequence[float], what: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated (log10 rate, PSNR) arrays of one curve."""
    r, p = np.asarray(rate, dtype=np.float64), np.asarray(psnr, dtype=np.float64)
    if r.shape != p.shape or r.ndim != 1:
        raise ValueError(f"{what}: rate and PSNR need the same length")
    if r.size < 2:
        raise ValueError(f"{what}: need at least 2 rate-distortion points, got {r.size}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(p)) and np.all(r > 0)):
        raise ValueError(f"{what}: rates must be finite and positive, PSNRs finite")
    return np.log10(r), p


def _mean_difference(xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray) -> float:
    """Mean of (curve B - curve A) over the x interval both cover, each curve a PCHIP of y(x)."""
    fa, fb = _pchip(xa, ya, "curve A"), _pchip(xb, yb, "curve B")
    lo = max(fa.x[0], fb.x[0])
    hi = min(fa.x[-1], fb.x[-1])
    if lo >= hi:
        raise ValueError(f"the curves do not overlap (shared interval [{lo:g}, {hi:g}])")
    return float((fb.integrate(lo, hi) - fa.integrate(lo, hi)) / (hi - lo))


def _pchip(x: np.ndarray, y: np.ndarray, what: str) -> PchipInterpolator:
    order = np.argsort(x)
    if np.any(np.diff(x[order]) == 0):
        raise ValueError(f"{what}: two points share the same abscissa, the curve is not a function")
    return PchipInterpolator(x[order], y[order])


def bd_rate(
    rate_a: Sequence[float], psnr_a: Sequence[float], rate_b: Sequence[float], psnr_b: Sequence[float]
) -> float:
    """BD-rate of B relative to A in percent (negative: B needs less rate for the same PSNR).

    log10(rate) is interpolated as a function of PSNR and averaged over the PSNR range both curves cover.
    Rates may be in any unit (bpp, kbit/s) as long as both curves use the same; points may come in any order.
    """
    log_a, pa = _curve(rate_a, psnr_a, "curve A")
    log_b, pb = _curve(rate_b, psnr_b, "curve B")
    return (10.0 ** _mean_difference(pa, log_a, pb, log_b) - 1.0) * 100.0


def bd_psnr(
    rate_a: Sequence[float], psnr_a: Sequence[float], rate_b: Sequence[float], psnr_b: Sequence[float]
) -> float:
    """BD-PSNR of B relative to A in dB (positive: B has higher PSNR at the same rate).

    PSNR is interpolated as a function of log10(rate) and averaged over the log-rate range both curves cover.
    """
    log_a, pa = _curve(rate_a, psnr_a, "curve A")
    log_b, pb = _curve(rate_b, psnr_b, "curve B")
    return _mean_difference(log_a, pa, log_b, pb)
