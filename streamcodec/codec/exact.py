"""Exact arithmetic for the entropy-parameter path: fixed-point values carried in float64.

The decoder must rebuild the encoder's scales and means bit for bit, on any device, thread count or memory
layout. Floating-point sums are not associative, so ordinary float networks give slightly different results
on a GPU, on 1 or 2 CPU threads, or with another kernel, enough to desynchronise an entropy decoder.

The coding copies of the hyper decoder, prior fusion and spatial prior therefore compute on a fixed-point
grid held in float64:

* weights are rounded to multiples of ``2**-WEIGHT_BITS``, biases to ``2**-(WEIGHT_BITS + ACT_BITS)``;
* every activation (after each convolution, each LeakyReLU and each residual sum) is rounded to a multiple of
  ``2**-ACT_BITS`` and clamped to ``±ACT_LIMIT``;
* point-wise convolutions run as matrix products and depth-wise ones as nine shifted multiply-adds, and
  nothing else that sums (no FFT or Winograd kernels).

Each product of an activation and a weight is then a multiple of ``2**-(ACT_BITS + WEIGHT_BITS)``, and
:func:`exact_copy` checks that every partial sum stays below ``2**53`` such units, so each sum is computed
exactly in float64 whatever the order of its additions, fused multiply-adds included. The elementwise steps
are single IEEE operations (correctly rounded everywhere) followed by rounding to the grid. The results are
therefore identical on every IEEE-754 machine by construction, not by luck. The grid is fine enough that
the rate cost is within measurement noise (see the README's desync section).

The hyper encoder runs only in the encoder, so its copy is plain float64.

Written by hand: no library offers integer-exact inference for PyTorch modules on both CPU and CUDA.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from .layers import ConvFFN, DepthConv

#: Fractional bits of activations and of weights on the grid.
ACT_BITS = 14
WEIGHT_BITS = 18
#: Activations are clamped to this magnitude (the trained networks stay below ~20).
ACT_LIMIT = 2.0**10
#: Largest partial sum, in units of 2**-(ACT_BITS + WEIGHT_BITS), that float64 holds exactly.
_EXACT_UNITS = 2.0**53


class GridRound(nn.Module):
    """Round to a multiple of ``2**-ACT_BITS`` (half to even) and clamp to ``±ACT_LIMIT``.

    ``inplace`` overwrites its input: for the outputs of layers, which nothing else holds.
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = 2.0**ACT_BITS
        x = x.mul_(scale) if self.inplace else x * scale
        return x.round_().clamp_(-ACT_LIMIT * scale, ACT_LIMIT * scale).div_(scale)


_GRID_ROUND = GridRound()


class PointwiseConv(nn.Module):
    """A 1x1 convolution as a matrix product, with weights and bias rounded to the grid."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        weight = conv.weight.detach().to(torch.float64).flatten(1)
        bias = conv.bias.detach().to(torch.float64) if conv.bias is not None else torch.zeros(len(weight))
        self.weight = nn.Parameter(_to_grid(weight, WEIGHT_BITS), requires_grad=False)
        self.bias = nn.Parameter(_to_grid(bias, WEIGHT_BITS + ACT_BITS).view(-1, 1), requires_grad=False)
        _check_bound(self.weight, self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        return (torch.matmul(self.weight, x.reshape(b, c, h * w)) + self.bias).view(b, -1, h, w)


class ShiftedDepthwiseConv(nn.Module):
    """A 3x3 depth-wise convolution as nine shifted multiply-adds, optionally with grid-rounded weights.

    Also used (without the grid) for the hyper encoder's float64 copy: torch's float64 depth-wise convolution
    on the CPU loops over channels, measured 7x slower on 2 busy cores.
    """

    def __init__(self, conv: nn.Conv2d, grid: bool = True) -> None:
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.groups != conv.in_channels or conv.stride != (1, 1):
            raise ValueError("expected a 3x3, stride-1 depth-wise convolution")
        weight = conv.weight.detach().to(torch.float64).flatten(1)
        bias = conv.bias.detach().to(torch.float64)
        if grid:
            weight, bias = _to_grid(weight, WEIGHT_BITS), _to_grid(bias, WEIGHT_BITS + ACT_BITS)
            _check_bound(weight, bias.view(-1, 1))
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
        out = self.bias.view(1, -1, 1, 1).expand_as(x).clone()
        for k in range(9):
            i, j = divmod(k, 3)
            out += padded[..., i : i + h, j : j + w] * self.weight[:, k].view(1, -1, 1, 1)
        return out


def exact_copy(net: nn.Module) -> nn.Module:
    """A float64 copy of an entropy-parameter network that computes exactly on the fixed-point grid.

    Raises ``ValueError`` when the weights are too large for the sums to stay exact.
    """
    exact = _to_exact(copy.deepcopy(net).to(torch.float64))
    exact.register_forward_pre_hook(_round_inputs)
    return exact


def float64_copy(net: nn.Module) -> nn.Module:
    """A plain float64 copy (for the encoder-only hyper encoder), with fast depth-wise convolutions."""
    net = copy.deepcopy(net).to(torch.float64)
    for parent in net.modules():
        for name, child in parent.named_children():
            if _is_depthwise(child):
                setattr(parent, name, ShiftedDepthwiseConv(child, grid=False))
    return net


def _to_exact(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.Conv2d):
        if module.kernel_size == (1, 1) and module.stride == (1, 1) and module.groups == 1:
            return nn.Sequential(PointwiseConv(module), GridRound(inplace=True))
        if _is_depthwise(module):
            return nn.Sequential(ShiftedDepthwiseConv(module), GridRound(inplace=True))
        raise ValueError(f"no exact form for {module}")
    if isinstance(module, nn.LeakyReLU):
        return nn.Sequential(module, GridRound(inplace=True))
    for name, child in module.named_children():
        setattr(module, name, _to_exact(child))
    if isinstance(module, (DepthConv, ConvFFN)):  # residual sums: on the grid already, clamped here
        return nn.Sequential(module, GridRound(inplace=True))
    return module


def _round_inputs(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(_GRID_ROUND(a) for a in args)


def _is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels


def _to_grid(t: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.round(t * 2.0**bits) / 2.0**bits


def _check_bound(weight: torch.Tensor, bias: torch.Tensor) -> None:
    """Every partial sum of ``bias + weight @ x`` with ``|x| <= ACT_LIMIT`` must be exact in float64."""
    unit = 2.0 ** -(ACT_BITS + WEIGHT_BITS)
    worst = (ACT_LIMIT * weight.abs().sum(dim=1) + bias.abs().flatten()).max().item() / unit
    if worst >= _EXACT_UNITS:
        raise ValueError(f"weights too large for exact fixed-point coding ({worst:.3g} >= 2**53 grid units)")
