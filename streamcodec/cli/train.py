"""``streamcodec train``: train (or resume training) an EVC model, and export its weights."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..train import TrainConfig, Trainer, save_weights
from ..train.data import pack_crops

#: Options that may change when a run resumes (the rest of the config comes from the checkpoint).
RESUMABLE = ("data", "crop", "batch", "lr", "log_every", "save_every_s", "warmup")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train or resume an EVC model", description=__doc__)
    p.add_argument("--checkpoint", type=Path, default=Path("runs/evc-ss/checkpoint.pt"), help="resumed if it exists")
    p.add_argument("--model", default="evc-ss")
    p.add_argument("--data", default="../shared/data/train", help="folder of training images")
    p.add_argument("--crop", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup", type=int, help="learning-rate ramp (steps) at the start of this run")
    p.add_argument("--steps", type=int, help="train this many more steps")
    p.add_argument("--time-limit", type=float, help="stop cleanly after this many seconds")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--init-weights", type=Path, nargs="+", help="start from weights file(s), fresh optimiser")
    p.add_argument("--export", type=Path, help="write the weights here when the run ends")
    p.add_argument("--export-dtype", choices=("fp16", "fp32"), default="fp16")
    p.add_argument("--shard-mb", type=float, help="split the exported weights into shards of at most this size")
    p.add_argument("--log-every", type=int)
    p.add_argument("--save-every", dest="save_every_s", type=float, help="seconds between checkpoint saves")
    p.set_defaults(run=run)

    pack = sub.add_parser("pack-crops", help="write a compact training set of JPEG crops (for GPU runs)")
    pack.add_argument("source", type=Path, help="folder of training images")
    pack.add_argument("dest", type=Path)
    pack.add_argument("--size", type=int, default=512)
    pack.add_argument("--per-image", type=int, default=3)
    pack.add_argument("--quality", type=int, default=95)
    pack.set_defaults(run=run_pack)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    overrides = {k: getattr(args, k) for k in RESUMABLE if getattr(args, k) is not None}
    cfg = TrainConfig(**{"model": args.model, **overrides})
    if args.init_weights:
        trainer = Trainer.from_weights(cfg, args.checkpoint, device, list(args.init_weights))
    else:
        trainer = Trainer.resume_or_start(cfg, args.checkpoint, device, overrides)
    print(f"training {trainer.cfg.model} on {device} from step {trainer.step} (checkpoint {args.checkpoint})",
          flush=True)
    trainer.run(steps=args.steps, time_limit=args.time_limit, log=lambda s: print(s, flush=True))
    if args.export:
        dtype = torch.float16 if args.export_dtype == "fp16" else torch.float32
        shard = int(args.shard_mb * 2**20) if args.shard_mb else None
        for path in save_weights(trainer.model.state_dict(), args.export, trainer.metadata(), dtype, shard):
            print(f"exported {path}")
    return 0


def run_pack(args: argparse.Namespace) -> int:
    total = pack_crops(args.source, args.dest, args.size, args.per_image, args.quality)
    print(f"wrote {total / 2**20:.1f} MiB of crops to {args.dest}")
    return 0
