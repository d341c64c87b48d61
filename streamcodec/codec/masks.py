"""RDONet block masks: which latent level carries each 64x64 block, from pixel variance, and their coding.

Level 0 is the finest latent (1/16 of the image), level 1 a coarser one (1/32), level 2 the coarsest (1/64),
so a 64x64 block is 4x4, 2x2 or 1x1 latent positions. The zero-pass mask (Brand et al., RDONet) splits a block
to a finer level when its pixel variance exceeds a threshold; thresholds come from training data
(:func:`calibrate_thresholds`). A mask is coded in a frame's payload with the per-frame level counts and an
ANS stream under the categorical model they define.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CorruptStreamError
from .coder import TableBank

BLOCK = 64
LEVELS = 3
#: Latent positions per block side at each level (latents at 1/16, 1/32 and 1/64).
LEVEL_FACTORS = (4, 2, 1)
#: Default shares of blocks (finest, middle, coarsest) that calibration aims at.
DEFAULT_SHARES = (1 / 3, 1 / 3, 1 / 3)
_COUNTS = struct.Struct("<HHH")


def block_variance(x: torch.Tensor) -> torch.Tensor:
    """Pixel variance of every 64x64 block of (B, 3, H, W) images (H, W multiples of 64), averaged over the
    colour channels: (B, H/64, W/64), on the images' device."""
    mean = F.avg_pool2d(x, BLOCK)
    mean_sq = F.avg_pool2d(x * x, BLOCK)
    return (mean_sq - mean * mean).clamp_min(0).mean(dim=1)


def variance_levels(variance: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """Levels from block variances: 2 (coarsest) up to ``thresholds[0]``, 1 up to ``thresholds[1]``, else 0."""
    coarse, fine = thresholds[0], thresholds[1]
    levels = torch.full(variance.shape, 2, dtype=torch.int64, device=variance.device)
    levels[variance > coarse] = 1
    levels[variance > fine] = 0
    return levels


def calibrate_thresholds(
    images: Sequence[np.ndarray], shares: Sequence[float] = DEFAULT_SHARES
) -> tuple[float, float]:
    """The (coarse, fine) variance thresholds that give the level ``shares`` (finest, middle, coarsest) over the
    full 64x64 blocks of HxWx3 uint8 ``images``."""
    if len(shares) != LEVELS or min(shares) < 0 or abs(sum(shares) - 1) > 1e-6:
        raise ValueError(f"shares must be {LEVELS} non-negative numbers adding up to 1, got {shares}")
    variances = []
    for im in images:
        h, w = (im.shape[0] // BLOCK) * BLOCK, (im.shape[1] // BLOCK) * BLOCK
        if h and w:
            x = torch.from_numpy(np.ascontiguousarray(im[:h, :w])).permute(2, 0, 1)[None].double() / 255
            variances.append(block_variance(x).flatten())
    if not variances:
        raise ValueError(f"no image is at least {BLOCK}x{BLOCK}")
    v = torch.cat(variances)
    coarse = torch.quantile(v, shares[2]).item()
    fine = torch.quantile(v, shares[2] + shares[1]).item()
    return coarse, fine


def level_maps(mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> list[list[torch.Tensor]]:
    """One-hot maps (B, 1, h, w) of ``mask`` (B, H/64, W/64): ``maps[k][j]`` is "block at level j" on level
    k's latent grid."""
    maps = []
    for factor in LEVEL_FACTORS:
        grid = mask.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1).unsqueeze(1)
        maps.append([(grid == j).to(dtype) for j in range(LEVELS)])
    return maps


def random_masks(batch: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """Uniformly random levels for every block of ``batch`` images of ``height`` x ``width`` (torch's RNG)."""
    return torch.randint(LEVELS, (batch, height // BLOCK, width // BLOCK), device=device)


def encode_mask(mask: np.ndarray) -> bytes:
    """A mask of levels 0..2 as its level counts and an ANS stream under the model those counts define."""
    flat = mask.astype(np.int32).ravel()
    counts = np.bincount(flat, minlength=LEVELS)
    bank = TableBank([counts + 1.0])
    return _COUNTS.pack(*counts) + bank.encode(flat - 1, np.zeros(len(flat), dtype=np.int64))


def decode_mask(data: bytes, blocks: int) -> np.ndarray:
    """The ``blocks`` levels coded by :func:`encode_mask`; damaged data raises :class:`CorruptStreamError`."""
    if len(data) < _COUNTS.size or (len(data) - _COUNTS.size) % 4:
        raise CorruptStreamError("block mask is shorter than its header or misaligned")
    counts = np.array(_COUNTS.unpack_from(data), dtype=np.float64)
    if counts.sum() != blocks:
        raise CorruptStreamError(f"block mask counts {counts.astype(int).tolist()} do not add up to {blocks} blocks")
    bank = TableBank([counts + 1.0])
    try:
        flat = bank.decode(data[_COUNTS.size :], np.zeros(blocks, dtype=np.int64)) + 1
    except (ValueError, RuntimeError) as exc:
        raise CorruptStreamError(f"block mask does not decode: {exc}") from exc
    if not np.array_equal(np.bincount(flat, minlength=LEVELS), counts):
        raise CorruptStreamError("block mask does not match its level counts: the mask bits are damaged")
    return flat


__all__ = [
    "BLOCK",
    "LEVELS",
    "block_variance",
    "calibrate_thresholds",
    "decode_mask",
    "encode_mask",
    "level_maps",
    "random_masks",
    "variance_levels",
]
