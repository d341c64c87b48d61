"""Exact arithmetic for the entropy-parameter path: fixed-point values carried in float64.

The decoder must rebuild the encoder's scales and means bit for bit, on any device, thread count or memory
layout. Floating-point sums are not associative, so ordinary float networks give slightly different results
on a GPU, on 1 or 2 CPU threads, or with another kernel, enough to desynchronise an entropy decoder.

The coding copies of the hyper decoder, prior fusion and spatial prior therefore compute on a fixed-point
grid held in float64:

* every activation (after each convolution, each LeakyReLU and each residual sum) is rounded to a multiple of
  ``2**-ACT_BITS`` and clamped to ``±ACT_LIMIT``;
* each output channel's weights are integers of at most 15 significant bits times a power of two of that
  channel's own (``|w| <= WEIGHT_INT_MAX * 2**-e``, ``e`` from the channel's largest weight), and its bias is a
  multiple of ``2**-(ACT_BITS + e)``;
* point-wise convolutions run as integer matrix products and depth-wise ones as nine shifted multiply-adds,
  and nothing else that sums (no FFT or Winograd kernels).

Each product of an activation and a weight is then an integer number of units ``2**-(ACT_BITS + e)``, and
:func:`exact_copy` checks that every partial sum stays below ``2**53`` such units, so each sum is computed
exactly in float64 whatever the order of its additions, fused multiply-adds included. The elementwise steps
are single IEEE operations (correctly rounded everywhere) followed by rounding to the grid. The results are
therefore identical on every IEEE-754 machine by construction, not by luck. The grid is fine enough that
the rate cost is within measurement noise (see the README's desync section).

On the CPU the point-wise products run on int8 digits instead of float64 (:func:`grid_matmul`): an activation
of the grid is a 16-bit integer and a weight a 15-bit one, two balanced base-256 digits each, and three int8
matrix products with exact int32 sums (VNNI) give ``lo*lo + 256*(hi*lo + lo*hi) + 65536*hi*hi``. Here that is
about 1.6x to 2x faster than the float64 product for the prior's wide layers and slower for its 192-channel
ones, 1.4x faster over the whole prior at 320x240. The integer result is the same either way.

:func:`float64_copy` makes the plain float64 copies of encoder-only networks that need no grid.

Written by hand: no library offers integer-exact inference for PyTorch modules on both CPU and CUDA.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvFFN, DepthConv

#: Fractional bits of activations on the grid.
ACT_BITS = 8
#: Activations are clamped to this magnitude (the trained networks stay below ~140).
ACT_LIMIT = 2.0**10
#: A channel's weights are integers of magnitude at most this, times that channel's power of two.
WEIGHT_INT_MAX = 2**14
#: Largest per-channel weight exponent (channels of tiny weights keep a coarser grid, not huge integers).
_MAX_EXPONENT = 30
#: Largest partial sum, in units of the grid, that float64 holds exactly.
_EXACT_UNITS = 2.0**53
#: Point-wise products on int8 digits on the CPU (where torch has them); float64 products otherwise.
INT8_PRODUCTS = hasattr(torch, "_int_mm")
#: Positions per block of a point-wise convolution on the CPU.
CPU_COLUMNS = 512
#: Longest sum an int8 product may take: 128 * 128 * length must stay below 2**31 (int32 accumulators).
_MAX_INT8_TERMS = 2**17


def grid_from_units_(units: torch.Tensor, slope: float | None = None) -> torch.Tensor:
    """Values on the grid from ``units`` (multiples of ``2**-ACT_BITS`` counted), in place: round (half to even)
    and clamp to ``±ACT_LIMIT``; with ``slope``, then LeakyReLU(slope) and round again. In units, ``u * slope``
    is exactly ``2**ACT_BITS`` times the value's ``x * slope``, so both orders give the same grid values."""
    limit = ACT_LIMIT * 2.0**ACT_BITS
    units.round_().clamp_(-limit, limit)
    if slope is not None:
        F.leaky_relu_(units, slope).round_()
    return units.mul_(2.0**-ACT_BITS)


class GridRound(nn.Module):
    """Round to the grid (:func:`grid_from_units_`), optionally through a LeakyReLU of ``slope``."""

    def __init__(self, slope: float | None = None) -> None:
        super().__init__()
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grid_from_units_(x * 2.0**ACT_BITS, self.slope)


_INPUT_ROUND = GridRound()


