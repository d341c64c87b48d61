"""The training loop: variable-rate rate-distortion training that accumulates across sessions.

Every sample of a batch draws a quality q; its loss is lambda(q) * MSE + bpp, with lambda(q) log-interpolated
between one lambda per anchor q_scale (as the model interpolates q_scale). Runs resume exactly from their
checkpoint and stop cleanly at a time limit or on SIGINT/SIGTERM, saving first.
"""

from __future__ import annotations

import dataclasses
import math
import platform
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..codec.quality import ANCHOR_QPS, QP_MAX, interpolate_log
from ..codec.registry import create_model
from .checkpoint import load_checkpoint, save_checkpoint
from .data import CropSampler
from .weights import load_weights

#: lambda per anchor q_scale (qp 0, 21, 42, 63), for MSE on RGB in [0, 1].
DEFAULT_LAMBDAS = (117.0, 325.0, 910.0, 2536.0)


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in its checkpoint)."""

    model: str = "evc-ss"
    data: str = "../shared/data/train"
    crop: int = 128
    batch: int = 8
    lr: float = 1.5e-4
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS
    quality_sampling: str = "mixed"  # "anchors", "uniform" or "mixed" (half each)
    noise: bool = True
    clip: float = 1.0
    seed: int = 0
    log_every: int = 50
    save_every_s: float = 600.0
    #: Steps over which the learning rate ramps up at the start of each run (for a fresh optimiser).
    warmup: int = 0


def device_name(device: torch.device) -> str:
    """A human name of the hardware a run uses, for the model card."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU {platform.processor() or platform.machine()} x{torch.get_num_threads()} threads"


