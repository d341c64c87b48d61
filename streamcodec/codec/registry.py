"""Model names, their architectures, and the shipped weights: ``load_model("evc-s")``.

Names are ``evc-<encoder size><decoder size>`` with sizes s, m, l (``evc-ls`` = Large encoder, Small decoder);
``evc-s``, ``evc-m`` and ``evc-l`` stand for ``evc-ss``, ``evc-mm`` and ``evc-ll``. A ``-rdo`` suffix
(``evc-s-rdo``) names the same model with RDONet's block-masked latent levels (:class:`MaskedEVC`). Weights ship as fp16
safetensors beside a JSON model card saying how they were trained.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..errors import ModelNotFoundError
from .evc import EVC, PRECISIONS
from .masked import MaskedEVC

WEIGHTS_DIR = Path(__file__).parent / "weights"
SIZES = "sml"
MASKED_SUFFIX = "-rdo"
ALIASES = {f"evc-{s}{m}": f"evc-{s}{s}{m}" for s in SIZES for m in ("", MASKED_SUFFIX)}
ARCHITECTURES = {f"evc-{e}{d}{m}": (e, d) for e in SIZES for d in SIZES for m in ("", MASKED_SUFFIX)}
#: FourCC of each architecture in stream headers (encoder size is irrelevant to decoding).
CODEC_IDS = {
    name: f"{'RDO' if name.endswith(MASKED_SUFFIX) else 'EVC'}{d.upper()}" for name, (_, d) in ARCHITECTURES.items()
}


def model_names() -> list[str]:
    """Every known model name, aliases included."""
    return sorted(ARCHITECTURES) + sorted(ALIASES)


def canonical_name(name: str) -> str:
    """Resolve an alias; raise :class:`ModelNotFoundError` listing the known names for an unknown one."""
    name = ALIASES.get(name, name)
    if name not in ARCHITECTURES:
        raise ModelNotFoundError(f"unknown model {name!r}; known models: {', '.join(model_names())}")
    return name


def create_model(name: str) -> EVC:
    """A freshly initialised (untrained) model of the named architecture, for training."""
    name = canonical_name(name)
    enc, dec = ARCHITECTURES[name]
    return MaskedEVC(enc, dec) if name.endswith(MASKED_SUFFIX) else EVC(enc, dec)


def weights_path(name: str) -> Path:
    """Where the shipped weights of a model live (whether or not they exist)."""
    return WEIGHTS_DIR / f"{canonical_name(name)}.safetensors"


def weights_hash(path: Path) -> bytes:
    """The 16-byte identity of a weights file that streams record (first half of its SHA-256)."""
    return hashlib.sha256(Path(path).read_bytes()).digest()[:16]


def model_card(name: str) -> dict[str, Any]:
    """The JSON model card shipped beside a model's weights."""
    path = weights_path(name).with_suffix(".json")
    if not path.exists():
        raise ModelNotFoundError(f"no model card for {canonical_name(name)!r} at {path}")
    return json.loads(path.read_text())


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``auto`` (or None) means CUDA when present, else the CPU; anything else is taken as it is, and a CUDA
    device this machine lacks is a ValueError."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            raise ValueError(f"device {device}: this machine has {count} CUDA device(s) that torch can use")
    return device


def machine_description(device: torch.device) -> str:
    """The CPU model and torch's thread count, plus the GPU's name when one is used."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    text = f"{cpu}, {torch.get_num_threads()} torch threads"
    if device.type == "cuda":
        text = f"{torch.cuda.get_device_name(device)}; host {text}"
    return text


def load_model(
    name: str = "evc-s",
    device: str | torch.device = "cpu",
    weights: Path | None = None,
    precision: str = "fp32",
    compile: str | None = None,
) -> EVC:
    """Load a model with trained weights, in eval mode on ``device`` (``auto``: see :func:`resolve_device`),
    its transforms in ``precision`` (:data:`PRECISIONS`; see :meth:`EVC.set_transform_dtype`) and, with a
    ``compile`` mode, compiled (:meth:`EVC.compile_transforms`).

    ``weights`` overrides the shipped file (e.g. a freshly exported one). Names without shipped weights
    raise :class:`ModelNotFoundError` saying which models have weights. On the CPU the weights are kept
    channels-last, which oneDNN runs about twice as fast (analysis 59 -> 36 ms, synthesis 74 -> 37 ms at
    320x256 on 2 cores); the entropy parameters do not depend on the layout (see :mod:`.exact`).
    """
    # Loading is no faster with more threads (0.46 vs 0.53 s on 2 cores), and a thread that never runs a parallel
    # operator never gets an OpenMP team: the thread that will run the model (QuantiseStage) keeps the cores.
    with torch_threads(1):
        model = _load(canonical_name(name), weights, device, precision)
    if compile is not None:
        model.compile_transforms(compile)
    return model


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run torch with ``count`` threads (None or 0: as it is) for a while; the previous count comes back after."""
    threads = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _load(canonical: str, weights: Path | None, device: str | torch.device, precision: str) -> EVC:
    path = Path(weights) if weights is not None else weights_path(canonical)
    if not path.exists():
        shipped = sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))
        raise ModelNotFoundError(
            f"no weights for {canonical!r} (looked for {path}); models with shipped weights: {', '.join(shipped)}"
        )
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    model = create_model(canonical)
    model.load_state_dict(load_file(str(path)))  # copied into the model's own dtypes (fp16 files to fp32)
    model.name = canonical
    model.codec_id = CODEC_IDS[canonical]
    model.weights_hash = weights_hash(path)
    device = resolve_device(device)
    model = model.eval().to(device)
    model.set_transform_dtype(PRECISIONS[precision])
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)
    model.prepare_coding()
    return model