class GridClamp(nn.Module):
    """Clamp to ``±ACT_LIMIT``: all a sum of two grid values needs to stay on the grid (it is exact)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_(-ACT_LIMIT, ACT_LIMIT)


def channel_grid(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per output channel (row of ``weight``): integer weights, integer bias and the row's scale ``2**-e``, with
    ``weight ≈ weight_int * scale`` and ``bias ≈ bias_int * scale * 2**-ACT_BITS``; ``e`` is the largest exponent
    that keeps the row's integers within ``WEIGHT_INT_MAX``.

    ``e`` comes from :func:`torch.frexp` (exact), so every device derives the same grid from the same weights.
    Raises ``ValueError`` when a sum of ``|x| <= ACT_LIMIT`` times a row could leave float64's exact range.
    """
    _, top = torch.frexp(weight.abs().amax(dim=1))  # row max < 2**top
    exponent = (WEIGHT_INT_MAX.bit_length() - 1 - top).clamp(max=_MAX_EXPONENT).to(torch.float64)
    weight_int = torch.round(weight * torch.exp2(exponent).unsqueeze(1))
    bias_int = torch.round(bias * torch.exp2(exponent + ACT_BITS))
    worst = (ACT_LIMIT * 2.0**ACT_BITS * weight_int.abs().sum(dim=1) + bias_int.abs()).max().item()
    if worst >= _EXACT_UNITS:
        raise ValueError(f"weights too large for exact fixed-point coding ({worst:.3g} >= 2**53 grid units)")
    return weight_int, bias_int, torch.exp2(-exponent)


def int8_digits(values: torch.Tensor, count: int, out: torch.Tensor) -> None:
    """Write the balanced base-256 digits of the integers ``256 * values`` (float64 ``values`` on a grid of
    1/256) into ``out`` (count, *values.shape), int8, least significant first.

    ``count`` digits hold integers in ``[-128 * (256**count - 1) / 255, 127 * (256**count - 1) / 255]``.
    """
    for j in range(count - 1):
        high = torch.floor(values + 0.5)  # exact: values lie on a grid of 1/256
        out[j].copy_((values - high).mul_(256.0))
        values = high if j == count - 2 else high.mul_(1.0 / 256.0)
    out[count - 1].copy_(values if count > 1 else values * 256.0)


def digit_count(peak: float) -> int:
    """Balanced base-256 digits needed for integers of magnitude up to ``peak``."""
    count = 1
    while peak > 127 * (256**count - 1) // 255:
        count += 1
    return count


