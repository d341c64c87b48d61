"""Distortion and rate metrics: RGB PSNR, MS-SSIM and bits per pixel."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# Wang, Simoncelli & Bovik 2003, "Multi-scale structural similarity for image quality assessment".
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_WIN_SIZE = 11
_WIN_SIGMA = 1.5
_K1, _K2 = 0.01, 0.03


def _check_pair(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"expected two HxWx3 RGB images of equal shape, got {a.shape} and {b.shape}")


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 RGB HxWx3 images, MSE over all pixels and channels, peak 255.

    Identical images give ``inf``.
    """
    _check_pair(a, b)
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0.0 else 10.0 * math.log10(255.0**2 / mse)


def bpp(nbytes: int, h: int, w: int) -> float:
    """Bits per pixel of ``nbytes`` for an ``h`` x ``w`` image."""
    return 8.0 * nbytes / (h * w)


def _to_tensor(img: np.ndarray) -> torch.Tensor:
    """HxWx3 array (uint8, or float in [0, 1]) -> contiguous 1x3xHxW float32 tensor in [0, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(img)).to(torch.float32)
    if img.dtype == np.uint8:
        x = x / 255.0
    return x.permute(2, 0, 1).unsqueeze(0).contiguous()


def _gaussian_blur(x: torch.Tensor, win: torch.Tensor) -> torch.Tensor:
    # Separable "valid" Gaussian filter per channel (groups=C), as in the reference implementation.
    c = x.shape[1]
    x = F.conv2d(x, win.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, win.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _ssim_terms(x: torch.Tensor, y: torch.Tensor, win: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean SSIM and mean contrast-structure term, data range 1."""
    c1, c2 = _K1**2, _K2**2
    # One filtering call for the five local moments.
    mu_x, mu_y, e_xx, e_yy, e_xy = _gaussian_blur(torch.cat([x, y, x * x, y * y, x * y], dim=1), win).chunk(5, 1)
    sigma_xx, sigma_yy, sigma_xy = e_xx - mu_x**2, e_yy - mu_y**2, e_xy - mu_x * mu_y
    cs_map = (2 * sigma_xy + c2) / (sigma_xx + sigma_yy + c2)
    ssim_map = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1) * cs_map
    return ssim_map.mean(dim=(2, 3)), cs_map.mean(dim=(2, 3))


def ms_scales(h: int, w: int) -> int:
    """How many MS-SSIM scales (at most 5) fit an ``h`` x ``w`` image.

    Each scale halves the sides (rounding up) and needs the 11-pixel window to fit, so the standard
    5 scales need a side of at least 161 pixels, the bound ``pytorch_msssim`` asserts.
    """
    scales = 0
    side = min(h, w)
    while scales < len(MS_SSIM_WEIGHTS) and side >= _WIN_SIZE:
        scales += 1
        side = (side + 1) // 2
    if scales == 0:
        raise ValueError(f"MS-SSIM needs images of at least {_WIN_SIZE}x{_WIN_SIZE} pixels, got {h}x{w}")
    return scales


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM of two RGB HxWx3 images (uint8, or float in [0, 1]), data range 1.

    Standard 5-scale MS-SSIM (Wang 2003 weights, 11-tap Gaussian window with sigma 1.5, 2x2 average-pool
    downsampling), computed per channel and averaged over R, G, B like ``pytorch_msssim``/CompressAI, which
    Kodak results are usually reported with. Images with a side under 161 pixels use fewer scales
    (:func:`ms_scales`), the first weights renormalised to sum to 1, rather than padding, which would
    invent structure.
    """
    _check_pair(a, b)
    return float(ms_ssim_tensor(_to_tensor(a), _to_tensor(b)))


def ms_ssim_tensor(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """MS-SSIM per image of two (B, 3, H, W) batches in [0, 1], as :func:`ms_ssim`: differentiable, so
    training can use ``1 - ms_ssim_tensor`` as its distortion. Returns a float64 tensor (B,)."""
    scales = ms_scales(x.shape[-2], x.shape[-1])
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64, device=x.device)
    if scales < len(MS_SSIM_WEIGHTS):
        weights = weights / weights.sum()  # the published 5 weights are used as is (they sum to 1.0001)
    coords = torch.arange(_WIN_SIZE, dtype=x.dtype, device=x.device) - _WIN_SIZE // 2
    win = torch.exp(-(coords**2) / (2 * _WIN_SIGMA**2))
    win = win / win.sum()
    terms = []
    for scale in range(scales):
        ssim_c, cs_c = _ssim_terms(x, y, win)
        if scale == scales - 1:
            terms.append(ssim_c)
        else:
            terms.append(cs_c)
            # Odd sides are padded by one before pooling, as in pytorch_msssim.
            pad = [x.shape[2] % 2, x.shape[3] % 2]
            x, y = F.avg_pool2d(x, 2, padding=pad), F.avg_pool2d(y, 2, padding=pad)
    stacked = torch.relu(torch.stack(terms)).to(torch.float64)  # scales x B x C
    per_channel = torch.prod(stacked ** weights.view(-1, 1, 1), dim=0)
    return per_channel.mean(dim=1)
