"""The exact entropy-parameter path: identical results whatever the order of additions, threads or layout."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from streamcodec.bench import synthetic_frame
from streamcodec.codec import exact
from streamcodec.codec.entropy import SCALE_LEVELS, scale_index, table_scale
from streamcodec.codec.evc import EVC
from streamcodec.codec.exact import PointwiseConv, exact_copy, float64_copy
from streamcodec.codec.stream import to_tensor


def _reversed_order(self: PointwiseConv, x: torch.Tensor) -> torch.Tensor:
    """The same 1x1 convolution with its sums taken in the opposite order, channel by channel."""
    b, c, h, w = x.shape
    flat = x.reshape(b, c, h * w)
    out = self.bias.expand(b, -1, h * w).clone()
    for i in reversed(range(c)):
        out += self.weight[:, i : i + 1] * flat[:, i : i + 1]
    return out.view(b, -1, h, w)


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
    monkeypatch.setattr(PointwiseConv, "forward", _reversed_order)
    reordered = _prior_outputs(model, exact_copy, z)
    assert all(torch.equal(a, b) for a, b in zip(reference, reordered))


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
def test_grid_costs_no_rate(model: EVC) -> None:
    features = model.analyse(to_tensor(synthetic_frame(192, 128, seed=2), "cpu"))
    hyper_encoder, *_ = model._exact_prior()
    y = features.double() / model.latent_scale(torch.tensor([1.0])).double()
    z_sym = torch.round(hyper_encoder(y)).clamp(-64, 64)
    plain = _prior_outputs(model, float64_copy, z_sym)
    grid = _prior_outputs(model, exact_copy, z_sym, y_hat_1=torch.round(plain[2] * 3) + plain[2])
    # Same inputs: the grid moves the parameters by far less than a scale-table step (5 % in scale).
    for a, b in zip(plain, grid):
        assert (a - b).abs().max() < 5e-3
    for a, b in ((plain[1], grid[1]), (plain[3], grid[3])):
        assert (scale_index(a) == scale_index(b)).double().mean() > 0.99  # flips only at table boundaries
    assert torch.equal(model.quantise(features, 1.0).z_sym, z_sym)


def test_oversized_weights_are_refused() -> None:
    conv = nn.Conv2d(1024, 4, 1)
    with torch.no_grad():
        conv.weight.fill_(2.0**23)
    with pytest.raises(ValueError, match="too large"):
        exact_copy(nn.Sequential(conv))


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
