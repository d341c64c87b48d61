"""Building blocks of EVC's transforms and entropy model: strided, sub-pixel and depth-wise blocks."""

from __future__ import annotations

import torch
from torch import nn


def subpel_conv1x1(in_ch: int, out_ch: int, upscale: int) -> nn.Sequential:
    """1x1 convolution to ``out_ch * upscale**2`` channels followed by a pixel shuffle."""
    return nn.Sequential(nn.Conv2d(in_ch, out_ch * upscale**2, 1), nn.PixelShuffle(upscale))


class ResBlockStride(nn.Module):
    """Two 3x3 convolutions that halve the resolution, with a strided 1x1 shortcut."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.act1 = nn.LeakyReLU(0.01)
        self.act2 = nn.LeakyReLU(0.1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act2(self.conv2(self.act1(self.conv1(x))))
        return out + self.shortcut(x)


class ResBlockUp(nn.Module):
    """Sub-pixel upsampling by 2 and a 3x3 convolution, with a sub-pixel shortcut."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.up = subpel_conv1x1(in_ch, out_ch, 2)
        self.conv = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.act1 = nn.LeakyReLU(0.01)
        self.act2 = nn.LeakyReLU(0.1)
        self.shortcut = subpel_conv1x1(in_ch, out_ch, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act2(self.conv(self.act1(self.up(x))))
        return out + self.shortcut(x)


class DepthConv(nn.Module):
    """1x1 expand, depth-wise 3x3, 1x1 project, with a 1x1 (or 2x2 strided) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, in_ch, 1, stride=stride)
        self.depth_conv = nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 1)
        self.act = nn.LeakyReLU(0.01)
        if stride == 2:
            self.shortcut: nn.Module = nn.Conv2d(in_ch, out_ch, 2, stride=2)
        elif in_ch != out_ch:
            self.shortcut = nn.Conv2d(in_ch, out_ch, 1)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.act(self.depth_conv(self.act(self.conv1(x)))))
        return out + self.shortcut(x)


class ConvFFN(nn.Module):
    """Point-wise feed-forward network with a residual connection."""

    def __init__(self, ch: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(ch, hidden, 1), nn.LeakyReLU(0.1), nn.Conv2d(hidden, ch, 1), nn.LeakyReLU(0.1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class DepthConvBlock(nn.Sequential):
    """EVC's DepthConvBlock: a :class:`DepthConv` followed by a :class:`ConvFFN`.

    ``capped_ffn`` selects the entropy model's variant whose FFN width is ``max(min(4b, 1024), 2b)``.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, capped_ffn: bool = False) -> None:
        hidden = max(min(4 * out_ch, 1024), 2 * out_ch) if capped_ffn else 4 * out_ch
        super().__init__(DepthConv(in_ch, out_ch, stride), ConvFFN(out_ch, hidden))
