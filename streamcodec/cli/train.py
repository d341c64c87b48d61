"""``streamcodec train``: train (or resume training) an EVC model, and export its weights."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from ..codec.registry import ARCHITECTURES, canonical_name, resolve_device
from ..train import TrainConfig, Trainer, save_weights
from ..train.data import image_files, pack_crops
from ..train.loop import DISTORTION_LAMBDAS
from ..train.maskdecay import MaskDecayConfig, load_teacher
from .common import positive_int, print_json

#: Options that may change when a run resumes (the rest of the config comes from the checkpoint).
RESUMABLE = (
    "data", "crop", "crop_candidates", "batch", "lr", "log_every", "save_every_s", "warmup", "random_mask_steps"
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train or resume an EVC model", description=__doc__)
    p.add_argument("--checkpoint", type=Path, default=Path("runs/evc-ss/checkpoint.pt"), help="resumed if it exists")
    p.add_argument("--model", default="evc-ss")
    p.add_argument("--data", help="folder of training images (default: a resumed run's, else ../shared/data/train)")
    p.add_argument("--crop", type=int)
    p.add_argument("--crop-candidates", type=int,
                   help="each crop is the most detailed of this many random crops (default 1; 3 makes the "
                        "training photos' crops about as hard to code as Kodak's)")
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup", type=int,
                   help="learning-rate ramp over the first N steps of a fresh optimiser (a resumed run continues it)")
    p.add_argument("--steps", type=int, help="train this many more steps")
    p.add_argument("--time-limit", type=float, help="stop cleanly after this many seconds")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="transforms in bf16 autocast (auto: on CUDA only; on a CPU with AVX512-BF16 bf16 trains "
                        "about 1.45x faster) or fp32; the entropy model is always fp32")
    p.add_argument("--init-weights", type=Path, nargs="+", help="start from weights file(s), fresh optimiser")
    p.add_argument("--export", type=Path, help="write the weights here when the run ends")
    p.add_argument("--export-dtype", choices=("fp16", "fp32"), default="fp16")
    p.add_argument("--shard-mb", type=float, help="split the exported weights into shards of at most this size")
    p.add_argument("--json", action="store_true",
                   help="at the end, print the run as JSON (steps, seconds, the last logged loss/bpp/PSNR, exports)")
    p.add_argument("--log-every", type=int)
    p.add_argument("--save-every", dest="save_every_s", type=float, help="seconds between checkpoint saves")
    p.add_argument("--keep-saves", type=Path,
                   help="also keep the weights of every save in this folder (fp32, by step), for `export --average`")
    p.add_argument("--random-mask-steps", type=int,
                   help="block-masked models (evc-s-rdo): random masks before this step, variance masks after "
                        "(default 1000)")
    p.add_argument("--distortion", choices=sorted(DISTORTION_LAMBDAS), default="mse",
                   help="distortion of the loss (lambda * D + bpp) of a new run: MSE, or 1 - MS-SSIM")
    md = p.add_argument_group("mask decay (a new run; a resumed run keeps its settings)")
    md.add_argument("--mask-decay", action="store_true",
                    help="train a student (--student-widths) from --teacher by mask decay and distillation")
    md.add_argument("--teacher", help="trained teacher: a model name (shipped weights), checkpoint.pt or .safetensors")
    md.add_argument("--student-widths", default="s",
                    help="student sizes: one letter for both transforms (s) or encoder+decoder (ls)")
    md.add_argument("--decay-steps", type=int, default=2000, help="steps until the removed channels' masks are 0")
    md.add_argument("--decay-rate", type=float, help="mask decay rate per step (default 16 / decay-steps)")
    md.add_argument("--distill", type=float, default=1.0, help="weight of the distillation loss")
    p.set_defaults(run=run)

    pack = sub.add_parser("pack-crops", help="write a compact training set of JPEG crops (for GPU runs)")
    pack.add_argument("source", type=Path, help="folder of training images")
    pack.add_argument("dest", type=Path)
    pack.add_argument("--size", type=int, default=512)
    pack.add_argument("--per-image", type=int, default=3)
    pack.add_argument("--quality", type=int, default=95)
    pack.add_argument("--json", action="store_true", help="print what was written as JSON")
    pack.set_defaults(run=run_pack)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    overrides = {k: getattr(args, k) for k in RESUMABLE if getattr(args, k) is not None}
    cfg = TrainConfig(**{"model": args.model, **overrides, "distortion": args.distortion,
                         "lambdas": DISTORTION_LAMBDAS[args.distortion]})
    if args.mask_decay:
        cfg.model, cfg.mask_decay = mask_decay_settings(args)
    elif args.teacher:
        raise ValueError("--teacher is for --mask-decay runs")
    bf16 = None if args.precision == "auto" else args.precision == "bf16"
    if args.init_weights:
        trainer = Trainer.from_weights(cfg, args.checkpoint, device, list(args.init_weights), bf16)
    else:
        trainer = Trainer.resume_or_start(cfg, args.checkpoint, device, overrides, bf16)
    # with --json, stdout carries only the summary: the progress goes to stderr
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else (lambda s: print(s, flush=True))
    say(f"training {trainer.cfg.model} on {device} ({'bf16' if trainer.bf16 else 'fp32'}) from step {trainer.step} "
        f"(checkpoint {args.checkpoint})")
    first = trainer.step
    trainer.run(steps=args.steps, time_limit=args.time_limit, log=say, keep_saves=args.keep_saves)
    exported = []
    if args.export:
        dtype = torch.float16 if args.export_dtype == "fp16" else torch.float32
        shard = int(args.shard_mb * 2**20) if args.shard_mb else None
        exported = [str(p) for p in save_weights(trainer.weights(), args.export, trainer.metadata(), dtype, shard)]
        for path in exported:
            say(f"exported {path}")
    if args.json:
        segment = trainer.segments[-1]
        print_json({"model": trainer.cfg.model, "checkpoint": str(args.checkpoint), "from_step": first,
                    "to_step": trainer.step, "seconds": segment["seconds"], "hardware": segment["hardware"],
                    "precision": segment["precision"], "last": trainer.history[-1] if trainer.history else None,
                    "exported": exported})  # fmt: skip
    return 0


def mask_decay_settings(args: argparse.Namespace) -> tuple[str, dict]:
    """The student's name and the mask-decay config of a new run from the command line."""
    if not args.teacher:
        raise ValueError("--mask-decay needs --teacher (a model name, checkpoint.pt or .safetensors)")
    widths = args.student_widths.lower()
    student = f"evc-{widths * 2 if len(widths) == 1 else widths}"
    if student not in ARCHITECTURES:
        raise ValueError(f"--student-widths {args.student_widths!r}: expected s, m, l or two of them (ls)")
    if args.decay_steps < 1:
        raise ValueError("--decay-steps must be at least 1")
    teacher_model, _ = load_teacher(args.teacher)
    cfg = MaskDecayConfig(args.teacher, teacher_model, args.decay_steps, args.decay_rate, args.distill)
    return canonical_name(student), dataclasses.asdict(cfg)


def run_pack(args: argparse.Namespace) -> int:
    """Run ``streamcodec pack-crops``: write the JPEG crops, print what was written; return the exit status."""
    total = pack_crops(args.source, args.dest, args.size, args.per_image, args.quality)
    if args.json:
        crops = len(image_files(args.source)) * args.per_image
        print_json({"dest": str(args.dest), "crops": crops, "bytes": total})
    else:
        print(f"wrote {total / 2**20:.1f} MiB of crops to {args.dest}")
    return 0
