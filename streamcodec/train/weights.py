"""Weights files: safetensors (fp16 to ship, fp32 to carry between machines) with training metadata.

A full checkpoint (optimiser included) is ~150 MB for EVC-S, more than a GPU loan can carry either way, so
GPU bursts move weights only: the run continues from them with a fresh optimiser and a short warm-up.
Files may be split into shards no larger than a size limit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file


def save_weights(
    state: dict[str, torch.Tensor],
    path: Path,
    metadata: dict[str, Any],
    dtype: torch.dtype = torch.float16,
    shard_bytes: int | None = None,
) -> list[Path]:
    """Write ``state`` as ``path`` (or ``path`` stem + ``-00001-of-0000N`` shards) with JSON ``metadata``.

    Weights are stored as ``dtype``; float64 buffers (a masked model's variance thresholds) keep their precision.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", dtype if v.dtype != torch.float64 else v.dtype).contiguous()
               for k, v in state.items()}
    groups: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if shard_bytes is not None and groups[-1] and size + nbytes > shard_bytes:
            groups.append({})
            size = 0
        groups[-1][name] = t
        size += nbytes
    meta = {"streamcodec": json.dumps(metadata)}
    if len(groups) == 1:
        save_file(groups[0], str(path), metadata=meta)
        return [path]
    paths = [path.with_name(f"{path.stem}-{i + 1:05d}-of-{len(groups):05d}{path.suffix}") for i in range(len(groups))]
    for group, p in zip(groups, paths):
        save_file(group, str(p), metadata=meta)
    return paths


def load_weights(paths: list[Path]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read one weights file or all shards of one (fp32 tensors) and their metadata."""
    state: dict[str, torch.Tensor] = {}
    metadata: dict[str, Any] = {}
    for p in paths:
        with safe_open(str(p), framework="pt") as f:
            metadata = json.loads((f.metadata() or {}).get("streamcodec", "{}"))
            for k in f.keys():
                state[k] = f.get_tensor(k).float()
    return state, metadata


def average_weights(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform mean of several models' weights (checkpoints of one run; all must have the same tensors).

    Averaging the last saves of a low-learning-rate phase smooths out the step-to-step noise of SGD (stochastic
    weight averaging, Izmailov et al. 2018): on Kodak it gained 0.6 % BD-rate over the phase's last checkpoint.
    """
    if not states:
        raise ValueError("no weights to average")
    first = states[0]
    for state in states[1:]:
        if state.keys() != first.keys() or any(state[k].shape != first[k].shape for k in first):
            raise ValueError("cannot average weights of different models (their tensors differ in names or shapes)")
    return {k: torch.stack([s[k].to(torch.float64) for s in states]).mean(0).to(first[k].dtype) for k in first}
