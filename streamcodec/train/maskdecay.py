"""Mask decay (EVC, Wang et al. 2023): turn a trained wide teacher into a narrower student.

The student starts as an exact copy of the teacher (say ``evc-ll``). Every channel space of its transforms that
the student's widths (say S) make narrower gets a per-channel mask; the channels to remove (the weakest, by
the norm of the filters that produce them) have their masks decayed towards zero with the sparsity loss

    L(x) = -x^2/2 + x  (0 <= x <= 1),    x^2/2 - x + 1  (x > 1),    dL/dx = |x - 1|,

while the student is distilled from the frozen teacher (its latent and its reconstruction) on top of the
usual rate-distortion loss. At the end the masked channels are removed, leaving a plain EVC at the student's
widths (:func:`prune`), which loads into ``create_model("evc-ss")``.

How the pieces are realised here:

- A *channel space* is a set of feature channels that several convolutions share: the residual stream at one
  resolution (every block adds into it), a block's internal width, or a feed-forward hidden width. Masking a
  space multiplies the outputs of the convolutions that produce it (forward hooks, so the transforms' code and
  their state-dict keys stay unchanged). LeakyReLU is positively homogeneous and residual sums of zeros stay
  zero, so a channel whose mask is 0 is exactly 0 wherever it is read, and removing it is exact.
- The decay is decoupled from the optimiser, as weight decay is in AdamW: after each optimiser step the masks of
  the channels to remove move by ``-rate * dL/dx``. The gradient is small near 1, giving the network time to
  adapt, and close to 1 near 0, so masks reach exactly 0 (the poster's point against L2, whose gradient
  vanishes there, and L1, whose gradient ignores the magnitude). The masks are also trained by the task loss,
  which moves them off 1, where dL/dx = 0. After ``decay_steps`` steps any mask still above 0 is set to 0 and
  the run goes on as distillation of the pruned student.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..codec.evc import EVC
from ..codec.layers import ConvFFN, DepthConv, DepthConvBlock, ResBlockStride, ResBlockUp
from ..codec.registry import ARCHITECTURES, canonical_name, create_model, load_model
from ..codec.transforms import WIDTHS
from .checkpoint import load_checkpoint
from .weights import load_weights


def sparsity_loss(x: torch.Tensor) -> torch.Tensor:
    """EVC's sparsity loss, element-wise: -x^2/2 + x on [0, 1], x^2/2 - x + 1 above (x >= 0)."""
    return torch.where(x <= 1, x - x * x / 2, x * x / 2 - x + 1)


# -- channel spaces of the transforms -------------------------------------------------------------------------


@dataclass(frozen=True)
class Space:
    """A set of channels shared by several convolutions; its width is ``factor`` times width ``level`` of a size
    (:data:`~streamcodec.codec.transforms.WIDTHS`: 0, 1, 2 for 1/2, 1/4, 1/8 resolution)."""

    name: str
    level: int
    factor: int = 1

    def width(self, size: str) -> int:
        return WIDTHS[size][self.level] * self.factor


@dataclass(frozen=True)
class ConvRole:
    """Which spaces a convolution reads and writes (``None``: a width every size shares, such as RGB or the
    latent). ``repeat`` output channels make one space channel (4 before a pixel shuffle by 2)."""

    reads: Space | None
    writes: Space | None
    repeat: int = 1
    depthwise: bool = False


def conv_roles(transform: nn.Sequential, side: str) -> dict[str, ConvRole]:
    """The role of every convolution of an analysis (``side="analysis"``) or synthesis transform, by its path
    inside the transform. Follows the blocks' structure in :mod:`~streamcodec.codec.layers`."""
    levels = iter((0, 1, 2) if side == "analysis" else (2, 1, 0))
    roles: dict[str, ConvRole] = {}
    stream: Space | None = None
    for i, block in enumerate(transform):
        p = str(i)
        if isinstance(block, (ResBlockStride, ResBlockUp)):
            level = next(levels)
            out, mid = Space(f"{side}.stream{level}", level), Space(f"{side}.{p}.mid", level)
            if isinstance(block, ResBlockStride):
                roles |= {f"{p}.conv1": ConvRole(stream, mid), f"{p}.conv2": ConvRole(mid, out),
                          f"{p}.shortcut": ConvRole(stream, out)}
            else:
                roles |= {f"{p}.up.0": ConvRole(stream, mid, 4), f"{p}.conv": ConvRole(mid, out),
                          f"{p}.shortcut.0": ConvRole(stream, out, 4)}
            stream = out
        elif isinstance(block, DepthConvBlock):
            dc, ffn = block
            assert isinstance(dc, DepthConv) and isinstance(ffn, ConvFFN) and isinstance(dc.shortcut, nn.Identity)
            inner = None if stream is None else Space(f"{side}.{p}.inner", stream.level)
            hidden = None if stream is None else Space(f"{side}.{p}.hidden", stream.level, 4)
            roles |= {f"{p}.0.conv1": ConvRole(stream, inner), f"{p}.0.depth_conv": ConvRole(inner, inner, 1, True),
                      f"{p}.0.conv2": ConvRole(inner, stream), f"{p}.1.net.0": ConvRole(stream, hidden),
                      f"{p}.1.net.2": ConvRole(hidden, stream)}
        elif isinstance(block, nn.Conv2d):  # analysis: the last convolution, to the latent
            roles[p] = ConvRole(stream, None)
        elif isinstance(block, nn.Sequential) and isinstance(block[1], nn.PixelShuffle):  # synthesis: to RGB
            roles[f"{p}.0"] = ConvRole(stream, None, 4)
        else:
            raise TypeError(f"no channel roles known for {type(block).__name__} at {side}.{p}")
    return roles


