"""Quality levels: qp 0..63 (higher is better), fractional q, an extended range beyond it, and their q_scale.

The model learns four anchor q_scales, placed at qp 0, 21, 42 and 63; any q in between is interpolated
log-linearly between its two neighbouring anchors. Outside the trained range, down to :data:`Q_LOWEST` and up to
:data:`Q_HIGHEST`, the nearest segment is extrapolated: EVC's quantisation step is a continuous knob, so a coarser
step than the coarsest anchor still codes and decodes exactly, at lower rate and quality (on Kodak crops with the
shipped weights, q = -63 takes about a fifth of the bits of q = 0 for 4 to 5 dB less; above 63 the rate grows
for little quality). Rate control uses the extended range when a bitrate target demands it; the quality knobs
(``--qp``, ``--crf``) accept it too.

A stream stores q exactly as ``q_index = round(q * 400) + 25600`` (u16; index 0 is q = -64), and the encoder
always codes with the q that index stands for.
"""

from __future__ import annotations

import torch

from ..errors import CorruptStreamError

#: the top of the trained range (its bottom is 0)
QP_MAX = 63
ANCHOR_QPS = (0.0, 21.0, 42.0, 63.0)
#: the extended range every q must lie in
Q_LOWEST = -64.0
Q_HIGHEST = 96.0
#: index steps per unit of q (a stored q is a multiple of 1/400)
Q_INDEX_SCALE = 400
_INDEX_OFFSET = int(Q_LOWEST * Q_INDEX_SCALE)
#: the largest valid q_index (q = Q_HIGHEST)
Q_INDEX_MAX = int(Q_HIGHEST * Q_INDEX_SCALE) - _INDEX_OFFSET
#: Rate-distortion trade-off lambda per anchor (loss lambda * MSE + bpp, MSE of RGB in [0, 1]); training uses it,
#: and so does the encoder's RD search.
DEFAULT_LAMBDAS = (117.0, 325.0, 910.0, 2536.0)


def check_quality(q: float, name: str = "quality") -> float:
    """``q`` itself if it lies in the extended range; else a ValueError naming ``name``."""
    if not Q_LOWEST <= q <= Q_HIGHEST:
        raise ValueError(f"{name} must lie in {Q_LOWEST:g}..{Q_HIGHEST:g} (trained range 0..{QP_MAX}), got {q:g}")
    return q


def q_to_index(q: float) -> int:
    """The u16 index a stream stores for quality ``q`` (:data:`Q_LOWEST` <= q <= :data:`Q_HIGHEST`)."""
    return round(check_quality(q) * Q_INDEX_SCALE) - _INDEX_OFFSET


def index_to_q(index: int) -> float:
    """The quality a stored ``q_index`` stands for."""
    return (index + _INDEX_OFFSET) / Q_INDEX_SCALE


def decoded_q(index: int) -> float:
    """The quality of a packet's ``q_index``, for decoding: :class:`CorruptStreamError` outside the range."""
    if not 0 <= index <= Q_INDEX_MAX:
        raise CorruptStreamError(f"q_index {index} is outside 0..{Q_INDEX_MAX} (q {Q_LOWEST:g}..{Q_HIGHEST:g})")
    return index_to_q(index)


def interpolate_log(anchors: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Log-linear interpolation of per-anchor values (4,) at qualities ``q`` (any shape); outside the anchors
    (down to :data:`Q_LOWEST`, up to :data:`Q_HIGHEST`) the first or last segment is extrapolated."""
    pos = q.to(anchors.dtype).clamp(Q_LOWEST, Q_HIGHEST) / ANCHOR_QPS[1]
    lo = pos.floor().clamp(0, len(ANCHOR_QPS) - 2).long()
    frac = pos - lo
    log_a = torch.log(anchors)
    return torch.exp(log_a[lo] * (1 - frac) + log_a[lo + 1] * frac)


def rd_lambda(q: float) -> float:
    """The lambda of quality ``q``, log-interpolated between :data:`DEFAULT_LAMBDAS` as q_scale is."""
    return float(interpolate_log(torch.tensor(DEFAULT_LAMBDAS, dtype=torch.float64), torch.tensor(float(q))))
