"""Cross-setup decoding check: encode frames under one numeric setup, decode under others, count desyncs.

A setup is a device, a CPU thread count and a memory layout. Float results of the entropy-parameter path
may differ between setups; every frame whose latents then fail their checksum counts as desynced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import bitstream
from .codec.registry import load_model
from .codec.stream import FrameDecoder, FrameEncoder, to_image
from .errors import DesyncError


@dataclass(frozen=True)
class Setup:
    """One numeric configuration of the codec."""

    device: str
    threads: int | None = None
    channels_last: bool = False

    @property
    def name(self) -> str:
        fmt = "-channels_last" if self.channels_last else ""
        return f"{self.device}{f'-{self.threads}t' if self.threads else ''}{fmt}"


SETUPS = {
    "cpu": Setup("cpu"),
    "cpu-1t": Setup("cpu", 1),
    "cpu-2t": Setup("cpu", 2),
    "cpu-channels_last": Setup("cpu", None, True),
    "cuda": Setup("cuda"),
}


def _model(setup: Setup, model_name: str, weights: Path | None) -> Any:
    model = load_model(model_name, setup.device, weights)
    return model.to(memory_format=torch.channels_last if setup.channels_last else torch.contiguous_format)


def _with_threads(setup: Setup) -> int:
    previous = torch.get_num_threads()
    if setup.threads:
        torch.set_num_threads(setup.threads)
    return previous


def desync_check(
    images: list[np.ndarray],
    encode_setups: list[Setup],
    decode_setups: list[Setup],
    model_name: str = "evc-s",
    weights: Path | None = None,
    qp: float = 32,
    save_stream: Path | None = None,
) -> dict[str, Any]:
    """Encode ``images`` under each encode setup and decode under each decode setup.

    Returns, per (encode, decode) pair, the number of desynced frames, of bit-exact reconstructions and the
    largest pixel difference from the encoder's own reconstruction among frames that did decode.
    ``save_stream`` keeps the first encode setup's stream, to decode it on another machine.
    """
    pairs = []
    for enc_setup in encode_setups:
        previous = _with_threads(enc_setup)
        model = _model(enc_setup, model_name, weights)
        coded = []
        for i, image in enumerate(images):
            encoder = FrameEncoder(model, image.shape[1], image.shape[0], qp)
            packet, _, x_hat = encoder.encode(image, i, reconstruct=True)
            coded.append((encoder.header, packet, to_image(x_hat)))
        torch.set_num_threads(previous)
        if save_stream is not None and enc_setup is encode_setups[0]:
            with bitstream.open(save_stream, "w", header=coded[0][0]) as out:
                for header, packet, _ in coded:
                    if header != coded[0][0]:
                        raise ValueError("--save-stream needs frames of one size")
                    out.write(packet)
        for dec_setup in decode_setups:
            previous = _with_threads(dec_setup)
            dec_model = _model(dec_setup, model_name, weights)
            desynced, exact, max_diff = 0, 0, 0
            for i, (header, packet, reference) in enumerate(coded):
                try:
                    out_image = FrameDecoder(dec_model, header).decode(packet, i)
                except DesyncError:
                    desynced += 1
                    continue
                diff = int(np.abs(out_image.astype(np.int16) - reference).max())
                exact += diff == 0
                max_diff = max(max_diff, diff)
            torch.set_num_threads(previous)
            pairs.append(
                {
                    "encode": enc_setup.name,
                    "decode": dec_setup.name,
                    "frames": len(coded),
                    "desynced": desynced,
                    "bit_exact": exact,
                    "max_abs_diff": max_diff,
                }
            )
    sizes = sorted({f"{im.shape[1]}x{im.shape[0]}" for im in images})
    return {"sizes": sizes, "qp": qp, "pairs": pairs}