# -- masks ----------------------------------------------------------------------------------------------------


class SpaceMask(nn.Module):
    """The mask of one channel space: learnable values, and which channels the student keeps (always 1)."""

    def __init__(self, keep: torch.Tensor) -> None:
        super().__init__()
        self.mask = nn.Parameter(torch.ones(len(keep)))
        self.register_buffer("keep", keep.clone())

    def effective(self, finished: torch.Tensor) -> torch.Tensor:
        """The mask applied: 1 on kept channels; on the others max(mask, 0), or 0 once decay has ``finished``
        (a tensor, so that a forward pass on the GPU never waits for it)."""
        removed = torch.where(finished, torch.zeros_like(self.mask), self.mask.clamp_min(0))
        return torch.where(self.keep, torch.ones_like(self.mask), removed)


class ChannelMasks(nn.Module):
    """All masks of a model being decayed from its own widths to ``student``'s (an architecture name)."""

    def __init__(self, model: EVC, student: str) -> None:
        super().__init__()
        self.student = canonical_name(student)
        enc, dec = ARCHITECTURES[self.student]
        self.roles = {side: conv_roles(getattr(model, side), side) for side in ("analysis", "synthesis")}
        teacher_sizes = {side: _size_of(getattr(model, side), roles) for side, roles in self.roles.items()}
        self.sizes = {"analysis": enc, "synthesis": dec}
        self.spaces = nn.ModuleDict()
        self.register_buffer("finished", torch.tensor(False))
        for side, roles in self.roles.items():
            transform = getattr(model, side)
            for space in dict.fromkeys(r.writes for r in roles.values() if r.writes is not None):
                teacher_width, width = space.width(teacher_sizes[side]), space.width(self.sizes[side])
                if width > teacher_width:
                    raise ValueError(f"student {self.student} is wider than the teacher in {space.name}")
                if width < teacher_width:
                    importance = _importance(transform, roles, space)
                    keep = torch.zeros(teacher_width, dtype=torch.bool)
                    keep[torch.argsort(importance, descending=True, stable=True)[:width]] = True
                    self.spaces[_key(space)] = SpaceMask(keep)
        if not self.spaces:
            raise ValueError(f"student {self.student} is as wide as the teacher: there are no channels to decay")

    def effective(self, space: Space | None) -> torch.Tensor | None:
        """The mask of a space as applied, or None for a space the student does not narrow."""
        key = None if space is None else _key(space)
        if key is None or key not in self.spaces:
            return None
        return self.spaces[key].effective(self.finished)

    def removed_values(self) -> torch.Tensor:
        """The applied mask values of every channel the student removes (these decay to 0)."""
        return torch.cat([m.effective(self.finished)[~m.keep] for m in self.spaces.values()])

    @torch.no_grad()
    def decay(self, rate: float) -> None:
        """One decay step: each removed channel's mask moves by ``-rate * dL/dx`` (not below 0)."""
        for m in self.spaces.values():
            x = m.mask.detach().clamp_min(0).requires_grad_()
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(sparsity_loss(x).sum(), x)
            m.mask.copy_(torch.where(m.keep, m.mask, (x - rate * grad).clamp_min(0)))

    @torch.no_grad()
    def finish(self) -> None:
        """End the decay: every removed channel's mask is 0 from now on (the model now computes the student)."""
        self.finished.fill_(True)
        for m in self.spaces.values():
            m.mask.masked_fill_(~m.keep, 0.0)

    def kept(self, space: Space | None) -> torch.Tensor | None:
        """Indices of a space's kept channels, or None when all are kept."""
        key = None if space is None else _key(space)
        if key is None or key not in self.spaces:
            return None
        return torch.nonzero(self.spaces[key].keep).flatten()


