"""Rate-distortion optimised block masks (RDONet's "RDO passes"), started from the zero-pass variance mask.

One pass tries every level for every block: the blocks of one checkerboard parity at a time (so that a block's
neighbours stay fixed while it is judged), each level for all of them at once, which costs 2 x 3 network runs
per pass (the poster's 6 N64 block runs). Each block takes the level with the lowest estimated cost
``lambda(q) * SSE / 3 + bits`` (the training loss per pixel, times the pixel count), and the pass is kept only
if the whole frame's estimated cost fell, so more passes never cost more by the model's estimate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .masks import LEVELS
from .quality import rd_lambda

if TYPE_CHECKING:
    from .masked import MaskedEVC


def search_mask(
    model: MaskedEVC,
    x: torch.Tensor,
    q: float,
    mask: torch.Tensor,
    passes: int,
    features: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Refine ``mask`` (H/64, W/64) of image x (1, 3, H, W) at quality q by ``passes`` RDO passes.

    Returns the mask and ``{"costs": [estimated cost of the start mask, then after each pass kept],
    "runs": network runs used}``.
    """
    if passes not in (1, 2):
        raise ValueError(f"RDO passes must be 1 or 2, got {passes}")
    with torch.inference_mode():
        if features is None:
            features = model.analyse(x)
        lam = rd_lambda(q)
        rows = torch.arange(mask.shape[0], device=mask.device).view(-1, 1)
        cols = torch.arange(mask.shape[1], device=mask.device).view(1, -1)
        parity = (rows + cols) % 2
        best = mask.clone()
        cost = float(model.block_costs(x, features, q, best[None], lam).sum())
        costs, runs = [cost], 1
        for _ in range(passes):
            trial = best.clone()
            for p in (0, 1):
                chosen = parity == p
                candidates = trial.expand(LEVELS, -1, -1).clone()
                for level in range(LEVELS):
                    candidates[level][chosen] = level
                block_cost = model.block_costs(x, features, q, candidates, lam)
                trial = torch.where(chosen, block_cost.argmin(dim=0), trial)
                runs += LEVELS
            trial_cost = float(model.block_costs(x, features, q, trial[None], lam).sum())
            runs += 1
            if trial_cost >= cost:
                break
            best, cost = trial, trial_cost
            costs.append(cost)
    return best, {"costs": costs, "runs": runs}


__all__ = ["search_mask"]
