"""PSNR-vs-bpp plots of rate–distortion results."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from .rd import RDResults

# Kodak RGB PSNR of EVC (Wang et al., "EVC: Towards Real-Time Neural Image Compression with Mask
# Decay", ICLR 2023) as reported in the paper, per model size: (bpp, PSNR dB).
EVC_PAPER_KODAK: dict[str, tuple[list[float], list[float]]] = {
    "EVC-SS (paper)": ([0.339, 0.514, 0.750, 1.001], [32.32, 34.24, 36.09, 37.40]),
    "EVC-MM (paper)": ([0.333, 0.506, 0.738, 0.987], [32.47, 34.43, 36.35, 37.75]),
    "EVC-LL (paper)": ([0.328, 0.501, 0.732, 0.981], [32.48, 34.48, 36.42, 37.86]),
}


def plot_rd(
    results: RDResults,
    path: Path,
    reference_curves: dict[str, tuple[list[float], list[float]]] | None = None,
    title: str = "Kodak",
) -> None:
    """Save a PSNR-vs-bpp plot: one solid line per codec's average curve, ``reference_curves`` dashed.

    ``reference_curves`` maps a label to (bpp list, PSNR list), e.g. :data:`EVC_PAPER_KODAK`. The image
    format follows ``path``'s suffix (png, pdf, svg).
    """
    # A bare Figure rather than pyplot: no global state, and savefig renders with Agg without a display.
    fig = Figure(figsize=(7, 5), layout="constrained")
    ax = fig.add_subplot()
    for name, curve in results.curves().items():
        ax.plot(curve.bpp, curve.psnr, marker="o", markersize=3, label=name)
    for label, (rates, psnrs) in (reference_curves or {}).items():
        ax.plot(rates, psnrs, linestyle="--", marker="x", markersize=4, label=label)
    ax.set_xlabel("bits per pixel")
    ax.set_ylabel("RGB PSNR (dB)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=150)