class _MaskOutput:
    """Forward hook multiplying a convolution's output channels by its space's mask."""

    def __init__(self, masks: ChannelMasks, space: Space, repeat: int) -> None:
        self.masks, self.space, self.repeat = masks, space, repeat

    def __call__(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        mask = self.masks.effective(self.space)
        if mask is None:
            return output
        return output * mask.repeat_interleave(self.repeat).to(output.dtype).view(1, -1, 1, 1)


def attach_masks(model: EVC, student: str) -> ChannelMasks:
    """Give ``model``'s transforms channel masks towards ``student``'s widths (in place; the masks become
    ``model.channel_masks``, saved and loaded with the model's state)."""
    masks = ChannelMasks(model, student)
    model.channel_masks = masks
    for side, roles in masks.roles.items():
        transform = getattr(model, side)
        for path, role in roles.items():
            if role.writes is not None and masks.effective(role.writes) is not None:
                transform.get_submodule(path).register_forward_hook(_MaskOutput(masks, role.writes, role.repeat))
    return masks


def prune(model: EVC) -> EVC:
    """The plain student EVC of a masked ``model``: its removed channels cut out, the rest copied.

    Exact when every removed channel's mask is 0 (:meth:`ChannelMasks.finish`); earlier, the removed channels'
    remaining contribution is lost.
    """
    masks: ChannelMasks = model.channel_masks
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("channel_masks.")}
    for side, roles in masks.roles.items():
        for path, role in roles.items():
            key = f"{side}.{path}"
            weight, bias = state[f"{key}.weight"], state[f"{key}.bias"]
            out_idx = masks.kept(role.writes)
            if out_idx is not None:
                out_idx = (out_idx.view(-1, 1) * role.repeat + torch.arange(role.repeat)).flatten()
                weight, bias = weight[out_idx], bias[out_idx]
            in_idx = masks.kept(role.reads)
            if in_idx is not None and not role.depthwise:
                weight = weight[:, in_idx]
            state[f"{key}.weight"], state[f"{key}.bias"] = weight.contiguous(), bias.contiguous()
    student = EVC(*ARCHITECTURES[masks.student], n=model.n)
    student.load_state_dict(state)
    return student


def pruned_state(state: dict[str, torch.Tensor], teacher: str, student: str) -> dict[str, torch.Tensor]:
    """:func:`prune` on the saved state of a masked model whose architecture is ``teacher``."""
    model = EVC(*ARCHITECTURES[canonical_name(teacher)], n=state["q_basic"].shape[1])
    attach_masks(model, student)
    model.load_state_dict(state)
    model.channel_masks.finish()
    return prune(model).state_dict()


# -- the training objective -----------------------------------------------------------------------------------


@dataclass
class MaskDecayConfig:
    """A mask-decay run: teacher (registry name or weights/checkpoint path), its architecture, the schedule
    and the weight of distillation."""

    teacher: str
    teacher_model: str
    decay_steps: int = 2000
    #: Decay rate per step; ``None``: 16 / decay_steps, which takes a mask nudged to 1 - 1e-4 to 0 in about
    #: 60 % of the decay phase (1 - x grows by a factor 1 + rate per step while x > 0).
    decay_rate: float | None = None
    distill: float = 1.0
    #: SHA-256 of the teacher's weights, recorded when the run starts: a resumed run refuses another teacher
    #: under the same name (retrained shipped weights, a checkpoint still training)
    teacher_digest: str | None = None

    @property
    def rate(self) -> float:
        """The mask decay rate per step: ``decay_rate``, or 16 / ``decay_steps`` when it is None."""
        return self.decay_rate if self.decay_rate is not None else 16.0 / self.decay_steps


def load_teacher(spec: str) -> tuple[str, dict[str, torch.Tensor]]:
    """A teacher's architecture name and weights from a registry name (shipped weights), a training
    checkpoint (``.pt``) or a weights file (``.safetensors``)."""
    path = Path(spec)
    if path.suffix == ".pt":
        state = load_checkpoint(path)
        if state["config"].get("mask_decay"):
            raise ValueError(f"teacher {spec} is itself a mask-decay run; export its pruned weights instead")
        return canonical_name(state["config"]["model"]), state["model"]
    if path.suffix == ".safetensors":
        if not path.exists():
            raise FileNotFoundError(f"no teacher weights at {spec}")
        weights, meta = load_weights([path])
        if "model" not in meta:
            raise ValueError(f"{spec} does not say which architecture it holds (no training metadata)")
        return canonical_name(meta["model"]), weights
    name = canonical_name(spec)
    return name, load_model(name).state_dict()


def weights_digest(weights: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names and float32 values of ``weights``, in name order."""
    h = hashlib.sha256()
    for name in sorted(weights):
        h.update(name.encode())
        h.update(weights[name].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


@contextmanager
def _captured(module: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the outputs of ``module`` while the context is open."""
    outputs: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: outputs.append(out))
    try:
        yield outputs
    finally:
        handle.remove()


