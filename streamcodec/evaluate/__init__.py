"""Rate–distortion evaluation: metrics, classical baseline codecs, BD-rate, cached sweeps and plots.

The names below load their module on first use, so that training (which needs only :mod:`.metrics`) and the
command line do not import SciPy and Matplotlib, which only BD-rates and plots need.
"""

from __future__ import annotations

import importlib
from typing import Any

_MODULES = {
    "baselines": (
        "BASELINES",
        "Codec",
        "JpegCodec",
        "SvtAv1Codec",
        "WebpCodec",
        "X264Codec",
        "X265Codec",
        "get_baseline",
    ),
    "bdrate": ("bd_psnr", "bd_rate"),
    "metrics": ("bpp", "ms_ssim", "psnr"),
    "plot": ("EVC_PAPER_KODAK", "plot_rd"),
    "rd": ("RDCurve", "RDPoint", "RDResults", "evaluate"),
}
_HOME = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)


__all__ = [
    "BASELINES",
    "EVC_PAPER_KODAK",
    "Codec",
    "JpegCodec",
    "RDCurve",
    "RDPoint",
    "RDResults",
    "SvtAv1Codec",
    "WebpCodec",
    "X264Codec",
    "X265Codec",
    "bd_psnr",
    "bd_rate",
    "bpp",
    "evaluate",
    "get_baseline",
    "ms_ssim",
    "plot_rd",
    "psnr",
]
