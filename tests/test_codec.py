"""The neural codec: bit-exact round trips, sizes, qualities, sub-streams, the rate estimate and decoder safety."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import streamcodec
from streamcodec.bench import synthetic_frame
from streamcodec.codec import registry
from streamcodec.codec.evc import EVC
from streamcodec.codec.quality import index_to_q, interpolate_log, q_to_index
from streamcodec.codec.stream import FrameDecoder, FrameEncoder, to_image, to_tensor
from streamcodec.errors import (
    CorruptStreamError,
    DesyncError,
    ModelNotFoundError,
    UnsupportedVersionError,
    WrongModelError,
)


def roundtrip(model: EVC, image: np.ndarray, q: float, **kw: object) -> tuple[bytes, torch.Tensor, torch.Tensor]:
    x = to_tensor(image, "cpu")
    frame, x_hat = model.compress(x, q, reconstruct=True, **kw)
    decoded = model.decompress(frame.payload, image.shape[0], image.shape[1], frame.q_index)
    return frame.payload, x_hat, decoded


@pytest.mark.parametrize("size", [(333, 500), (1, 1), (5, 7), (64, 64), (70, 130)])
@pytest.mark.parametrize("q", [-64, 0, 63, 96])
def test_decoder_output_equals_encoder_reconstruction(model: EVC, size: tuple[int, int], q: float) -> None:
    image = synthetic_frame(size[1], size[0], seed=sum(size))
    _, x_hat, decoded = roundtrip(model, image, q)
    assert decoded.shape == (1, 3, *size)
    assert torch.equal(decoded, x_hat)


def test_quality_orders_rate_and_distortion(model: EVC, photo: np.ndarray) -> None:
    sizes, errors = [], []
    for q in (-64, -32, 0, 21, 42, 63, 96):  # the trained range and the extrapolated steps on either side
        payload, _, decoded = roundtrip(model, photo, q)
        sizes.append(len(payload))
        errors.append(float(np.mean((to_image(decoded).astype(float) - photo) ** 2)))
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]
    assert errors[-1] < errors[0]


def test_fractional_q_is_stored_exactly(model: EVC, photo: np.ndarray) -> None:
    x = to_tensor(photo, "cpu")
    frame, x_hat = model.compress(x, 31.2344, reconstruct=True)
    assert frame.q_index == 12494 + 25600 and index_to_q(frame.q_index) == 31.235  # a multiple of 1/400
    same, _ = model.compress(x, 31.235)
    assert same.payload == frame.payload
    assert torch.equal(model.decompress(frame.payload, *photo.shape[:2], frame.q_index), x_hat)


def test_q_maps_to_anchor_scales_log_linearly() -> None:
    anchors = torch.tensor([8.0, 4.0, 2.0, 1.0])
    assert interpolate_log(anchors, torch.tensor([0.0, 21.0, 42.0, 63.0])).tolist() == [8.0, 4.0, 2.0, 1.0]
    assert interpolate_log(anchors, torch.tensor([10.5])).item() == pytest.approx(2**2.5)
    # the extended range extrapolates the end segments, and stops at its ends
    extended = interpolate_log(anchors, torch.tensor([-21.0, 84.0, -200.0])).tolist()
    assert extended == pytest.approx([16, 0.5, 2 ** (64 / 21 + 3)])
    assert q_to_index(-64) == 0 and q_to_index(96) == 64000
    for q in (-64.5, 96.5):
        with pytest.raises(ValueError, match="quality must lie in -64..96"):
            q_to_index(q)


def test_real_size_matches_the_model_estimate(model: EVC, photo: np.ndarray) -> None:
    image = np.concatenate([np.concatenate([photo, photo[:, ::-1]], 1)] * 2, 0)  # 640x360 of real footage
    features = model.analyse(to_tensor(image, "cpu"))
    for q in (0, 24, 48, 63):
        frame, _ = model.compress(to_tensor(image, "cpu"), q)
        assert model.estimate_bits(features, q) == pytest.approx(frame.estimated_bits, rel=1e-6)
        estimate = frame.estimated_bits / 8
        assert abs(len(frame.payload) - estimate) / estimate < 0.03


def test_substreams_and_threads_decode_identically(model: EVC) -> None:
    image = synthetic_frame(640, 448, seed=5)
    one, x_hat, _ = roundtrip(model, image, 40, substreams=1)
    many, _, _ = roundtrip(model, image, 40, substreams=4)
    assert len(many) > len(one)  # more sub-streams really were written
    model.executor = ThreadPoolExecutor(3)
    try:
        threaded, _, decoded = roundtrip(model, image, 40, substreams=4)
    finally:
        model.executor.shutdown()
        model.executor = None
    assert threaded == many
    for payload in (one, many):
        assert torch.equal(model.decompress(payload, 448, 640, q_to_index(40)), x_hat)
    assert torch.equal(decoded, x_hat)


def test_damaged_payload_never_decodes_silently(model: EVC, photo: np.ndarray) -> None:
    payload, _, _ = roundtrip(model, photo, 32)
    h, w = photo.shape[:2]
    rng = np.random.default_rng(0)
    for _ in range(20):
        damaged = bytearray(payload)
        pos = int(rng.integers(46, len(payload)))  # inside the coded data, past the sub-stream table
        damaged[pos] ^= 1 << int(rng.integers(8))
        with pytest.raises((DesyncError, CorruptStreamError)):
            model.decompress(bytes(damaged), h, w, q_to_index(32))
    with pytest.raises(CorruptStreamError):
        model.decompress(payload[: len(payload) // 2], h, w, q_to_index(32))
    with pytest.raises(CorruptStreamError):
        model.decompress(b"\x07" + payload[1:], h, w, q_to_index(32))
    with pytest.raises(CorruptStreamError, match="q_index 64001 is outside"):
        model.decompress(payload, h, w, q_to_index(96) + 1)


def test_other_weights_are_refused(model: EVC, photo: np.ndarray, tmp_path) -> None:
    encoder = FrameEncoder(model, photo.shape[1], photo.shape[0], 20)
    packet, _, _ = encoder.encode(photo, 0)
    other = registry.create_model("evc-ss")
    path = tmp_path / "other.safetensors"
    from streamcodec.train.weights import save_weights

    save_weights(other.state_dict(), path, {})
    with pytest.raises(WrongModelError, match="weights"):
        FrameDecoder(streamcodec.load_model("evc-s", weights=path), encoder.header)
    assert FrameDecoder(model, encoder.header).decode(packet, 0).shape == photo.shape


@pytest.mark.parametrize(("field", "value", "says"), [("color_format", 2, "YUV420 frames"),
                                                    ("color_format", 9, "colour format 9"),
                                                    ("pad_multiple", 32, "multiples of 32")])
def test_header_fields_this_build_cannot_decode_are_refused(model: EVC, field: str, value: int, says: str) -> None:
    header = FrameEncoder(model, 64, 48, 20).header
    with pytest.raises(UnsupportedVersionError, match=says):
        FrameDecoder(model, dataclasses.replace(header, **{field: value}))


def test_loaded_model_has_its_coding_tables_and_new_weights_rebuild_them(photo: np.ndarray) -> None:
    model = streamcodec.load_model("evc-s")
    assert all(name in model.__dict__ for name in ("_z_bank", "_y_bank", "_exact_prior_cache"))  # by load_model
    state = {k: v + 0.5 if k.startswith("z_density.biases") else v for k, v in model.state_dict().items()}
    model.load_state_dict(state)  # the hyper-latent's density moves: its tables must follow
    encoder = FrameEncoder(model, photo.shape[1], photo.shape[0], 20)
    packet, _, x_hat = encoder.encode(photo, 0, reconstruct=True)
    fresh = registry.create_model("evc-ss").eval()  # builds its tables from the same weights, on first use
    fresh.load_state_dict(state)
    fresh.weights_hash = model.weights_hash
    decoded = FrameDecoder(fresh, encoder.header).decode(packet, 0)
    assert np.abs(decoded.astype(int) - to_image(x_hat)).max() <= 1


def test_wrong_size_frame_is_an_error(model: EVC, photo: np.ndarray) -> None:
    encoder = FrameEncoder(model, 64, 48, 20)
    with pytest.raises(ValueError, match="64x48"):
        encoder.encode(photo, 0)


def test_frames_of_the_wrong_type_or_shape_are_refused() -> None:
    frame = synthetic_frame(64, 48, seed=1)
    as_float = torch.from_numpy(frame).permute(2, 0, 1).float() / 255
    assert torch.equal(to_tensor(as_float, "cpu"), to_tensor(frame, "cpu"))
    for bad in (torch.from_numpy(frame).permute(2, 0, 1), as_float[:2], as_float.expand(2, 3, 48, 64), frame[..., 0]):
        with pytest.raises(ValueError, match="expected"):
            to_tensor(bad, "cpu")  # a uint8 tensor would otherwise code as 255x too bright


def test_registry_names_and_sizes() -> None:
    assert registry.canonical_name("evc-s") == "evc-ss"
    ls = registry.create_model("evc-ls")
    assert ls.analysis[0].conv1.out_channels == 192 and ls.synthesis[-1][0].in_channels == 64
    with pytest.raises(ModelNotFoundError, match="evc-ss"):
        streamcodec.load_model("evc-xx")
    with pytest.raises(ModelNotFoundError, match="with shipped weights: evc-ss"):
        streamcodec.load_model("evc-ll")
    assert "steps" in streamcodec.model_card("evc-s")


def test_payload_at_another_size_stops_at_the_hyper_latent(model: EVC, photo: np.ndarray, monkeypatch) -> None:
    # An ANS decoder never runs out of symbols, so a small frame's payload decoded at a huge declared size
    # would run the whole prior at that size; the hyper-latent's own checksum stops it before any network runs.
    frame, _ = model.compress(to_tensor(photo[:48, :64], "cpu"), 32)

    def no_prior():
        raise AssertionError("the prior ran on a payload of another size")

    monkeypatch.setattr(model, "_exact_prior", no_prior)
    with pytest.raises(CorruptStreamError, match="hyper-latent"):
        model.decompress(frame.payload, 1024, 1024, frame.q_index)


def test_compiled_transforms_run_in_place_of_the_modules(model: EVC, photo: np.ndarray) -> None:
    graphs, outputs = [], []

    def backend(graph: torch.fx.GraphModule, example_inputs: list[torch.Tensor]):  # runs the captured graph as is
        graphs.append(graph)

        def run(*args: torch.Tensor):
            outputs.append(graph(*args))
            return outputs[-1]

        return run

    compiled = streamcodec.load_model("evc-s", device="cpu")
    compiled.compile_transforms("default", backend=backend)
    h, w = photo.shape[:2]
    x = to_tensor(photo, "cpu")
    frame, x_hat = compiled.compress(x, 32, reconstruct=True)
    assert len(graphs) == 2 and len(outputs) == 2  # analysis and synthesis, each captured once and run
    reference, reference_hat = model.compress(x, 32, reconstruct=True)
    assert frame.payload == reference.payload and torch.equal(x_hat, reference_hat)
    assert torch.equal(compiled.decompress(frame.payload, h, w, frame.q_index), x_hat)
    assert compiled.state_dict().keys() == model.state_dict().keys()  # weights files stay the same
    with torch.inference_mode():  # as the codec runs it
        features = compiled.analyse(x)
        assert len(graphs) == 2 and features.data_ptr() == outputs[-1][0].data_ptr()  # the graph's own output
        # CUDA-graph modes copy the output out of the memory the next replay overwrites
        compiled.compile_transforms("reduce-overhead", backend=backend)
        runs = len(outputs)
        features = compiled.analyse(x)
    assert len(outputs) == runs + 1 and features.data_ptr() != outputs[-1][0].data_ptr()
    assert torch.equal(features, outputs[-1][0])
    with pytest.raises(ValueError, match="compile mode must be one of"):
        compiled.compile_transforms("fastest")


def test_bf16_transforms_keep_streams_decodable_everywhere(model: EVC, photo: np.ndarray) -> None:
    # the transforms' precision moves only pixels: the entropy path is exact, so either side may use either
    fast = streamcodec.load_model("evc-s", device="cpu", precision="bf16")
    assert next(fast.analysis.parameters()).dtype == torch.bfloat16 and fast.transform_dtype == torch.bfloat16
    h, w = photo.shape[:2]
    x = to_tensor(photo, "cpu")
    frame, x_hat = fast.compress(x, 32, reconstruct=True)
    assert torch.equal(fast.decompress(frame.payload, h, w, frame.q_index), x_hat)  # its own decoder: exact
    by_fp32 = model.decompress(frame.payload, h, w, frame.q_index)  # no desync, pixels within bf16 rounding

    def psnr(a: torch.Tensor) -> float:
        return float(10 * torch.log10(1 / ((a - x) ** 2).mean()))

    assert abs(psnr(by_fp32) - psnr(x_hat)) < 0.1 and 0 < float((by_fp32 - x_hat).abs().max()) < 0.1
    reference, _ = model.compress(x, 32)
    assert abs(len(frame.payload) / len(reference.payload) - 1) < 0.05  # bf16 analysis: nearly the same latents
    with pytest.raises(ValueError, match="precision must be one of"):
        streamcodec.load_model("evc-s", precision="int4")
