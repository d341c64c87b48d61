"""Quality levels: integer qp 0..63 (higher is better), fractional q, and their q_scale.

The model learns four anchor q_scales, placed at qp 0, 21, 42 and 63; any q in between is interpolated
log-linearly between its two neighbouring anchors. A stream stores q exactly as ``q_index = round(q * 1000)``
(u16), and the encoder always codes with the q that index stands for.
"""

from __future__ import annotations

import torch

QP_MAX = 63
ANCHOR_QPS = (0.0, 21.0, 42.0, 63.0)
Q_INDEX_SCALE = 1000
#: Rate-distortion trade-off lambda per anchor (loss lambda * MSE + bpp, MSE of RGB in [0, 1]); training uses it,
#: and so does the encoder's RD search.
DEFAULT_LAMBDAS = (117.0, 325.0, 910.0, 2536.0)


def q_to_index(q: float) -> int:
    """The u16 index a stream stores for quality ``q`` (0 <= q <= 63)."""
    if not 0.0 <= q <= QP_MAX:
        raise ValueError(f"quality must lie in [0, {QP_MAX}], got {q}")
    return int(round(q * Q_INDEX_SCALE))


def index_to_q(index: int) -> float:
    """The quality a stored ``q_index`` stands for."""
    return index / Q_INDEX_SCALE


def interpolate_log(anchors: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Log-linear interpolation of per-anchor values (4,) at qualities ``q`` (any shape)."""
    pos = (q.to(anchors.dtype).clamp(0, QP_MAX) / ANCHOR_QPS[1]).clamp(0, len(ANCHOR_QPS) - 1)
    lo = pos.floor().clamp(max=len(ANCHOR_QPS) - 2).long()
    frac = pos - lo
    log_a = torch.log(anchors)
    return torch.exp(log_a[lo] * (1 - frac) + log_a[lo + 1] * frac)


def rd_lambda(q: float) -> float:
    """The lambda of quality ``q``, log-interpolated between :data:`DEFAULT_LAMBDAS` as q_scale is."""
    return float(interpolate_log(torch.tensor(DEFAULT_LAMBDAS, dtype=torch.float64), torch.tensor(float(q))))
