"""Cross-setup decoding check: encode frames under one numeric setup, decode under others, count desyncs.

A setup is a device, a CPU thread count and a memory layout. Float results of the entropy-parameter path
may differ between setups; every frame whose latents then fail their checksum counts as desynced.
"""

from __future__ import annotations

import itertools
import multiprocessing
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import bitstream
from .bitstream import Packet, StreamHeader
from .codec.registry import load_model, torch_threads
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
        """A short label: the device, then ``-Nt`` for a thread count and ``-channels_last`` if set."""
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


def desync_check(
    images: list[np.ndarray],
    encode_setups: list[Setup],
    decode_setups: list[Setup],
    model_name: str = "evc-s",
    weights: Path | None = None,
    qps: Sequence[float] = (32,),
    save_stream: Path | None = None,
    latents_only: bool = False,
    workers: int = 1,
) -> dict[str, Any]:
    """Encode ``images`` at each of ``qps`` under each encode setup and decode under each decode setup.

    Returns, per (encode, decode) pair, the number of frames coded and desynced and, unless ``latents_only``
    (which checks the latents' checksum without running the synthesis transform, and keeps no reconstructions),
    the number of bit-exact reconstructions and the largest pixel difference from the encoder's own among
    frames that did decode. ``workers`` > 1 decodes in that many processes (CPU setups; frames of one size).
    ``save_stream`` keeps the first encode setup's stream, to decode it on another machine.
    """
    if workers > 1 and not latents_only:
        raise ValueError("decoding in worker processes checks latents only (latents_only=True)")
    pairs = []
    for enc_setup in encode_setups:
        with torch_threads(enc_setup.threads):
            model = _model(enc_setup, model_name, weights)
            coded = []
            for image, q in itertools.product(images, qps):
                encoder = FrameEncoder(model, image.shape[1], image.shape[0], q)
                packet, _, x_hat = encoder.encode(image, len(coded), reconstruct=not latents_only)
                coded.append((encoder.header, packet, None if x_hat is None else to_image(x_hat)))
        if save_stream is not None and enc_setup is encode_setups[0]:
            _write_stream(save_stream, coded)
        for dec_setup in decode_setups:
            if workers > 1:
                with tempfile.TemporaryDirectory() as tmp:
                    stream = _write_stream(Path(tmp) / "coded.scv", coded)
                    jobs = [(stream, k, workers, dec_setup, model_name, weights) for k in range(workers)]
                    with multiprocessing.get_context("spawn").Pool(workers) as pool:
                        desynced = sum(pool.map(_desynced_share, jobs))
                pairs.append(_pair(enc_setup, dec_setup, len(coded), desynced))
                continue
            with torch_threads(dec_setup.threads):
                dec_model = _model(dec_setup, model_name, weights)
                if latents_only:
                    desynced = _latent_desyncs(dec_model, ((i, h, p) for i, (h, p, _) in enumerate(coded)))
                    pairs.append(_pair(enc_setup, dec_setup, len(coded), desynced))
                    continue
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
            pair = _pair(enc_setup, dec_setup, len(coded), desynced)
            pairs.append({**pair, "bit_exact": exact, "max_abs_diff": max_diff})
    sizes = sorted({f"{im.shape[1]}x{im.shape[0]}" for im in images})
    return {"sizes": sizes, "qps": list(qps), "latents_only": latents_only, "pairs": pairs}


def _pair(enc_setup: Setup, dec_setup: Setup, frames: int, desynced: int) -> dict[str, Any]:
    return {"encode": enc_setup.name, "decode": dec_setup.name, "frames": frames, "desynced": desynced}


def _write_stream(path: Path, coded: list[tuple[Any, Any, Any]]) -> Path:
    """The coded packets as one ``.scv`` stream (their frames must share one size)."""
    with bitstream.open(path, "w", header=coded[0][0]) as out:
        for header, packet, _ in coded:
            if header.width != coded[0][0].width or header.height != coded[0][0].height:
                raise ValueError("a saved stream (and decoding in workers) needs frames of one size")
            out.write(packet)
    return path


def _desynced_share(job: tuple[Path, int, int, Setup, str, Path | None]) -> int:
    """In a worker process: check the latents of every ``count``-th packet from the ``share``-th, under
    ``setup``; return how many desynced."""
    stream, share, count, setup, model_name, weights = job
    with torch_threads(setup.threads), bitstream.open(stream) as reader:
        model = _model(setup, model_name, weights)
        return _latent_desyncs(model, ((i, reader.header, p) for i, p in enumerate(reader) if i % count == share))


def _latent_desyncs(model: Any, packets: Iterable[tuple[int, StreamHeader, Packet]]) -> int:
    """How many of the numbered packets' latents fail their checksum under ``model`` (no synthesis)."""
    desynced = 0
    for i, header, packet in packets:
        try:
            FrameDecoder(model, header).check_latents(packet, i)
        except DesyncError:
            desynced += 1
    return desynced