class MaskDecay:
    """The mask-decay objective of a training run: owns the frozen teacher and the masked student.

    ``student`` is the model to train (the teacher's architecture with masks); the trainer calls the object for
    the extra loss of each batch and :meth:`after_step` after each optimiser step.
    """

    def __init__(self, cfg: MaskDecayConfig, student: str, device: torch.device) -> None:
        self.cfg = cfg
        arch, weights = load_teacher(cfg.teacher)
        if arch != canonical_name(cfg.teacher_model):
            raise ValueError(f"teacher {cfg.teacher} is {arch}, the run was started from {cfg.teacher_model}")
        digest = weights_digest(weights)
        if cfg.teacher_digest is not None and digest != cfg.teacher_digest:
            raise ValueError(
                f"teacher {cfg.teacher} now holds other weights (sha256 {digest[:12]}...) than the run was started "
                f"with ({cfg.teacher_digest[:12]}...)"
            )
        cfg.teacher_digest = digest
        self.teacher = create_model(arch)
        self.teacher.load_state_dict(weights)
        self.teacher.requires_grad_(False).eval().to(device)
        self.student = create_model(arch)
        self.student.load_state_dict(weights)
        self.masks = attach_masks(self.student, student)
        self.student.to(device)
        self._features: torch.Tensor | None = None  # the student's latest analysis output
        self.student.analysis.register_forward_hook(self._keep_features)

    def _keep_features(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> None:
        self._features = output

    def __call__(
        self, x: torch.Tensor, q: torch.Tensor, lam: torch.Tensor, out: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Distillation loss of the student's forward pass ``out`` on batch ``x`` at qualities ``q``: per
        sample, lam * MSE between the reconstructions plus the MSE between the latents in quantisation-step
        units (each model's latent divided by its own q_basic * q_scale), times ``distill``."""
        features, self._features = self._features, None
        if features is None:
            raise RuntimeError("mask decay's loss needs the student's forward pass on the batch first")
        with torch.no_grad(), _captured(self.teacher.analysis) as teacher_features:
            teacher_out = self.teacher(x, q, noise=False)
        y = features.float() / self.student.latent_scale(q)
        y_teacher = teacher_features[0].float() / self.teacher.latent_scale(q)
        latent = (y - y_teacher).pow(2).mean(dim=(1, 2, 3))
        image = (out["x_hat"].float() - teacher_out["x_hat"].float()).pow(2).mean(dim=(1, 2, 3))
        loss = self.cfg.distill * (lam * image + latent).mean()
        removed = self.masks.removed_values()
        stats = {"distill": loss.item(), "mask": removed.mean().item(), "mask_max": removed.max().item()}
        return loss, stats

    def after_step(self, step: int) -> None:
        """Decay the masks after optimiser step ``step`` (counted from the start of the run); finish the decay
        at ``decay_steps``."""
        if bool(self.masks.finished):
            return
        if step >= self.cfg.decay_steps:
            self.masks.finish()
        else:
            self.masks.decay(self.cfg.rate)

    def pruned_state(self) -> dict[str, torch.Tensor]:
        """The weights of the pruned student (the decay finished on a copy if it has not yet)."""
        state = {k: v.detach().cpu() for k, v in self.student.state_dict().items()}
        return pruned_state(state, self.cfg.teacher_model, self.masks.student)


def _key(space: Space) -> str:
    return space.name.replace(".", "_")


def _size_of(transform: nn.Sequential, roles: dict[str, ConvRole]) -> str:
    """The size (s, m, l) of a transform, from the widths of the spaces its convolutions write."""
    widths = [0, 0, 0]
    for path, role in roles.items():
        if role.writes is not None and role.writes.factor == 1:
            widths[role.writes.level] = transform.get_submodule(path).out_channels // role.repeat
    for size, expected in WIDTHS.items():
        if tuple(widths) == expected:
            return size
    raise ValueError(f"transform widths {tuple(widths)} match no size")


def _importance(transform: nn.Sequential, roles: dict[str, ConvRole], space: Space) -> torch.Tensor:
    """Per channel of ``space``: the norms of the filters producing it, each producer normalised by its mean."""
    total = torch.zeros(())
    for path, role in roles.items():
        if role.writes == space:
            conv = transform.get_submodule(path)
            rows = torch.cat((conv.weight.detach().flatten(1), conv.bias.detach().view(-1, 1)), dim=1)
            norms = rows.reshape(-1, role.repeat * rows.shape[1]).norm(dim=1)
            total = total + norms / norms.mean().clamp_min(1e-12)
    return total


__all__ = [
    "ChannelMasks",
    "MaskDecay",
    "MaskDecayConfig",
    "attach_masks",
    "conv_roles",
    "prune",
    "pruned_state",
    "sparsity_loss",
]
