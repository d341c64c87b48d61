"""Helpers shared by the subcommands: devices, models, output, progress."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from ..codec.evc import COMPILE_MODES
from ..codec.registry import PRECISIONS
from ..pipeline import Worker


def add_model_options(p: argparse.ArgumentParser, default_model: str | None = "evc-s", precision: bool = True) -> None:
    """Add ``--model``, ``--weights``, ``--device``, ``--threads`` and, with ``precision``, ``--precision`` to ``p``."""
    p.add_argument("--model", default=default_model, help="model name (see `streamcodec info --models`)")
    p.add_argument("--weights", type=Path, help="weights file to use instead of the shipped ones")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch and entropy coding")
    if precision:
        add_precision_option(p)


def add_precision_option(p: argparse.ArgumentParser) -> None:
    """Add ``--precision``, the dtype of the analysis and synthesis transforms, to ``p``."""
    p.add_argument("--precision", choices=tuple(PRECISIONS), default="fp32",
                   help="dtype of the analysis and synthesis transforms (the entropy path stays exact; default fp32)")


def add_compile_option(p: argparse.ArgumentParser) -> None:
    """Add ``--compile MODE``, the transforms' ``torch.compile`` mode, to ``p``."""
    p.add_argument("--compile", choices=COMPILE_MODES, metavar="MODE",
                   help="run the analysis and synthesis transforms as torch.compile graphs in this mode "
                        f"({', '.join(COMPILE_MODES)}); built on the first frame (tens of seconds)")


def configure_threads(threads: int | None) -> None:
    """Set torch's CPU thread count to ``threads``, if given."""
    if threads:
        torch.set_num_threads(threads)


def positive_int(text: str) -> int:
    """argparse ``type=`` for a count of at least 1 (``--threads``, ...)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def parse_frame_threads(text: str) -> str | int:
    """``--frame-threads``: ``auto`` or a count of at least 1."""
    if text == "auto":
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected auto or a count of at least 1, got {text!r}") from None


async def share_frame_threads(
    requested: str | int,
    model_thread: Worker,
    device: torch.device,
    *,
    live: bool,
    constant_q: bool = True,
    frames: int | None = None,
) -> int:
    """The number of frames to code at once for ``--frame-threads``, with torch's threads shared among them
    (the caller restores them afterwards), in this thread and in ``model_thread``, which has run torch already
    (OpenMP's count is kept per thread). ``auto`` gives 2 on a CPU that has 2 or more torch threads, for a file
    of more than one frame (``frames``, when known) at a constant q; else 1 (a rate controller takes frames one
    by one; a live input puts latency first)."""
    if requested == "auto":
        sharable = device.type == "cpu" and torch.get_num_threads() >= 2
        count = 2 if sharable and (frames is None or frames > 1) and constant_q and not live else 1
    elif int(requested) > 1 and not constant_q:
        raise ValueError("--frame-threads needs a constant q: a rate controller chooses each frame's q in turn")
    else:
        count = int(requested)
    per_frame = max(1, torch.get_num_threads() // count)
    torch.set_num_threads(per_frame)
    await model_thread.call(torch.set_num_threads, per_frame)
    return count


def parse_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (W, H)."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return w, h


def print_json(obj: Any, stdout_carries_data: bool = False) -> None:
    """Print ``obj`` as JSON on stdout, or on stderr when stdout carries a stream or frames (output ``-``)."""
    out = sys.stderr if stdout_carries_data else sys.stdout
    json.dump(obj, out, indent=2)
    out.write("\n")
    out.flush()


def binary_stdio(path: str, mode: str) -> Any:
    """``-`` as the binary stdin/stdout, else the path itself."""
    if path != "-":
        return path
    return sys.stdin.buffer if mode == "r" else sys.stdout.buffer
