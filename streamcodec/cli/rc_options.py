"""Rate-control options shared by the commands that encode: ``--rc``, ``--crf``, ``--bitrate``, ``--maxrate``,
``--bufsize``, ``--vbv-init``, ``--rc-probes``; and the controller they describe.

``--qp`` (defined by each command) stays the constant quality of ``--rc cqp`` and is the starting guess of the
other modes. Without ``--rc`` the mode follows the options: ``--crf`` means crf, ``--bitrate`` means abr, else cqp.
"""

from __future__ import annotations

import argparse
import re
from fractions import Fraction

from ..ratecontrol import ABRController, CBRController, CRFController, RateController
from ..ratecontrol.vbv import VBV

_SUFFIX = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
_RATE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([kmg]?)(?:b(?:ps|it/s|/s)?)?\s*$", re.IGNORECASE)
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|f)\s*$", re.IGNORECASE)


def parse_bitrate(text: str) -> float:
    """``2M``, ``500k``, ``1.5Mbps``, ``300000`` -> bits per second."""
    m = _RATE.match(str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"expected a bitrate such as 2M, 500k or 300000, got {text!r}")
    value = float(m.group(1)) * _SUFFIX[m.group(2).lower()]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"bitrate must be positive, got {text!r}")
    return value


def parse_bufsize(text: str, maxrate: float, fps: float | Fraction) -> float:
    """``1s``/``500ms`` (time at maxrate), ``3f`` (frames at maxrate/fps) or bits (``2M``, ``400k``) -> bits."""
    m = _SIZE.match(str(text))
    if m:
        value, unit = float(m.group(1)), m.group(2).lower()
        bits = maxrate * {"s": value, "ms": value / 1000, "f": value / float(fps)}[unit]
    else:
        try:
            bits = parse_bitrate(text)
        except argparse.ArgumentTypeError:
            raise ValueError(f"--bufsize: expected 1s, 500ms, 3f or a number of bits, got {text!r}") from None
    if bits <= 0:
        raise ValueError(f"--bufsize must be positive, got {text!r}")
    return bits


def add_rc_options(parser: argparse.ArgumentParser) -> None:
    """Add the rate-control options to an encoding command's parser."""
    g = parser.add_argument_group("rate control")
    g.add_argument("--rc", choices=("cqp", "crf", "abr", "cbr"),
                   help="rate control: cqp (constant --qp), crf (constant quality --crf), abr (average --bitrate), "
                        "cbr (constant --bitrate through a --bufsize VBV); default from the options given")
    g.add_argument("--crf", type=float, help="crf quality 0..63, higher is better (q moves a little with complexity)")
    g.add_argument("--bitrate", type=parse_bitrate, help="target bitrate, e.g. 2M, 500k")
    g.add_argument("--maxrate", type=parse_bitrate, help="VBV fill rate (cbr: default --bitrate; crf/abr: caps)")
    g.add_argument("--bufsize", help="VBV size: 1s, 500ms, 3f (frames) or bits such as 2M (default 1s)")
    g.add_argument("--vbv-init", type=float, default=0.9, help="initial VBV fullness 0..1 (default 0.9)")
    g.add_argument("--rc-probes", type=int, default=2, choices=(0, 1, 2),
                   help="entropy-model rate probes per frame (0: model only; default 2)")


def rc_mode(args: argparse.Namespace) -> str:
    """The mode the options ask for (``--rc``, else inferred)."""
    if getattr(args, "rc", None):
        return args.rc
    if getattr(args, "crf", None) is not None:
        return "crf"
    if getattr(args, "bitrate", None) is not None:
        return "abr"
    return "cqp"


def controller_from_args(args: argparse.Namespace, fps: float | Fraction | None) -> RateController | None:
    """The controller the options describe, or None for cqp (the encoder's constant ``--qp``).

    Raises ValueError for inconsistent options (a bitrate without a rate mode, cbr without a bitrate, ...)."""
    mode = rc_mode(args)
    fps = fps or 25
    bitrate, maxrate, bufsize = args.bitrate, args.maxrate, args.bufsize
    if not 0.0 <= args.vbv_init <= 1.0:
        raise ValueError("--vbv-init must lie in [0, 1]")
    start_q = getattr(args, "qp", None)
    common = {"max_probes": args.rc_probes}
    if start_q is not None:
        common["start_q"] = start_q
    if mode == "cqp":
        if bitrate is not None or maxrate is not None or bufsize is not None or args.crf is not None:
            raise ValueError("--crf/--bitrate/--maxrate/--bufsize need --rc crf, abr or cbr (--rc cqp uses --qp)")
        return None
    if mode == "cbr":
        if bitrate is None:
            bitrate = maxrate
        if bitrate is None:
            raise ValueError("--rc cbr needs --bitrate")
        maxrate = maxrate or bitrate
        if maxrate < bitrate:
            raise ValueError("--maxrate must be at least --bitrate")
        size = parse_bufsize(bufsize or "1s", maxrate, fps)
        return CBRController(bitrate, fps, size, maxrate=maxrate, init=args.vbv_init, **common)
    vbv = None
    if maxrate is not None or bufsize is not None:
        if maxrate is None:
            raise ValueError(f"--bufsize with --rc {mode} needs --maxrate")
        vbv = VBV(parse_bufsize(bufsize or "1s", maxrate, fps), maxrate, fps, args.vbv_init)
    if mode == "crf":
        if args.crf is None:
            raise ValueError("--rc crf needs --crf")
        common.pop("start_q", None)
        common["max_probes"] = min(args.rc_probes, 1) if vbv is None else args.rc_probes
        return CRFController(args.crf, fps, vbv=vbv, **common)
    if bitrate is None:
        raise ValueError("--rc abr needs --bitrate")
    return ABRController(bitrate, fps, vbv=vbv, **common)


__all__ = ["add_rc_options", "controller_from_args", "parse_bitrate", "parse_bufsize", "rc_mode"]
