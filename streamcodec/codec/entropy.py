"""Entropy models: the factorised density of z and the Gaussian conditional of y.

Each model gives likelihoods for training and the probability tables the coder uses. Tables are always
computed on the CPU in float64 and rounded to integers, so that an encoder on a GPU and a decoder on a CPU
build bit-identical coding models.
"""

from __future__ import annotations

import math
from decimal import Context
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

LIKELIHOOD_BOUND = 1e-9
#: Scales below this are clamped (as in EVC).
SCALE_MIN = 0.11
SCALE_MAX = 64.0
#: Number of entries of the log-spaced scale table that y's coding models are drawn from.
SCALE_LEVELS = 128
#: Coding tables are integer frequency tables summing to about 2**TABLE_PRECISION.
TABLE_PRECISION = 20
#: z symbols are coded (and clamped) within [-Z_RADIUS, Z_RADIUS].
Z_RADIUS = 64

_LOG_SCALE_MIN = math.log(SCALE_MIN)
_LOG_SCALE_STEP = (math.log(SCALE_MAX) - _LOG_SCALE_MIN) / (SCALE_LEVELS - 1)


def _integer_table(pmf: np.ndarray) -> np.ndarray:
    """Round a probability vector to positive integer frequencies (float64 holding exact integers)."""
    return np.maximum(1.0, np.round(pmf / pmf.sum() * 2.0**TABLE_PRECISION))


class FactorizedDensity(nn.Module):
    """A learned, per-channel univariate density (Ballé et al. 2018), used for the hyper-latent z."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0) -> None:
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(filters) + 1):
            init = math.log(math.expm1(1 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def _logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        """x: (C, 1, M) -> logits of the CDF at x, (C, 1, M)."""
        logits = x
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            logits = torch.matmul(F.softplus(matrix.to(x.dtype)), logits) + bias.to(x.dtype)
            if i < len(self.factors):
                logits = logits + torch.tanh(self.factors[i].to(x.dtype)) * torch.tanh(logits)
        return logits

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """Probability mass of the unit interval around each value of z (B, C, H, W)."""
        b, c, h, w = z.shape
        v = z.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self._logits_cdf(v - 0.5)
        upper = self._logits_cdf(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        lik = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        lik = lik.reshape(c, b, h, w).permute(1, 0, 2, 3)
        return lik.clamp_min(LIKELIHOOD_BOUND)

    def coding_tables(self) -> list[np.ndarray]:
        """One integer frequency table per channel over the symbols -Z_RADIUS..Z_RADIUS."""
        with torch.no_grad():
            grid = torch.arange(-Z_RADIUS, Z_RADIUS + 1, dtype=torch.float64)
            c = len(self.biases[0])
            v = grid.view(1, 1, -1).expand(c, 1, -1)
            double = {n: p.detach().cpu().double() for n, p in self.named_parameters()}
            saved = {n: p.data for n, p in self.named_parameters()}
            try:
                for n, p in self.named_parameters():
                    p.data = double[n]
                lower = torch.sigmoid(self._logits_cdf(v - 0.5))
                upper = torch.sigmoid(self._logits_cdf(v + 0.5))
            finally:
                for n, p in self.named_parameters():
                    p.data = saved[n]
            pmf = (upper - lower).squeeze(1).clamp_min(0).numpy()
        return [_integer_table(row) for row in pmf]


def rate_input(residual: torch.Tensor, noise: bool) -> torch.Tensor:
    """What training measures the rate of: the residual plus uniform noise in [-0.5, 0.5), or rounded."""
    return residual + torch.empty_like(residual).uniform_(-0.5, 0.5) if noise else torch.round(residual)


def gaussian_likelihood(residual: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Mass of a zero-mean Gaussian over the unit interval around ``residual`` (value minus mean)."""
    scales = scales.clamp_min(SCALE_MIN)
    values = residual.abs()
    upper = 0.5 * torch.erfc((values - 0.5) / (scales * math.sqrt(2)))
    lower = 0.5 * torch.erfc((values + 0.5) / (scales * math.sqrt(2)))
    return (upper - lower).clamp_min(LIKELIHOOD_BOUND)


def _scale_boundaries() -> tuple[float, ...]:
    """Geometric midpoints between neighbouring scale-table entries.

    Computed with :mod:`decimal`, whose ``ln`` and ``exp`` are correctly rounded, so every platform gets the
    same float64 values (a libm ``exp`` may differ in the last bit between machines).
    """
    ctx = Context(prec=40)
    low = ctx.create_decimal(repr(SCALE_MIN))
    log_ratio = ctx.ln(ctx.divide(ctx.create_decimal(repr(SCALE_MAX)), low))
    steps = 2 * (SCALE_LEVELS - 1)
    return tuple(float(low * ctx.exp(log_ratio * (2 * i + 1) / steps)) for i in range(SCALE_LEVELS - 1))


_SCALE_BOUNDARIES = _scale_boundaries()


def scale_index(scales: torch.Tensor) -> torch.Tensor:
    """Index into the scale table of the entry nearest (in log space) to each scale.

    Only comparisons with fixed boundaries, so exact scales give the same indices on every device.
    """
    return torch.bucketize(scales.double().contiguous(), _boundaries_on(scales.device))


@lru_cache(maxsize=None)
def _boundaries_on(device: torch.device) -> torch.Tensor:
    """The boundaries as a tensor on ``device``, made once (no host-to-device copy per frame)."""
    return torch.tensor(_SCALE_BOUNDARIES, dtype=torch.float64, device=device)


def table_scale(index: int) -> float:
    """The scale of table entry ``index``."""
    return math.exp(_LOG_SCALE_MIN + index * _LOG_SCALE_STEP)


def gaussian_coding_tables() -> list[np.ndarray]:
    """Integer frequency tables of zero-mean quantised Gaussians, one per scale-table entry.

    Entry k covers symbols -R..R with R = ceil(10 * scale_k) + 1, which leaves a tail mass below 1e-20.
    """
    tables = []
    for k in range(SCALE_LEVELS):
        s = table_scale(k)
        radius = math.ceil(10 * s) + 1
        grid = np.arange(-radius, radius + 1, dtype=np.float64)
        upper = np.array([0.5 * math.erfc((v - 0.5) / (s * math.sqrt(2))) for v in grid])
        lower = np.array([0.5 * math.erfc((v + 0.5) / (s * math.sqrt(2))) for v in grid])
        tables.append(_integer_table(np.maximum(upper - lower, 0.0)))
    return tables
