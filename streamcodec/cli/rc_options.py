"""Rate-control options shared by the commands that encode: ``--rc``, ``--crf``, ``--bitrate``, ``--maxrate``,
``--bufsize``, ``--vbv-init``, ``--rc-probes``, ``--qmin``/``--qmax``, ``--two-pass``; and the controller they describe
(:func:`streamcodec.ratecontrol.make_controller`).

``--qp`` (defined by each command) stays the constant quality of ``--rc cqp`` and is the starting guess of the
other modes. Without ``--rc`` the mode follows the options: ``--crf`` means crf, ``--bitrate`` means abr, else cqp.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from fractions import Fraction

from ..ratecontrol import MODES, RateController, infer_mode, make_controller, parse_bitrate
from ..ratecontrol.base import Q_MAX, Q_MIN


def bitrate_arg(text: str) -> float:
    """argparse ``type=`` for a bitrate (:func:`~streamcodec.ratecontrol.parse_bitrate`)."""
    try:
        return parse_bitrate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_rc_options(parser: argparse.ArgumentParser, two_pass: bool = True) -> None:
    """Add the rate-control options to an encoding command's parser (``--two-pass`` only if ``two_pass``)."""
    g = parser.add_argument_group("rate control")
    g.add_argument("--rc", choices=MODES,
                   help="rate control: cqp (constant --qp), crf (constant quality --crf), abr (average --bitrate), "
                        "cbr (constant --bitrate through a --bufsize VBV); default from the options given")
    g.add_argument("--crf", type=float, help="crf quality (0..63 trained, -64..96 extended), higher is better (q "
                                             "moves a little with complexity)")
    g.add_argument("--bitrate", type=bitrate_arg, help="target bitrate, e.g. 2M, 500k")
    g.add_argument("--maxrate", type=bitrate_arg, help="VBV fill rate (cbr: default --bitrate; crf/abr: caps)")
    g.add_argument("--bufsize", help="VBV size: 1s, 500ms, 3f (frames) or bits such as 2M (default 1s)")
    g.add_argument("--vbv-init", type=float, default=0.9, help="initial VBV fullness 0..1 (default 0.9)")
    g.add_argument("--rc-probes", type=int, default=2, choices=(0, 1, 2),
                   help="entropy-model rate probes per frame (0: model only; default 2)")
    g.add_argument("--qmin", type=float, default=Q_MIN,
                   help=f"lowest q crf/abr/cbr may use (default {Q_MIN:g}; below 0 the quantisation step is "
                        "extrapolated past the coarsest trained one; 0 keeps to the trained range)")
    g.add_argument("--qmax", type=float, default=Q_MAX, help=f"highest q crf/abr/cbr may use (default {Q_MAX:g})")
    if two_pass:
        g.add_argument("--two-pass", action="store_true",
                       help="abr on a file: a first pass estimates every frame's bits (analysis and one rate "
                            "probe, no coding), the second spreads the bitrate by them (near-constant quality)")


def rc_mode(args: argparse.Namespace) -> str:
    """The mode the options ask for (``--rc``, else inferred)."""
    return getattr(args, "rc", None) or infer_mode(getattr(args, "crf", None), getattr(args, "bitrate", None))


def controller_from_args(
    args: argparse.Namespace, fps: float | Fraction | None, first_pass: Sequence[float] | None = None
) -> RateController | None:
    """The controller the options describe, or None for cqp (the encoder's constant ``--qp``); ``first_pass``
    (every frame's bit estimate) makes two-pass ABR.

    Raises ValueError for inconsistent options (a bitrate without a rate mode, cbr without a bitrate, ...)."""
    qp = getattr(args, "qp", None)
    controller = make_controller(
        rc_mode(args), fps=fps or 25, q=32.0 if qp is None else qp, crf=args.crf, bitrate=args.bitrate,
        maxrate=args.maxrate, bufsize=args.bufsize, vbv_init=args.vbv_init, probes=args.rc_probes,
        q_min=args.qmin, q_max=args.qmax, first_pass=first_pass,
    )  # fmt: skip
    return None if controller.mode == "cqp" else controller


__all__ = ["add_rc_options", "bitrate_arg", "controller_from_args", "rc_mode"]
