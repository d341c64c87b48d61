"""Building a controller from user settings: the one place that turns ``mode``, ``bitrate``, ``bufsize``, ...
into a :class:`~streamcodec.ratecontrol.base.RateController`, shared by ``streamcodec encode --rc`` and the
OpenCV-style writer.

Rates are bits per second (numbers, or text such as ``2M``, ``500k``, ``1.5Mbps``; a capital ``B`` means bytes, as
in FFmpeg: ``250kB/s`` is ``2M``); a VBV size is bits, or text:
``1s``/``500ms`` (time at ``maxrate``), ``3f`` (frames at ``maxrate / fps``) or bits (``400k``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

from .base import Q_MAX, Q_MIN, RateController
from .modes import ABRController, CBRController, CQPController, CRFController, TwoPassABRController
from .vbv import VBV

MODES = ("cqp", "crf", "abr", "cbr")

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
#: number, SI prefix (any case), unit: b/bps/bit/s/b/s for bits, B/Bps/B/s for bytes (case matters only here)
_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMgG]?)(b(?:ps|it/s|/s)?|B(?:ps|/s)?)?\s*$")
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|f)\s*$", re.IGNORECASE)


def parse_bitrate(text: str | float) -> float:
    """``2M``, ``500k``, ``1.5Mbps``, ``300000``, ``250kB/s`` (bytes) or a number -> bits per second."""
    if isinstance(text, int | float):
        value = float(text)
    else:
        m = _RATE.match(str(text))
        if not m:
            raise ValueError(f"expected a bitrate such as 2M, 500k or 300000, got {text!r}")
        value = float(m.group(1)) * _SUFFIX[m.group(2).lower()] * (8 if (m.group(3) or "").startswith("B") else 1)
    if not value > 0:
        raise ValueError(f"bitrate must be positive, got {text!r}")
    return value


def parse_bufsize(text: str | float, maxrate: float, fps: float | Fraction) -> float:
    """``1s``/``500ms`` (time at maxrate), ``3f`` (frames at maxrate/fps) or bits (``2M``, ``400k``, a number)
    -> bits."""
    m = _SIZE.match(text) if isinstance(text, str) else None
    if m:
        value, unit = float(m.group(1)), m.group(2).lower()
        bits = maxrate * {"s": value, "ms": value / 1000, "f": value / float(fps)}[unit]
    else:
        try:
            bits = parse_bitrate(text)
        except ValueError:
            raise ValueError(f"bufsize: expected 1s, 500ms, 3f or a number of bits, got {text!r}") from None
    if bits <= 0:
        raise ValueError(f"bufsize must be positive, got {text!r}")
    return bits


def infer_mode(crf: float | None = None, bitrate: float | str | None = None) -> str:
    """The mode settings ask for when none is named: a crf means crf, a bitrate abr, else cqp."""
    if crf is not None:
        return "crf"
    return "abr" if bitrate is not None else "cqp"


def make_controller(
    mode: str | None = None,
    *,
    fps: float | Fraction,
    q: float = 32.0,
    crf: float | None = None,
    bitrate: float | str | None = None,
    maxrate: float | str | None = None,
    bufsize: float | str | None = None,
    vbv_init: float = 0.9,
    probes: int = 2,
    q_min: float = Q_MIN,
    q_max: float = Q_MAX,
    first_pass: Sequence[float] | None = None,
    history: int | None = 0,
) -> RateController:
    """The controller for ``mode`` (``cqp``, ``crf``, ``abr``, ``cbr``; None: :func:`infer_mode`).

    ``q`` is the constant quality of cqp and the starting guess of abr/cbr; ``crf`` the quality of crf.
    ``bitrate`` is the abr/cbr target. ``maxrate`` and ``bufsize`` describe the VBV: cbr always has one
    (``maxrate`` defaults to ``bitrate``, ``bufsize`` to ``1s``); crf and abr get one (capped modes) when
    ``maxrate`` is given. ``vbv_init`` is the buffer's initial fullness (0..1), ``probes`` the entropy-model
    rate probes per frame (0..2; crf uses at most 1 without a VBV), ``q_min``/``q_max`` the q range crf, abr
    and cbr may use (default: the codec's extended range, -64..96), ``first_pass`` (abr only) every frame's
    bit estimate from a first pass, for two-pass ABR (:class:`TwoPassABRController`), ``history`` how many
    per-frame decisions the controller keeps (None: all). Raises ValueError for settings that do not fit together.
    """
    mode = mode or infer_mode(crf, bitrate)
    if mode not in MODES:
        raise ValueError(f"rate-control mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not fps or float(fps) <= 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    if not 0.0 <= vbv_init <= 1.0:
        raise ValueError(f"VBV initial fullness must lie in [0, 1], got {vbv_init}")
    if probes not in (0, 1, 2):
        raise ValueError(f"probes must be 0, 1 or 2, got {probes}")
    if first_pass is not None and mode != "abr":
        raise ValueError(f"a first pass (two-pass encoding) is for abr, not {mode}")
    rate = None if bitrate is None else parse_bitrate(bitrate)
    peak = None if maxrate is None else parse_bitrate(maxrate)
    if mode == "cqp":
        if rate is not None or peak is not None or bufsize is not None or crf is not None:
            raise ValueError("crf, bitrate, maxrate and bufsize need the crf, abr or cbr mode (cqp uses q)")
        return CQPController(q, fps, history=history)
    common = {"max_probes": probes, "history": history, "q_min": q_min, "q_max": q_max}
    if mode == "cbr":
        rate = rate or peak
        if rate is None:
            raise ValueError("cbr needs a bitrate")
        peak = peak or rate
        if peak < rate:
            raise ValueError("maxrate must be at least the bitrate")
        size = parse_bufsize("1s" if bufsize is None else bufsize, peak, fps)
        return CBRController(rate, fps, size, maxrate=peak, init=vbv_init, start_q=q, **common)
    vbv = None
    if peak is not None or bufsize is not None:
        if peak is None:
            raise ValueError(f"a bufsize with {mode} needs a maxrate (the VBV's fill rate)")
        vbv = VBV(parse_bufsize("1s" if bufsize is None else bufsize, peak, fps), peak, fps, vbv_init)
    if mode == "crf":
        if crf is None:
            raise ValueError("crf needs a crf quality")
        common["max_probes"] = min(probes, 1) if vbv is None else probes
        return CRFController(crf, fps, vbv=vbv, **common)
    if rate is None:
        raise ValueError("abr needs a bitrate")
    if first_pass is not None:
        return TwoPassABRController(rate, fps, first_pass, vbv=vbv, start_q=q, **common)
    return ABRController(rate, fps, vbv=vbv, start_q=q, **common)


__all__ = ["MODES", "infer_mode", "make_controller", "parse_bitrate", "parse_bufsize"]