def grid_matmul(weight: torch.Tensor, weight_digits: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """The exact product of the integer-valued float64 matrix ``weight`` (M, K) and ``x`` (K, N) on the
    activation grid, in units of the grid (float64 integers).

    ``weight_digits`` (M, 3K), the low, high and again low int8 digits of ``weight`` side by side, selects int8
    digit products (CPUs with ``torch._int_mm``) when ``x`` fits two digits; otherwise the product runs in
    float64, exact as every partial sum is an integer number of units below 2**53. Both give the same result.
    """
    low, high = torch.aminmax(x) if weight_digits is not None and x.numel() else (None, None)
    if low is None or digit_count(256.0 * max(-low.item(), high.item())) > 2:
        return torch.matmul(weight, x).mul_(2.0**ACT_BITS)
    k = weight.shape[1]
    digits = torch.empty(2, k, x.shape[1], dtype=torch.int8, device=x.device)
    int8_digits(x, 2, digits)
    both = digits.view(2 * k, -1)
    # low*low + 256 * (high*low + low*high) + 65536 * high*high, each an int32 sum, exact (_MAX_INT8_TERMS)
    result = torch._int_mm(weight_digits[:, :k], digits[0]).double()
    result.add_(torch._int_mm(weight_digits[:, k:], both), alpha=256.0)
    return result.add_(torch._int_mm(weight_digits[:, k : 2 * k], digits[1]), alpha=65536.0)


class PointwiseConv(nn.Module):
    """A 1x1 convolution as an exact integer matrix product, its output rounded to the grid (through a LeakyReLU
    of ``slope`` when given: :func:`grid_from_units_`); weights and bias on each channel's grid
    (:func:`channel_grid`)."""

    def __init__(self, conv: nn.Conv2d, slope: float | None = None) -> None:
        super().__init__()
        self.slope = slope
        weight = conv.weight.detach().to(torch.float64).flatten(1)
        bias = conv.bias.detach().to(torch.float64) if conv.bias is not None else weight.new_zeros(len(weight))
        if weight.shape[1] >= _MAX_INT8_TERMS:
            raise ValueError(f"a 1x1 convolution over {weight.shape[1]} channels is too long for int8 sums")
        weight_int, bias_int, scale = channel_grid(weight, bias)
        digits = torch.empty(2, *weight_int.shape, dtype=torch.int8, device=weight_int.device)
        int8_digits(weight_int / 256.0, 2, digits)
        self.register_buffer("weight", weight_int)
        self.register_buffer("bias", bias_int.view(-1, 1))
        self.register_buffer("scale", scale.view(-1, 1))
        self.register_buffer("weight_digits", torch.cat((digits[0], digits[1], digits[0]), dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        x = x.transpose(0, 1).reshape(c, b * h * w)
        if x.device.type != "cpu" or not INT8_PRODUCTS:
            out = self._columns(x, None)
        else:  # in column blocks: a large frame's temporaries would leave the caches (and the heap, for mmap)
            out = x.new_empty(len(self.weight), x.shape[1])
            for start in range(0, x.shape[1], CPU_COLUMNS):
                block = slice(start, start + CPU_COLUMNS)
                out[:, block] = self._columns(x[:, block], self.weight_digits)
        return out.view(-1, b, h, w).transpose(0, 1)

    def _columns(self, x: torch.Tensor, digits: torch.Tensor | None) -> torch.Tensor:
        units = grid_matmul(self.weight, digits, x).add_(self.bias).mul_(self.scale)
        return grid_from_units_(units, self.slope)


class ShiftedDepthwiseConv(nn.Module):
    """A 3x3 depth-wise convolution as nine shifted multiply-adds.

    With ``grid`` (the exact copies), weights and bias lie on each channel's grid and the output is rounded to
    the grid, through a LeakyReLU of ``slope`` when given; without (:func:`float64_copy`), it is the plain
    convolution: torch's float64 depth-wise convolution on the CPU loops over channels, measured 7x slower on
    2 busy cores.
    """

    def __init__(self, conv: nn.Conv2d, grid: bool = True, slope: float | None = None) -> None:
        super().__init__()
        if conv.kernel_size != (3, 3) or conv.groups != conv.in_channels or conv.stride != (1, 1):
            raise ValueError("expected a 3x3, stride-1 depth-wise convolution")
        weight = conv.weight.detach().to(torch.float64).flatten(1)
        bias = conv.bias.detach().to(torch.float64)
        if grid:  # output in units of the grid; every product and sum a multiple of 2**-e units: exact
            weight_int, bias_int, scale = channel_grid(weight, bias)
            weight, bias = weight_int * scale.unsqueeze(1) * 2.0**ACT_BITS, bias_int * scale
        self.grid = grid
        self.slope = slope
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = nn.Parameter(bias, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        padded = F.pad(x, (1, 1, 1, 1))
        out = self.bias.view(1, -1, 1, 1).expand_as(x).clone()
        for k in range(9):
            i, j = divmod(k, 3)
            out.addcmul_(padded[..., i : i + h, j : j + w], self.weight[:, k].view(1, -1, 1, 1))
        return grid_from_units_(out, self.slope) if self.grid else out


def exact_copy(net: nn.Module) -> nn.Module:
    """A float64 copy of an entropy-parameter network that computes exactly on the fixed-point grid.

    Raises ``ValueError`` when the weights are too large for the sums to stay exact.
    """
    exact = _to_exact(copy.deepcopy(net).to(torch.float64))
    exact.register_forward_pre_hook(_round_inputs)
    return exact


def float64_copy(net: nn.Module) -> nn.Module:
    """A plain float64 copy of an encoder-only network (no grid), with fast depth-wise convolutions."""
    net = copy.deepcopy(net).to(torch.float64)
    for parent in net.modules():
        for name, child in parent.named_children():
            if _is_depthwise(child):
                setattr(parent, name, ShiftedDepthwiseConv(child, grid=False))
    return net


def _to_exact(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.Conv2d):
        return _exact_conv(module)
    if isinstance(module, nn.LeakyReLU):
        return GridRound(module.negative_slope)
    if isinstance(module, DepthConv):  # its activation follows conv1 and depth_conv: fold it into both
        slope = module.act.negative_slope
        module.conv1, module.depth_conv = _exact_conv(module.conv1, slope), _exact_conv(module.depth_conv, slope)
        module.act = nn.Identity()
    elif isinstance(module, nn.Sequential):  # a convolution followed by a LeakyReLU: one rounding module
        children = list(module.named_children())
        for (name, child), (next_name, after) in zip(children, children[1:]):
            if isinstance(child, nn.Conv2d) and isinstance(after, nn.LeakyReLU):
                setattr(module, name, _exact_conv(child, after.negative_slope))
                setattr(module, next_name, nn.Identity())
    for name, child in module.named_children():
        setattr(module, name, _to_exact(child))
    if isinstance(module, (DepthConv, ConvFFN)):  # residual sums: on the grid already, clamped here
        return nn.Sequential(module, GridClamp())
    return module


def _exact_conv(conv: nn.Conv2d, slope: float | None = None) -> nn.Module:
    if conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.groups == 1:
        return PointwiseConv(conv, slope)
    if _is_depthwise(conv):
        return ShiftedDepthwiseConv(conv, slope=slope)
    raise ValueError(f"no exact form for {conv}")


def _round_inputs(module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return tuple(_INPUT_ROUND(a) for a in args)


def _is_depthwise(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels
