"""The exact entropy-parameter path: identical results whatever the order of additions, threads or layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from streamcodec.bench import synthetic_frame
from streamcodec.codec import evc, exact
from streamcodec.codec.entropy import SCALE_LEVELS, scale_index, table_scale
from streamcodec.codec.evc import EVC
from streamcodec.codec.exact import (
    WEIGHT_INT_MAX,
    channel_grid,
    digit_count,
    exact_copy,
    float64_copy,
    grid_matmul,
    int8_digits,
)
from streamcodec.codec.stream import to_tensor


def _reversed_matmul(weight: torch.Tensor, weight_digits: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """:func:`grid_matmul` in float64 with its sums taken in the opposite order, channel by channel."""
    out = torch.zeros(weight.shape[0], x.shape[1], dtype=torch.float64)
    for i in reversed(range(weight.shape[1])):
        out += weight[:, i : i + 1] * x[i : i + 1]
    return out * 2.0**exact.ACT_BITS


def _reversed_conv(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A float64 1x1 nn.Conv2d with its sums in the opposite order (for the plain copy)."""
    weight = conv.weight.flatten(1)
    out = conv.bias.view(1, -1, 1, 1).expand(x.shape[0], -1, *x.shape[-2:]).clone()
    for i in reversed(range(x.shape[1])):
        out += weight[:, i].view(1, -1, 1, 1) * x[:, i : i + 1]
    return out


def _prior_outputs(model: EVC, make, z: torch.Tensor, y_hat_1: torch.Tensor | None = None) -> list[torch.Tensor]:
    """(q_step, scales, means, scales2, means2) of copies made by ``make``; the spatial prior sees ``y_hat_1``
    (default: a step-1 reconstruction from these means)."""
    nets = (model.hyper_decoder, model.prior_fusion, model.spatial_prior)
    hyper_decoder, prior_fusion, spatial_prior = (make(net) for net in nets)
    with torch.inference_mode():
        q_step, scales, means = prior_fusion(hyper_decoder(z))
        if y_hat_1 is None:
            y_hat_1 = torch.round(means * 3) + means
        scales2, means2 = spatial_prior(y_hat_1, means, scales, q_step)
    return [q_step, scales, means, scales2, means2]


@pytest.fixture(scope="module")
def z() -> torch.Tensor:
    return torch.randint(-4, 5, (1, 192, 2, 3), generator=torch.Generator().manual_seed(3)).double()


def test_summation_order_changes_nothing_on_the_grid(model: EVC, z: torch.Tensor, monkeypatch) -> None:
    reference = _prior_outputs(model, exact_copy, z)
    monkeypatch.setattr(exact, "grid_matmul", _reversed_matmul)
    reordered = _prior_outputs(model, exact_copy, z)
    assert all(torch.equal(a, b) for a, b in zip(reference, reordered))


def test_int8_digit_products_equal_float64_products(model: EVC, z: torch.Tensor, monkeypatch) -> None:
    calls = []
    int_mm = torch._int_mm
    monkeypatch.setattr(torch, "_int_mm", lambda a, b: calls.append(b.shape) or int_mm(a, b))
    digits = _prior_outputs(model, exact_copy, z)
    assert calls  # the CPU path really ran on int8 digits
    monkeypatch.setattr(exact, "CPU_COLUMNS", 7)  # in blocks of 7 positions, the last one partial
    blocks = _prior_outputs(model, exact_copy, z)
    monkeypatch.setattr(exact, "INT8_PRODUCTS", False)
    products = _prior_outputs(model, exact_copy, z)
    assert all(torch.equal(a, b) and torch.equal(a, c) for a, b, c in zip(digits, products, blocks))


@pytest.mark.parametrize("peak", [100, 32639, 32640, 2**18])
def test_grid_matmul_is_the_exact_integer_product(peak: int) -> None:
    gen = torch.Generator().manual_seed(peak)
    weight = torch.randint(-WEIGHT_INT_MAX, WEIGHT_INT_MAX + 1, (37, 300), generator=gen)
    units = torch.randint(-peak, peak + 1, (300, 23), generator=gen)
    units[0, 0] = -peak
    digits = torch.empty(2, 37, 300, dtype=torch.int8)
    int8_digits(weight.double() / 256.0, 2, digits)
    x = units.double() / 2.0**exact.ACT_BITS
    expected = (weight @ units).double()  # int64 arithmetic
    assert torch.equal(grid_matmul(weight.double(), torch.cat((digits[0], digits[1], digits[0]), dim=1), x), expected)
    assert torch.equal(grid_matmul(weight.double(), None, x), expected)


