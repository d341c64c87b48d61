"""EVC's analysis and synthesis transforms at the Small, Medium and Large widths."""

from __future__ import annotations

from torch import nn

from .layers import DepthConvBlock, ResBlockStride, ResBlockUp, subpel_conv1x1

#: Channel widths (c2, c4, c8) at 1/2, 1/4 and 1/8 resolution for each size; the latent has N channels.
WIDTHS: dict[str, tuple[int, int, int]] = {
    "s": (64, 64, 128),
    "m": (128, 128, 192),
    "l": (192, 192, 192),
}


def _widths(size: str) -> tuple[int, int, int]:
    if size not in WIDTHS:
        raise ValueError(f"unknown transform size {size!r}; expected one of {sorted(WIDTHS)}")
    return WIDTHS[size]


class AnalysisTransform(nn.Sequential):
    """RGB image (B, 3, H, W) -> latent (B, N, H/16, W/16)."""

    def __init__(self, size: str, n: int = 192) -> None:
        c2, c4, c8 = _widths(size)
        super().__init__(
            ResBlockStride(3, c2),
            DepthConvBlock(c2, c2),
            ResBlockStride(c2, c4),
            DepthConvBlock(c4, c4),
            ResBlockStride(c4, c8),
            DepthConvBlock(c8, c8),
            nn.Conv2d(c8, n, 3, stride=2, padding=1),
        )


class SynthesisTransform(nn.Sequential):
    """Latent (B, N, H/16, W/16) -> RGB image (B, 3, H, W)."""

    def __init__(self, size: str, n: int = 192) -> None:
        c2, c4, c8 = _widths(size)
        super().__init__(
            DepthConvBlock(n, n),
            ResBlockUp(n, c8),
            DepthConvBlock(c8, c8),
            ResBlockUp(c8, c4),
            DepthConvBlock(c4, c4),
            ResBlockUp(c4, c2),
            DepthConvBlock(c2, c2),
            subpel_conv1x1(c2, 3, 2),
        )
