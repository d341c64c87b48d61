"""On-disk cache of compiled transforms, keyed by what makes an engine valid.

A TensorRT engine holds one network's weights, built for one input shape and precision by one TensorRT version
for one GPU architecture; a change of any of them needs a new engine, so all of them are in the key.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn

#: Where engines go unless a cache folder is given: $STREAMCODEC_CACHE/tensorrt, else ~/.cache/streamcodec/tensorrt.
DEFAULT_ROOT = Path(os.environ.get("STREAMCODEC_CACHE", Path.home() / ".cache" / "streamcodec")) / "tensorrt"


def weights_digest(module: nn.Module) -> str:
    """SHA-256 of a module's parameters and buffers (names, dtypes, shapes, bytes): its weights' identity."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)};".encode())
        digest.update(data.flatten().view(torch.uint8).numpy().tobytes() if data.numel() else b"")
    return digest.hexdigest()


class EngineCache:
    """Compiled programs as files ``<root>/<key>.ep``, written atomically (a crash leaves no half file)."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else DEFAULT_ROOT

    def key(self, module: nn.Module, shape: Sequence[int], dtype: torch.dtype, runtime: str) -> str:
        """The cache key of ``module`` compiled for inputs of ``shape`` at precision ``dtype`` by ``runtime``
        (compiler and TensorRT versions, GPU architecture)."""
        fields = [weights_digest(module), "x".join(map(str, shape)), str(dtype), runtime]
        return hashlib.sha256("\n".join(fields).encode()).hexdigest()[:32]

    def path(self, key: str) -> Path:
        return self.root / f"{key}.ep"

    def load(self, key: str) -> nn.Module | None:
        """The cached program as a callable module, or None if there is none."""
        path = self.path(key)
        if not path.exists():
            return None
        return torch.export.load(str(path)).module()

    def store(self, key: str, save: Callable[[str], None]) -> Path:
        """Write an entry with ``save(path)`` (e.g. ``torch_tensorrt.save``) to a temporary name, then rename it."""
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.path(key)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            save(str(temporary))
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        return path