def test_int8_digits_cover_their_range() -> None:
    for count in (1, 2, 3):
        top = 127 * (256**count - 1) // 255
        bottom = -128 * (256**count - 1) // 255
        assert digit_count(top) == count and digit_count(top + 1) == count + 1
        values = torch.tensor([[bottom, -1, 0, 1, top // 3, top]], dtype=torch.float64)
        out = torch.empty(count, 1, 6, dtype=torch.int8)
        int8_digits(values / 256.0, count, out)
        rebuilt = sum(out[j].double() * 256.0**j for j in range(count))
        assert torch.equal(rebuilt, values)


def test_channel_grid_uses_fifteen_bits_per_channel() -> None:
    rows = [[0.3, -0.01, 0.2], [1e-3, 2e-4, -5e-4], [-3.7, 0.0, 1.0], [0.0, 0.0, 0.0]]
    weight = torch.tensor(rows, dtype=torch.float64)
    bias = torch.tensor([0.1, -2.0, 7.0, 1.5], dtype=torch.float64)
    weight_int, bias_int, scale = channel_grid(weight, bias)
    assert torch.equal(weight_int, torch.round(weight_int)) and torch.equal(bias_int, torch.round(bias_int))
    peaks = weight_int.abs().amax(dim=1)
    assert (peaks[:3] <= WEIGHT_INT_MAX).all() and (peaks[:3] > WEIGHT_INT_MAX / 2).all()
    assert ((weight_int * scale[:, None] - weight).abs() <= scale[:, None] / 2).all()
    assert ((bias_int * scale * 2.0**-exact.ACT_BITS - bias).abs() <= scale * 2.0 ** -(exact.ACT_BITS + 1)).all()
    assert torch.equal(scale, torch.exp2(torch.round(torch.log2(scale))))  # powers of two


def test_summation_order_changes_plain_float64(model: EVC, z: torch.Tensor, monkeypatch) -> None:
    # The control: without the grid, float64 results depend on the order of additions, which is what
    # desynchronises decoders across devices.
    reference = _prior_outputs(model, float64_copy, z)
    original = nn.Conv2d.forward

    def conv_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size == (1, 1) and self.groups == 1:
            return _reversed_conv(self, x)
        return original(self, x)

    monkeypatch.setattr(nn.Conv2d, "forward", conv_forward)
    reordered = _prior_outputs(model, float64_copy, z)
    assert not all(torch.equal(a, b) for a, b in zip(reference, reordered))
    assert all(torch.allclose(a, b, rtol=0, atol=1e-9) for a, b in zip(reference, reordered))


def test_threads_and_channels_last_give_identical_parameters(model: EVC, z: torch.Tensor) -> None:
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        reference = _prior_outputs(model, exact_copy, z)
        torch.set_num_threads(1)
        single = _prior_outputs(model, exact_copy, z)
    finally:
        torch.set_num_threads(threads)
    layout = _prior_outputs(model, exact_copy, z.contiguous(memory_format=torch.channels_last))
    for a, b, c in zip(reference, single, layout):
        assert torch.equal(a, b) and torch.equal(a, c)


def test_values_stay_on_the_grid(model: EVC, z: torch.Tensor) -> None:
    for t in _prior_outputs(model, exact_copy, z):
        units = t * 2.0**exact.ACT_BITS
        assert torch.equal(units, torch.round(units))


@torch.inference_mode()
def test_grid_costs_no_rate(model: EVC, photo: np.ndarray, monkeypatch) -> None:
    features = model.analyse(to_tensor(photo, "cpu"))
    qualities = (-40.0, 0.0, 32.0, 63.0, 90.0)

    def total_bits() -> float:
        model.__dict__.pop("_exact_prior_cache", None)
        return sum(float(model.quantise(features, q).bits) for q in qualities)

    try:
        grid = total_bits()
        monkeypatch.setattr(evc, "exact_copy", float64_copy)  # the reference: the prior in plain float64
        plain = total_bits()
    finally:
        model.__dict__.pop("_exact_prior_cache", None)
    # Kodak (every 4th image) gives +0.01..0.04 % at these q; one 320x180 frame's symbol flips make ±1 % per q
    # and 0.08 % in all.
    assert abs(grid / plain - 1) < 5e-3


def test_sums_that_could_leave_the_exact_range_are_refused() -> None:
    conv = nn.Conv2d(16, 4, 1)
    with torch.no_grad():
        conv.weight.fill_(2.0**-40)  # tiny weights keep a fine grid, on which a large bias cannot be held
        conv.bias.fill_(2.0**20)
    with pytest.raises(ValueError, match="too large"):
        exact_copy(nn.Sequential(conv))
    with pytest.raises(ValueError, match="too long"):
        exact_copy(nn.Sequential(nn.Conv2d(2**17, 1, 1)))


def test_scale_index_is_nearest_in_log_space() -> None:
    levels = torch.tensor([table_scale(k) for k in range(SCALE_LEVELS)], dtype=torch.float64)
    scales = torch.exp(torch.linspace(math.log(0.05), math.log(100.0), 5001, dtype=torch.float64))
    expected = (torch.log(scales)[:, None] - torch.log(levels)[None]).abs().argmin(dim=1)
    assert torch.equal(scale_index(scales), expected)
    assert scale_index(torch.tensor([0.0, 1e9], dtype=torch.float64)).tolist() == [0, SCALE_LEVELS - 1]


def test_channels_last_decoder_decodes_a_default_stream(model: EVC) -> None:
    image = synthetic_frame(320, 192, seed=9)
    frame, x_hat = model.compress(to_tensor(image, "cpu"), 20, reconstruct=True)
    other = EVC().to(memory_format=torch.channels_last)
    other.load_state_dict(model.state_dict())
    other.eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        decoded = other.decompress(frame.payload, 192, 320, frame.q_index)
    finally:
        torch.set_num_threads(threads)
    assert (decoded - x_hat).abs().max() * 255 <= 1.0 + 1e-6  # pixels may differ by rounding; latents may not
    assert np.isfinite(decoded.numpy()).all()
