"""The picture of a block mask over its image, as in the RDONet poster: each 64x64 block tinted and outlined in
its level's colour (red: finest latent, yellow: middle, green: coarsest)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..codec.masks import BLOCK

#: RGB colour of each level, finest first.
LEVEL_COLOURS = ((230, 40, 40), (240, 200, 30), (40, 200, 60))
LEVEL_NAMES = ("1/16 (finest)", "1/32", "1/64 (coarsest)")


def draw_mask(image: np.ndarray, mask: np.ndarray, tint: float = 0.25) -> np.ndarray:
    """``image`` (HxWx3 uint8 RGB) with every block of ``mask`` (ceil(H/64) x ceil(W/64) levels) tinted by
    ``tint`` and outlined in its level's colour, plus a legend with each level's share of blocks."""
    h, w = image.shape[:2]
    if mask.shape != (-(-h // BLOCK), -(-w // BLOCK)):
        raise ValueError(f"a {w}x{h} image has {-(-w // BLOCK)}x{-(-h // BLOCK)} blocks, the mask {mask.shape[::-1]}")
    colours = np.array(LEVEL_COLOURS, dtype=np.float32)
    per_pixel = colours[np.kron(mask, np.ones((BLOCK, BLOCK), dtype=mask.dtype))[:h, :w]]
    out = np.ascontiguousarray((image * (1 - tint) + per_pixel * tint).round().astype(np.uint8))
    for (i, j), level in np.ndenumerate(mask):
        top, left = i * BLOCK, j * BLOCK
        corner = (min(left + BLOCK, w) - 1, min(top + BLOCK, h) - 1)
        cv2.rectangle(out, (left, top), corner, LEVEL_COLOURS[int(level)], 1)
    legend = np.full((22 * len(LEVEL_COLOURS) + 8, w, 3), 255, dtype=np.uint8)
    for level, (colour, name) in enumerate(zip(LEVEL_COLOURS, LEVEL_NAMES)):
        y = 8 + 22 * level
        cv2.rectangle(legend, (6, y), (22, y + 14), colour, -1)
        share = float(np.mean(mask == level))
        cv2.putText(legend, f"{name}: {share:.0%}", (30, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1)
    return np.concatenate([out, legend], axis=0)


def save_mask_figure(path: Path, image: np.ndarray, mask: np.ndarray) -> None:
    """Write :func:`draw_mask` of ``image`` and ``mask`` to ``path`` (PNG, JPEG ...)."""
    if not cv2.imwrite(str(path), cv2.cvtColor(draw_mask(image, mask), cv2.COLOR_RGB2BGR)):
        raise OSError(f"cannot write {path}")
