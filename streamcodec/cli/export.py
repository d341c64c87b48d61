"""``streamcodec export``: turn a training checkpoint or weights shards into shippable fp16 weights + card."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from ..train.card import build_card, kodak_summary
from ..train.checkpoint import load_checkpoint
from ..train.maskdecay import pruned_state
from ..train.weights import average_weights, load_weights, save_weights
from .common import print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export weights (and a model card) from a checkpoint", description=__doc__)
    p.add_argument("source", type=Path, nargs="+", help="checkpoint.pt, or one weights file or its shards")
    p.add_argument("--average", action="store_true",
                   help="each SOURCE is a checkpoint.pt or weights file of one run: export the mean of their weights")
    p.add_argument("--out", type=Path, required=True, help="output .safetensors")
    p.add_argument("--dtype", choices=("fp16", "fp32"), default="fp16")
    p.add_argument("--card", action="store_true", help="also write the model card (OUT with .json)")
    p.add_argument("--data", type=Path, help="training data folder, hashed into the card")
    p.add_argument("--kodak", type=Path, help="JSON of Kodak results (from `streamcodec eval --json`) for the card")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(run=run)


def read_source(paths: list[Path]) -> tuple[dict[str, torch.Tensor], dict]:
    """Weights and training metadata from a checkpoint or weights file(s); a mask-decay checkpoint gives its
    pruned student."""
    if len(paths) == 1 and paths[0].suffix == ".pt":
        state = load_checkpoint(paths[0])
        decay = state["config"].get("mask_decay")
        if decay:
            state["model"] = pruned_state(state["model"], decay["teacher_model"], state["config"]["model"])
        meta = {
            "model": state["config"]["model"],
            "step": state["step"],
            "config": state["config"],
            "segments": state["segments"],
            "history": state["history"][-400:],
        }
        return state["model"], meta
    return load_weights(paths)


def read_average(paths: list[Path]) -> tuple[dict[str, torch.Tensor], dict]:
    """The mean weights of several checkpoints or weights files, with the last one's metadata and the steps
    averaged (``averaged_steps``)."""
    states, metas = zip(*(read_source([p]) for p in paths))
    return average_weights(list(states)), dict(metas[-1], averaged_steps=[m.get("step") for m in metas])


def run(args: argparse.Namespace) -> int:
    state, meta = read_average(args.source) if args.average else read_source(args.source)
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    (path,) = save_weights(state, args.out, meta, dtype)
    summary: dict[str, Any] = {"weights": str(path), "bytes": path.stat().st_size, "model": meta.get("model"),
                               "step": meta.get("step"), "dtype": args.dtype, "card": None,
                               "averaged_steps": meta.get("averaged_steps")}  # fmt: skip
    if args.card:
        kodak = kodak_summary(json.loads(args.kodak.read_text()), meta["model"]) if args.kodak else None
        card = build_card(meta, args.data, kodak)
        path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
        summary["card"] = str(path.with_suffix(".json"))
    if args.json:
        print_json(summary)
    else:
        print(f"exported {path} (step {meta.get('step')})" + (f"; wrote {summary['card']}" if args.card else ""))
    return 0
