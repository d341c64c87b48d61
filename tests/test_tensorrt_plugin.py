"""The TensorRT plugin without TensorRT: static-shape export (torch-tensorrt's first step), engine cache keys,
the fallback and its reason, and streams coded through a backend decoding with the plain torch decoder."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import torch
from streamcodec_tensorrt import (
    CompiledTransform,
    EngineCache,
    TorchBackend,
    accelerate,
    export_static,
    restore,
    select_backend,
)

import streamcodec
from streamcodec.codec.evc import EVC
from streamcodec.codec.stream import FrameDecoder, FrameEncoder
from streamcodec.evaluate.metrics import psnr


@pytest.fixture(scope="module")
def fresh_model() -> EVC:
    """A model of this module's own, since accelerating one changes it."""
    return streamcodec.load_model("evc-s", device="cpu")


def frames(count: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    base = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    return [np.ascontiguousarray(base[:, 4 * i : 4 * i + 64]) for i in range(count)]


def coded(model: EVC) -> list[streamcodec.Packet]:
    encoder = FrameEncoder(model, 64, 48, 40)
    return [encoder.encode(image, pts)[0] for pts, image in enumerate(frames())]


def decoded(model: EVC, packets: list[streamcodec.Packet]) -> list[np.ndarray]:
    """The plain torch decoder's pictures."""
    decoder = FrameDecoder(model, FrameEncoder(model, 64, 48, 40).header)
    return [decoder.decode(packet, i) for i, packet in enumerate(packets)]


def test_transforms_export_at_static_shapes_and_match_eager(model: EVC, one_torch_thread: None) -> None:
    x = torch.rand(1, 3, 64, 64)
    y = model.analysis(x)
    for module, example in ((model.analysis, x), (model.synthesis, y)):
        with torch.inference_mode():  # where the codec compiles: inside compress/decompress
            program = export_static(module, example)
        assert torch.equal(program.module()(example), module(example))
        other = torch.rand(*example.shape[:2], example.shape[2] * 2, example.shape[3])
        with pytest.raises(AssertionError, match="Guard failed"):  # static: one shape per engine
            program.module()(other)


def test_engine_cache_key_follows_weights_size_dtype_and_runtime(model: EVC, tmp_path) -> None:
    cache = EngineCache(tmp_path)
    key = cache.key(model.analysis, (1, 3, 64, 64), torch.float16, "trt 10.0")
    assert key == cache.key(model.analysis, (1, 3, 64, 64), torch.float16, "trt 10.0")
    others = {
        cache.key(model.synthesis, (1, 3, 64, 64), torch.float16, "trt 10.0"),
        cache.key(model.analysis, (1, 3, 128, 64), torch.float16, "trt 10.0"),
        cache.key(model.analysis, (1, 3, 64, 64), torch.float32, "trt 10.0"),
        cache.key(model.analysis, (1, 3, 64, 64), torch.float16, "trt 10.1"),
    }
    changed = streamcodec.load_model("evc-s")
    with torch.no_grad():
        changed.analysis[-1].bias[0] += 1e-3
    others.add(cache.key(changed.analysis, (1, 3, 64, 64), torch.float16, "trt 10.0"))
    assert len(others) == 5 and key not in others
    # an entry is written atomically and loads back as a callable program
    x = torch.rand(1, 3, 64, 64)
    program = export_static(model.analysis, x)
    assert cache.load(key) is None
    path = cache.store(key, lambda p: torch.export.save(program, p))
    assert sorted(tmp_path.iterdir()) == [path]
    assert torch.equal(cache.load(key)(x), model.analysis(x))


def test_fallback_to_torch_when_torch_tensorrt_is_missing(monkeypatch, caplog) -> None:
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)  # import torch_tensorrt raises ImportError
    with caplog.at_level(logging.WARNING, logger="streamcodec.tensorrt"):
        backend = select_backend("auto", "cpu", torch.float16)
    assert isinstance(backend, TorchBackend) and backend.dtype == torch.float16
    assert "torch_tensorrt is not installed" in backend.reason
    assert "TensorRT backend unavailable: torch_tensorrt is not installed" in caplog.text
    assert isinstance(select_backend("tensorrt", "cpu"), TorchBackend)
    assert select_backend("torch").reason is None
    with pytest.raises(ValueError, match="unknown transform backend"):
        select_backend("onnx")


def test_stream_coded_through_the_fallback_decodes_bit_exact(
    model: EVC, fresh_model: EVC, one_torch_thread: None
) -> None:
    plain = coded(model)
    backend = accelerate(fresh_model, "auto", dtype=torch.float32)  # no TensorRT here: plain torch, fp32
    assert isinstance(fresh_model.analysis, CompiledTransform) and backend.reason
    try:
        through = coded(fresh_model)
        assert through == plain
        for got, want in zip(decoded(model, through), decoded(model, plain), strict=True):
            assert np.array_equal(got, want)
        assert len(fresh_model.analysis._compiled) == 1  # one frame size: compiled once
    finally:
        restore(fresh_model)
    assert not isinstance(fresh_model.analysis, CompiledTransform)
    assert fresh_model.state_dict().keys() == model.state_dict().keys()


def test_reduced_precision_transforms_keep_streams_decodable(
    model: EVC, fresh_model: EVC, one_torch_thread: None
) -> None:
    """What TensorRT's fp16 kernels do to the transforms, bf16 torch does here: other latents and pixels, but the
    entropy parameters stay in float64 torch, so the plain float32 decoder decodes every frame (no DesyncError)."""
    accelerate(fresh_model, TorchBackend(torch.bfloat16))
    try:
        reduced = coded(fresh_model)
    finally:
        restore(fresh_model)
    plain = coded(model)
    assert [p.payload for p in reduced] != [p.payload for p in plain]
    for image, got, want in zip(frames(), decoded(model, reduced), decoded(model, plain), strict=True):
        assert abs(psnr(got, image) - psnr(want, image)) < 1.0


def test_a_model_with_compiled_transforms_is_refused() -> None:
    """Its torch.compile graphs would run instead of the backend's engines, silently."""
    compiled = streamcodec.load_model("evc-s", device="cpu", compile="default")  # graphs built on first use
    with pytest.raises(ValueError, match="torch.compile graphs"):
        accelerate(compiled, "torch")
