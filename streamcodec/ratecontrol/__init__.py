"""Per-frame rate control for streamcodec: CQP, CRF, ABR (one or two passes) and CBR with a leaky-bucket VBV.

Pure Python (no torch, no I/O). A controller implements :class:`~streamcodec.ratecontrol.base.RateController`:
``choose(probe, frame_index) -> q`` with ``probe(q) -> estimated bits`` of the current frame, then
``update(q, real_bits)``. :func:`make_controller` builds one from user settings;
:class:`streamcodec.codec.stream.FrameEncoder` drives one when given ``controller=``.
"""

from .base import Decision, Probe, RateController, snap_q
from .model import DEFAULT_SLOPE, LogLinearRQ, secant_search
from .modes import (
    ABRController,
    CBRController,
    CQPController,
    CRFController,
    ModelController,
    TwoPassABRController,
)
from .settings import MODES, infer_mode, make_controller, parse_bitrate, parse_bufsize
from .vbv import VBV, simulate

__all__ = [
    "ABRController",
    "CBRController",
    "CQPController",
    "CRFController",
    "DEFAULT_SLOPE",
    "Decision",
    "LogLinearRQ",
    "MODES",
    "ModelController",
    "Probe",
    "RateController",
    "TwoPassABRController",
    "VBV",
    "infer_mode",
    "make_controller",
    "parse_bitrate",
    "parse_bufsize",
    "secant_search",
    "simulate",
    "snap_q",
]
