"""Running a model's analysis and synthesis transforms through a backend, one compiled callable per shape."""

from __future__ import annotations

import torch
from torch import nn

from streamcodec.codec.evc import EVC

from .backends import Backend, Transform, select_backend
from .cache import EngineCache


class CompiledTransform(nn.Module):
    """A transform that runs through ``backend``, compiled on the first input of each shape, dtype and device
    (video frames keep one size, so a stream compiles once). The original module stays as :attr:`eager`."""

    def __init__(self, eager: nn.Module, backend: Backend) -> None:
        super().__init__()
        self.eager = eager
        self.backend = backend
        self._compiled: dict[tuple[tuple[int, ...], torch.dtype, torch.device], Transform] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = (tuple(x.shape), x.dtype, x.device)
        compiled = self._compiled.get(key)
        if compiled is None:
            compiled = self._compiled[key] = self.backend.compile(self.eager, x)
        return compiled(x)


def accelerate(
    model: EVC,
    backend: Backend | str = "auto",
    dtype: torch.dtype = torch.float16,
    cache: EngineCache | None = None,
) -> Backend:
    """Run ``model``'s analysis and synthesis transforms through ``backend`` (a backend, or a name for
    :func:`select_backend`); return the backend used. The entropy-parameter path is left as it is.

    For inference: the model's ``state_dict`` keys change while accelerated; :func:`restore` undoes it.
    """
    if model._compiled is not None:  # its compiled graphs would run instead of the backend's
        raise ValueError("the model's transforms are torch.compile graphs (load_model(compile=...)): accelerate "
                         "a model loaded without compile")
    if isinstance(backend, str):
        backend = select_backend(backend, model.q_basic.device, dtype, cache)
    restore(model)
    model.analysis = CompiledTransform(model.analysis, backend)
    model.synthesis = CompiledTransform(model.synthesis, backend)
    return backend


def restore(model: EVC) -> None:
    """Put the model's own transforms back (no-op for a model that is not accelerated)."""
    for name in ("analysis", "synthesis"):
        transform = getattr(model, name)
        if isinstance(transform, CompiledTransform):
            setattr(model, name, transform.eager)
