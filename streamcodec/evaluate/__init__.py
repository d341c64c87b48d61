"""Rate–distortion evaluation: metrics, classical baseline codecs, BD-rate, cached sweeps and plots."""

from .baselines import BASELINES, Codec, JpegCodec, SvtAv1Codec, WebpCodec, X264Codec, X265Codec, get_baseline
from .bdrate import bd_psnr, bd_rate
from .metrics import bpp, ms_ssim, psnr
from .plot import EVC_PAPER_KODAK, plot_rd
from .rd import RDCurve, RDPoint, RDResults, evaluate

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