class Trainer:
    """Owns the model, optimiser, data and checkpoint of one training run."""

    def __init__(self, cfg: TrainConfig, checkpoint: Path, device: torch.device) -> None:
        self.cfg = cfg
        self.checkpoint = Path(checkpoint)
        self.device = device
        self.model = create_model(cfg.model).to(device)
        if device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.sampler = CropSampler(Path(cfg.data), cfg.crop, cfg.seed)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.segments: list[dict[str, Any]] = []
        self._stop = False

    @classmethod
    def resume_or_start(
        cls, cfg: TrainConfig, checkpoint: Path, device: torch.device, overrides: dict[str, Any] | None = None
    ) -> Trainer:
        """Resume from ``checkpoint`` if it exists (its config, updated by ``overrides``), else start anew."""
        checkpoint = Path(checkpoint)
        if not checkpoint.exists():
            return cls(cfg, checkpoint, device)
        state = load_checkpoint(checkpoint)
        saved = dict(state["config"], **(overrides or {}))
        saved["lambdas"] = tuple(saved["lambdas"])
        trainer = cls(TrainConfig(**saved), checkpoint, device)
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.step = state["step"]
        trainer.history = state["history"]
        trainer.segments = state["segments"]
        return trainer

    @classmethod
    def from_weights(
        cls, cfg: TrainConfig, checkpoint: Path, device: torch.device, weights: list[Path]
    ) -> Trainer:
        """Start from a weights file written by :func:`~streamcodec.train.weights.save_weights` (its step,
        history and segments carried on) with a fresh optimiser."""
        state, meta = load_weights(weights)
        trainer = cls(cfg, checkpoint, device)
        trainer.model.load_state_dict(state)
        trainer.step = int(meta.get("step", 0))
        trainer.history = list(meta.get("history", []))
        trainer.segments = list(meta.get("segments", []))
        return trainer

    def metadata(self) -> dict[str, Any]:
        """What a weights file records of this run."""
        return {
            "model": self.cfg.model,
            "step": self.step,
            "config": dataclasses.asdict(self.cfg),
            "segments": self.segments,
            "history": self.history[-400:],
        }

    def state(self) -> dict[str, Any]:
        return {
            "config": dataclasses.asdict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "history": self.history,
            "segments": self.segments,
        }

    def qualities(self, step: int, size: int) -> torch.Tensor:
        """The quality of each sample of batch ``step`` (a function of seed and step)."""
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)
        anchors = torch.tensor(ANCHOR_QPS)[torch.randint(len(ANCHOR_QPS), (size,), generator=g)]
        uniform = torch.rand(size, generator=g) * QP_MAX
        if self.cfg.quality_sampling == "anchors":
            return anchors
        if self.cfg.quality_sampling == "uniform":
            return uniform
        return torch.where(torch.rand(size, generator=g) < 0.5, anchors, uniform)

    def loss(self, x: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Mean over the batch of lambda(q) * MSE + bpp, and batch statistics."""
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        with autocast:
            out = self.model(x, q, noise=self.cfg.noise)
        pixels = x.shape[-2] * x.shape[-1]
        mse = (out["x_hat"].float() - x).pow(2).mean(dim=(1, 2, 3))
        bpp = (out["bits_y"].float() + out["bits_z"].float()) / pixels
        lam = interpolate_log(torch.tensor(self.cfg.lambdas, device=x.device), q)
        loss = (lam * mse + bpp).mean()
        psnr = (-10 * torch.log10(mse.detach().clamp_min(1e-10))).mean()
        return loss, {"loss": loss.item(), "bpp": bpp.mean().item(), "psnr": psnr.item()}

    def train_step(self, lr_factor: float = 1.0) -> dict[str, float]:
        """One optimisation step on batch ``self.step``; deterministic given seed and step."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * lr_factor
        torch.manual_seed(self.cfg.seed * 7_919 + self.step)
        x = self.sampler.batch(self.step, self.cfg.batch).to(self.device, non_blocking=True).float() / 255
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        q = self.qualities(self.step, self.cfg.batch).to(self.device)
        self.model.train()
        loss, stats = self.loss(x, q)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip))
        self.optimizer.step()
        self.step += 1
        return stats

    def request_stop(self, *_: object) -> None:
        self._stop = True

    def run(
        self, steps: int | None = None, time_limit: float | None = None, log: Callable[[str], None] = print
    ) -> None:
        """Train until ``steps`` more steps, ``time_limit`` seconds, or a signal; save on the way out."""
        start, last_save, first_step = time.monotonic(), time.monotonic(), self.step
        last_log = start
        previous = {s: signal.signal(s, self.request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        window: list[dict[str, float]] = []
        try:
            while not self._stop and (steps is None or self.step - first_step < steps):
                if time_limit is not None and time.monotonic() - start >= time_limit:
                    break
                warm = self.cfg.warmup
                stats = self.train_step(min(1.0, (self.step - first_step + 1) / warm) if warm else 1.0)
                if not math.isfinite(stats["loss"]):
                    raise FloatingPointError(f"loss is {stats['loss']} at step {self.step}")
                window.append(stats)
                if self.step % self.cfg.log_every == 0:
                    mean = {k: sum(s[k] for s in window) / len(window) for k in window[0]}
                    now = time.monotonic()
                    self.history.append({"step": self.step, **mean})
                    log(
                        f"step {self.step}  loss {mean['loss']:.4f}  bpp {mean['bpp']:.3f}  "
                        f"psnr {mean['psnr']:.2f} dB  grad {mean['grad_norm']:.2f}  "
                        f"{len(window) / max(now - last_log, 1e-9):.2f} it/s"
                    )
                    window, last_log = [], now
                if time.monotonic() - last_save >= self.cfg.save_every_s:
                    self._record_segment(first_step, start)
                    save_checkpoint(self.checkpoint, self.state())
                    self.segments.pop()
                    last_save = time.monotonic()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self._record_segment(first_step, start)
            save_checkpoint(self.checkpoint, self.state())
            log(f"saved {self.checkpoint} at step {self.step}")

    def _record_segment(self, first_step: int, start: float) -> None:
        self.segments.append(
            {
                "hardware": device_name(self.device),
                "from_step": first_step,
                "to_step": self.step,
                "seconds": round(time.monotonic() - start, 1),
                "batch": self.cfg.batch,
                "crop": self.cfg.crop,
                "lr": self.cfg.lr,
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            }
        )


__all__ = ["TrainConfig", "Trainer", "DEFAULT_LAMBDAS"]
