"""The entropy model's networks, shared by every EVC size: hyperprior, prior fusion and dual spatial prior."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import nn

from .layers import DepthConvBlock


class HyperEncoder(nn.Sequential):
    """Latent y (N, h, w) -> hyper-latent z (N, h/4, w/4)."""

    def __init__(self, n: int) -> None:
        super().__init__(
            DepthConvBlock(n, n, capped_ffn=True),
            nn.Conv2d(n, n, 3, stride=2, padding=1),
            nn.LeakyReLU(0.01),
            nn.Conv2d(n, n, 3, stride=2, padding=1),
        )


class HyperDecoder(nn.Sequential):
    """Quantised hyper-latent z_hat -> hyperprior features at the latent's resolution."""

    def __init__(self, n: int) -> None:
        super().__init__(
            DepthConvBlock(n, n, capped_ffn=True),
            nn.Conv2d(n, 4 * n, 1),
            nn.PixelShuffle(2),
            DepthConvBlock(n, n, capped_ffn=True),
            nn.Conv2d(n, 4 * n, 1),
            nn.PixelShuffle(2),
            DepthConvBlock(n, n, capped_ffn=True),
        )


class PriorFusion(nn.Sequential):
    """Hyperprior features -> (q_step, scales, means), each with N channels."""

    def __init__(self, n: int) -> None:
        super().__init__(DepthConvBlock(n, 2 * n, capped_ffn=True), DepthConvBlock(2 * n, 3 * n, capped_ffn=True))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # type: ignore[override]
        q_step, scales, means = super().forward(x).chunk(3, dim=1)
        return q_step.clamp_min(0.5), scales, means


class SpatialPrior(nn.Sequential):
    """(step-1 reconstruction, means, scales, q_step) -> refined (scales, means) for step 2."""

    def __init__(self, n: int) -> None:
        super().__init__(
            DepthConvBlock(4 * n, 3 * n, capped_ffn=True),
            DepthConvBlock(3 * n, 2 * n, capped_ffn=True),
            DepthConvBlock(2 * n, 2 * n, capped_ffn=True),
        )

    def forward(  # type: ignore[override]
        self, y_hat_1: torch.Tensor, means: torch.Tensor, scales: torch.Tensor, q_step: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        scales2, means2 = super().forward(torch.cat((y_hat_1, means, scales, q_step), dim=1)).chunk(2, dim=1)
        return scales2, means2


def checkerboard_masks(n: int, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks (N, h, w) of the dual prior's two coding steps.

    Step 1 takes the even checkerboard squares of the first channel half and the odd squares of the second;
    step 2 takes the rest.
    """
    ii = torch.arange(h, device=device).view(h, 1)
    jj = torch.arange(w, device=device).view(1, w)
    even = ((ii + jj) % 2 == 0).unsqueeze(0)
    half = n // 2
    step1 = torch.cat((even.expand(half, h, w), (~even).expand(n - half, h, w)), dim=0)
    return step1, ~step1


@lru_cache(maxsize=16)
def checkerboard_positions(n: int, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat indices into (1, N, h, w) of the two coding steps' positions, in the order their boolean masks
    (:func:`checkerboard_masks`) select them; made once per shape (indexing by masks searches them every call)."""
    return tuple(m.flatten().nonzero().squeeze(1) for m in checkerboard_masks(n, h, w, device))  # type: ignore[return-value]
