"""The training loop: variable-rate rate-distortion training that accumulates across sessions.

Every sample of a batch draws a quality q; its loss is lambda(q) * D + bpp, with D the MSE or 1 - MS-SSIM and
lambda(q) log-interpolated between one lambda per anchor q_scale (as the model interpolates q_scale). A mask-decay
run (:mod:`.maskdecay`) adds its distillation loss and decays its masks after each step. Runs resume exactly from
their checkpoint and stop cleanly at a time limit or on SIGINT/SIGTERM, saving first.

Block-masked models (``evc-s-rdo``) get their variance thresholds calibrated on the training images and train
with random block masks for the first ``random_mask_steps`` steps, then with variance masks (RDONet's two
phases).
"""

from __future__ import annotations

import dataclasses
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ..codec.masked import MaskedEVC
from ..codec.quality import ANCHOR_QPS, DEFAULT_LAMBDAS, QP_MAX, interpolate_log
from ..codec.registry import canonical_name, create_model, machine_description
from ..evaluate.metrics import ms_ssim_tensor
from .checkpoint import load_checkpoint, save_checkpoint
from .data import CropSampler
from .maskdecay import MaskDecay, MaskDecayConfig
from .weights import load_weights, save_weights

#: lambda per anchor for D = 1 - MS-SSIM: CompressAI's MS-SSIM lambdas at the quality index of each MSE lambda of
#: DEFAULT_LAMBDAS (its MSE and MS-SSIM tables pair up index by index; log-interpolated in between).
DEFAULT_MS_SSIM_LAMBDAS = (2.40, 6.53, 17.9, 49.1)
#: The lambdas a run uses by default for each distortion.
DISTORTION_LAMBDAS = {"mse": DEFAULT_LAMBDAS, "ms-ssim": DEFAULT_MS_SSIM_LAMBDAS}


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in its checkpoint)."""

    model: str = "evc-ss"
    data: str = "../shared/data/train"
    crop: int = 128
    #: Each crop is the most detailed of this many random crops (1: plain random crops).
    crop_candidates: int = 1
    batch: int = 8
    lr: float = 1.5e-4
    lambdas: tuple[float, ...] = DEFAULT_LAMBDAS
    quality_sampling: str = "mixed"  # "anchors", "uniform" or "mixed" (half each)
    noise: bool = True
    clip: float = 1.0
    seed: int = 0
    log_every: int = 50
    save_every_s: float = 600.0
    #: Steps over which the learning rate ramps up from the optimiser's first step (a new run, or one started
    #: from weights with a fresh optimiser); a resumed run continues the ramp where it stopped.
    warmup: int = 0
    #: Block-masked models: random masks before this step, variance masks from it on.
    random_mask_steps: int = 1000
    distortion: str = "mse"  # or "ms-ssim"
    #: A :class:`~.maskdecay.MaskDecayConfig` as a dict: ``model`` is then the student, trained masked from the
    #: teacher.
    mask_decay: dict[str, Any] | None = None


class Trainer:
    """Owns the model, optimiser, data and checkpoint of one training run."""

    def __init__(self, cfg: TrainConfig, checkpoint: Path, device: torch.device, bf16: bool | None = None) -> None:
        self.cfg = cfg
        self.checkpoint = Path(checkpoint)
        self.device = device
        #: bfloat16 autocast of the transforms (the entropy model stays fp32): by default on CUDA only
        self.bf16 = device.type == "cuda" if bf16 is None else bf16
        if cfg.distortion not in DISTORTION_LAMBDAS:
            raise ValueError(f"unknown distortion {cfg.distortion!r}; expected one of {sorted(DISTORTION_LAMBDAS)}")
        self.mask_decay: MaskDecay | None = None
        if cfg.mask_decay is not None:
            self.mask_decay = MaskDecay(MaskDecayConfig(**cfg.mask_decay), cfg.model, device)
            cfg.mask_decay = dataclasses.asdict(self.mask_decay.cfg)  # with the teacher's digest
            self.model = self.mask_decay.student
        else:
            self.model = create_model(cfg.model).to(device)
        if device.type == "cuda":
            # not on the CPU: with torch 2.13's CPU kernels the backward pass of this model in channels_last
            # segfaults or corrupts the heap within a few steps (fp32 and bf16 alike; inference is unaffected)
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.sampler = CropSampler(Path(cfg.data), cfg.crop, cfg.seed, cfg.crop_candidates)
        if isinstance(self.model, MaskedEVC):
            self.model.calibrate_masks(self.sampler.images)
        self.step = 0
        #: The step at which the optimiser started (its warm-up counts from there).
        self.optimizer_start = 0
        self.history: list[dict[str, float]] = []
        self.segments: list[dict[str, Any]] = []
        self.initialised_from: dict[str, Any] | None = None
        self._stop = False

    @classmethod
    def resume_or_start(
        cls,
        cfg: TrainConfig,
        checkpoint: Path,
        device: torch.device,
        overrides: dict[str, Any] | None = None,
        bf16: bool | None = None,
    ) -> Trainer:
        """Resume from ``checkpoint`` if it exists (its config, updated by ``overrides``), else start anew."""
        checkpoint = Path(checkpoint)
        if not checkpoint.exists():
            return cls(cfg, checkpoint, device, bf16)
        state = load_checkpoint(checkpoint)
        saved = dict(state["config"], **(overrides or {}))
        saved["lambdas"] = tuple(saved["lambdas"])
        trainer = cls(TrainConfig(**saved), checkpoint, device, bf16)
        trainer.model.load_state_dict(state["model"])
        trainer.optimizer.load_state_dict(state["optimizer"])
        trainer.step = state["step"]
        trainer.optimizer_start = state.get("optimizer_start", 0)
        trainer.history = state["history"]
        trainer.segments = state["segments"]
        return trainer

    @classmethod
    def from_weights(
        cls, cfg: TrainConfig, checkpoint: Path, device: torch.device, weights: list[Path], bf16: bool | None = None
    ) -> Trainer:
        """Start from a weights file written by :func:`~streamcodec.train.weights.save_weights` (its step,
        history and segments carried on) with a fresh optimiser.

        Weights of another model (plain ``evc-ss`` for ``evc-ss-rdo``) initialise the parts the two share and
        the run starts at step 0; the new parts start fresh.
        """
        state, meta = load_weights(weights)
        trainer = cls(cfg, checkpoint, device, bf16)
        if canonical_name(meta.get("model", cfg.model)) != canonical_name(cfg.model):
            unexpected = trainer.model.load_state_dict(state, strict=False).unexpected_keys
            if unexpected:
                raise ValueError(f"weights of {meta['model']!r} do not fit {cfg.model!r}: {unexpected[:3]} ...")
            trainer.initialised_from = {"model": meta["model"], "step": meta.get("step")}
            return trainer
        trainer.model.load_state_dict(state)
        trainer.step = trainer.optimizer_start = int(meta.get("step", 0))
        trainer.history = list(meta.get("history", []))
        trainer.segments = list(meta.get("segments", []))
        return trainer

    def metadata(self) -> dict[str, Any]:
        """What a weights file records of this run."""
        meta = {
            "model": self.cfg.model,
            "step": self.step,
            "config": dataclasses.asdict(self.cfg),
            "segments": self.segments,
            "history": self.history[-400:],
        }
        if self.initialised_from is not None:
            meta["initialised_from"] = self.initialised_from
        if isinstance(self.model, MaskedEVC):
            meta["mask_thresholds"] = self.model.mask_thresholds.tolist()
        return meta

    def state(self) -> dict[str, Any]:
        """The checkpoint's contents: config, model and optimiser state, step, history and segments."""
        return {
            "config": dataclasses.asdict(self.cfg),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "optimizer_start": self.optimizer_start,
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
        """Mean over the batch of lambda(q) * distortion + bpp (plus mask decay's term), and batch statistics."""
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)
        lam = interpolate_log(torch.tensor(self.cfg.lambdas, device=x.device), q)
        block_mask = {}
        if isinstance(self.model, MaskedEVC):
            block_mask["mask"] = self.model.training_mask(x, random=self.step < self.cfg.random_mask_steps)
        with autocast:
            out = self.model(x, q, noise=self.cfg.noise, **block_mask)
            extra, extra_stats = self.mask_decay(x, q, lam, out) if self.mask_decay else (0.0, {})
        pixels = x.shape[-2] * x.shape[-1]
        x_hat = out["x_hat"].float()
        mse = (x_hat - x).pow(2).mean(dim=(1, 2, 3))
        distortion = mse if self.cfg.distortion == "mse" else 1 - ms_ssim_tensor(x_hat, x).float()
        bpp = (out["bits_y"].float() + out["bits_z"].float()) / pixels
        loss = (lam * distortion + bpp).mean() + extra
        psnr = (-10 * torch.log10(mse.detach().clamp_min(1e-10))).mean()
        stats = {"loss": loss.item(), "bpp": bpp.mean().item(), "psnr": psnr.item(), **extra_stats}
        if self.cfg.distortion == "ms-ssim":
            stats["ms_ssim"] = 1 - distortion.mean().item()
        return loss, stats

    def lr_factor(self) -> float:
        """The warm-up's factor on the learning rate at this step."""
        warm = self.cfg.warmup
        return min(1.0, (self.step - self.optimizer_start + 1) / warm) if warm else 1.0

    def train_step(self) -> dict[str, float]:
        """One optimisation step on batch ``self.step``; deterministic given seed and step.

        A non-finite loss or gradient raises :class:`FloatingPointError` before the weights or the optimiser
        change, so the checkpoint saved on the way out still holds the last good step.
        """
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr * self.lr_factor()
        torch.manual_seed(self.cfg.seed * 7_919 + self.step)
        x = self.sampler.batch(self.step, self.cfg.batch).to(self.device, non_blocking=True).float() / 255
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        q = self.qualities(self.step, self.cfg.batch).to(self.device)
        self.model.train()
        loss, stats = self.loss(x, q)
        if not math.isfinite(stats["loss"]):
            raise FloatingPointError(f"loss is {stats['loss']} at step {self.step}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        stats["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip))
        if not math.isfinite(stats["grad_norm"]):
            raise FloatingPointError(f"gradient norm is {stats['grad_norm']} at step {self.step}")
        self.optimizer.step()
        self.step += 1
        if self.mask_decay is not None:
            self.mask_decay.after_step(self.step)
        return stats

    def weights(self) -> dict[str, torch.Tensor]:
        """The weights this run produces: the model's, or for mask decay the pruned student's."""
        return self.mask_decay.pruned_state() if self.mask_decay else self.model.state_dict()

    def request_stop(self, *_: object) -> None:
        """Make the training loop stop and save after the current step; a signal handler (its arguments ignored)."""
        self._stop = True

    def run(
        self,
        steps: int | None = None,
        time_limit: float | None = None,
        log: Callable[[str], None] = print,
        keep_saves: Path | None = None,
    ) -> None:
        """Train until ``steps`` more steps, ``time_limit`` seconds, or a signal; save on the way out.

        With ``keep_saves``, every save also leaves the weights in that folder (``step-NNNNNNN.safetensors``, fp32)
        for ``streamcodec export --average``."""
        start, last_save, first_step = time.monotonic(), time.monotonic(), self.step
        last_log = start
        previous = {s: signal.signal(s, self.request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        window: list[dict[str, float]] = []
        try:
            while not self._stop and (steps is None or self.step - first_step < steps):
                if time_limit is not None and time.monotonic() - start >= time_limit:
                    break
                stats = self.train_step()
                window.append(stats)
                if self.step % self.cfg.log_every == 0:
                    mean = {k: sum(s[k] for s in window) / len(window) for k in window[0]}
                    now = time.monotonic()
                    self.history.append({"step": self.step, **mean})
                    log(
                        f"step {self.step}  loss {mean['loss']:.4f}  bpp {mean['bpp']:.3f}  "
                        f"psnr {mean['psnr']:.2f} dB  grad {mean['grad_norm']:.2f}  "
                        + (f"distill {mean['distill']:.4f}  mask {mean['mask']:.3f}  " if "mask" in mean else "")
                        + f"{len(window) / max(now - last_log, 1e-9):.2f} it/s"
                    )
                    window, last_log = [], now
                if time.monotonic() - last_save >= self.cfg.save_every_s:
                    self._save(first_step, start, keep_saves)
                    self.segments.pop()  # the run goes on: its segment is recorded again, longer, at the next save
                    last_save = time.monotonic()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            self._save(first_step, start, keep_saves)
            log(f"saved {self.checkpoint} at step {self.step}")

    def _save(self, first_step: int, start: float, keep_saves: Path | None) -> None:
        """The checkpoint, with this run's segment so far, and with ``keep_saves`` the weights as
        ``keep_saves/step-NNNNNNN.safetensors`` (fp32)."""
        self._record_segment(first_step, start)
        save_checkpoint(self.checkpoint, self.state())
        if keep_saves is not None:
            weights = keep_saves / f"step-{self.step:07d}.safetensors"
            save_weights(self.weights(), weights, self.metadata(), torch.float32)

    def _record_segment(self, first_step: int, start: float) -> None:
        self.segments.append(
            {
                "hardware": machine_description(self.device),
                "precision": "bf16" if self.bf16 else "fp32",
                "from_step": first_step,
                "to_step": self.step,
                "seconds": round(time.monotonic() - start, 1),
                "batch": self.cfg.batch,
                "crop": self.cfg.crop,
                "crop_candidates": self.cfg.crop_candidates,
                "lr": self.cfg.lr,
                "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            }
        )


__all__ = ["TrainConfig", "Trainer", "DEFAULT_LAMBDAS", "DEFAULT_MS_SSIM_LAMBDAS", "DISTORTION_LAMBDAS"]
