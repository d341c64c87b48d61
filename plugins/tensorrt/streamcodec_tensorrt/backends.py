"""Transform backends: TensorRT through torch-tensorrt, and plain torch, the fallback.

A backend turns a transform (an ``nn.Module`` taking one image-like tensor) into a callable for one fixed input
shape. Only the analysis and synthesis transforms are ever given to a backend: the entropy-parameter path
(hyper decoder, prior fusion, spatial prior) stays in the codec's exact fixed-point torch code, so a stream coded
with any backend decodes with the plain torch decoder. A backend changes which latents the encoder codes and the
pixels the decoder outputs (within the precision asked for), never whether a stream decodes.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable

import torch
from torch import nn

from .cache import EngineCache

log = logging.getLogger("streamcodec.tensorrt")

Transform = Callable[[torch.Tensor], torch.Tensor]


def export_static(module: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``torch.export`` of ``module`` for inputs of exactly ``example``'s shape and dtype: the graph
    torch-tensorrt's dynamo path compiles."""
    return torch.export.export(module.eval(), (example,), strict=False)


class TorchBackend:
    """Plain torch: the transform itself, or at ``dtype`` a copy of it cast to that precision (inputs cast in,
    outputs cast back to float32). ``reason`` says why this backend was chosen over TensorRT, if it was."""

    name = "torch"

    def __init__(self, dtype: torch.dtype = torch.float32, reason: str | None = None) -> None:
        self.dtype = dtype
        self.reason = reason

    def compile(self, module: nn.Module, example: torch.Tensor) -> Transform:
        if self.dtype == torch.float32:
            return module
        cast = copy.deepcopy(module).to(self.dtype)
        return lambda x: cast(x.to(self.dtype)).float()


class TensorRTBackend:
    """torch-tensorrt's dynamo path: export at the example's shape, build a TensorRT engine with ``dtype``
    kernels allowed, cache it on disk (see :class:`EngineCache`) and load it from there next time."""

    name = "tensorrt"

    def __init__(self, dtype: torch.dtype = torch.float16, cache: EngineCache | None = None) -> None:
        import tensorrt
        import torch_tensorrt

        self._trt = torch_tensorrt
        self.dtype = dtype
        self.cache = cache or EngineCache()
        self.reason: str | None = None
        major, minor = torch.cuda.get_device_capability()
        versions = f"torch_tensorrt {torch_tensorrt.__version__}; TensorRT {tensorrt.__version__}"
        self.runtime = f"{versions}; sm_{major}{minor}"  # engines are built for one GPU architecture

    def compile(self, module: nn.Module, example: torch.Tensor) -> Transform:
        key = self.cache.key(module, tuple(example.shape), self.dtype, self.runtime)
        cached = self.cache.load(key)
        if cached is not None:
            log.info("TensorRT engine %s loaded from %s", key, self.cache.root)
            return cached
        log.info("building a TensorRT engine: %s at %s, %s", type(module).__name__, tuple(example.shape), self.dtype)
        program = export_static(module, example)
        engine = self._trt.dynamo.compile(program, inputs=[example], enabled_precisions={self.dtype})
        self.cache.store(key, lambda path: self._trt.save(engine, path, inputs=[example]))
        return engine


Backend = TorchBackend | TensorRTBackend


def tensorrt_unavailable(device: torch.device) -> str | None:
    """Why TensorRT cannot run the transforms of a model on ``device``, or None if it can."""
    try:
        import tensorrt  # noqa: F401
        import torch_tensorrt  # noqa: F401
    except ImportError as error:
        return f"torch_tensorrt is not installed ({error}; pip install 'streamcodec[tensorrt]')"
    if not torch.cuda.is_available():
        return "CUDA is not available"
    if device.type != "cuda":
        return f"the model is on {device}; TensorRT runs on CUDA devices"
    return None


def select_backend(
    name: str = "auto",
    device: torch.device | str = "cuda",
    dtype: torch.dtype = torch.float16,
    cache: EngineCache | None = None,
) -> Backend:
    """The backend ``name`` asks for: ``torch``, or ``tensorrt``/``auto``, which fall back to plain torch (at
    ``dtype``) with the reason logged and kept in ``backend.reason`` when TensorRT cannot run here."""
    if name not in ("auto", "tensorrt", "torch"):
        raise ValueError(f"unknown transform backend {name!r}; expected auto, tensorrt or torch")
    if name == "torch":
        return TorchBackend(dtype)
    reason = tensorrt_unavailable(torch.device(device))
    if reason is not None:
        log.warning("TensorRT backend unavailable: %s; the transforms run on plain torch", reason)
        return TorchBackend(dtype, reason)
    return TensorRTBackend(dtype, cache)
