"""Stages: the codec between a source and its sinks, each running the model in its own worker thread.

Encoding takes two hops, :func:`encode_stages`: :class:`QuantiseStage` runs the networks (upload, analysis, the
rate controller's choice of q, hyperprior and prior) and :class:`EntropyStage` arithmetic-codes the result on
the host into packets. Each has its own thread, so frame t is coded while the networks take frame t+1 and
throughput is set by the slower of the two, not their sum; the packets are byte for byte those of
:meth:`FrameEncoder.encode <streamcodec.codec.stream.FrameEncoder.encode>`. :class:`DecodeStage` is the mirror.
Every frame is intra-coded, so the networks of several frames may also run at once (``frame_threads``), as
FFmpeg's frame threads do: on a CPU whose cores one frame's operators leave partly idle. The event loop never
waits on the model.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Any

import numpy as np

from ..bitstream.format import PACKET_HEADER_SIZE
from ..codec.evc import QuantisedFrame
from ..codec.quality import index_to_q
from ..codec.stream import FrameDecoder, FrameEncoder, to_image, to_tensor
from ..errors import CorruptStreamError, DesyncError
from .core import Item, Stage, Worker, WorkerStage

log = logging.getLogger(__name__)


class QuantiseStage(WorkerStage):
    """RGB frames in, quantised frames (:class:`~streamcodec.codec.evc.QuantisedFrame`) out: the networks' half
    of encoding.

    Each frame is converted once, to a float tensor on the encoder's device, right before its networks run
    (frames a live mailbox dropped are never converted). ``item.info`` gains ``q``, ``estimated_bits``,
    ``wait_ms`` (from capture to the start of this stage), ``quantise_ms`` and, with ``reconstruct``, ``mse``
    and ``psnr`` (dB, on the uint8 reconstruction).

    ``frame_threads`` > 1 runs the networks of that many frames at once (frames are intra-coded, so independent;
    on a CPU give each fewer torch threads): only at a constant q, since a rate controller picks each frame's q
    from the real size of the one before. ``worker`` is the thread to run them in (the first, with frame
    threads): on a CPU, best the one that loaded the model. torch's OpenMP keeps a team of threads per thread
    that ran a parallel operator, and once the teams outnumber the cores every operator pays for waking its
    team (measured here: a 64k-element multiply 7.7 us alone, 42-46 us after another thread had run torch).
    """

    name = "quantise"

    def __init__(
        self, encoder: FrameEncoder, *, reconstruct: bool = False, frame_threads: int = 1, worker: Worker | None = None
    ) -> None:
        if frame_threads > 1 and encoder.controller is not None:
            raise ValueError("frame threads need a constant q: a rate controller chooses each frame's q in turn")
        super().__init__(frame_threads, worker)
        self.encoder = encoder
        self.reconstruct = reconstruct

    async def process(self, item: Item) -> Item:
        return await self._call(self._quantise, item)

    def _quantise(self, item: Item) -> Item:
        start = time.perf_counter()
        x = to_tensor(item.data, self.encoder.device)
        quantised = self.encoder.quantise(x, reconstruct=self.reconstruct)
        info: dict[str, Any] = dict(item.info)
        info.update(
            q=index_to_q(quantised.q_index),
            estimated_bits=quantised.estimated_bits,
            wait_ms=1e3 * (start - item.created),
            quantise_ms=1e3 * (time.perf_counter() - start),
        )
        if quantised.x_hat is not None:
            diff = to_image(quantised.x_hat).astype(np.float64) - to_image(x.clamp(0, 1))
            mse = float(np.mean(diff**2))
            info["mse"] = mse
            info["psnr"] = 10 * math.log10(255**2 / max(mse, 1e-12))
            quantised = dataclasses.replace(quantised, x_hat=None)  # not carried through the next queue
        return Item(quantised, item.pts, item.index, item.time_base, item.created, info)


class EntropyStage(WorkerStage):
    """Quantised frames in, KEY (or KEY_MASKED) packets out: arithmetic coding, on the host.

    ``item.info`` gains ``bytes`` (packet size with its header), ``entropy_ms`` and ``encode_ms`` (the frame's
    coding time: its ``quantise_ms`` plus ``entropy_ms``).
    """

    name = "entropy"

    def __init__(self, encoder: FrameEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    async def process(self, item: Item) -> Item:
        return await self._call(self._code, item)

    def _code(self, item: Item) -> Item:
        quantised: QuantisedFrame = item.data
        start = time.perf_counter()
        packet, _ = self.encoder.code(quantised, item.pts)
        entropy_ms = 1e3 * (time.perf_counter() - start)
        info = dict(item.info)
        info.update(
            bytes=PACKET_HEADER_SIZE + len(packet.payload),
            entropy_ms=entropy_ms,
            encode_ms=info.get("quantise_ms", 0.0) + entropy_ms,
        )
        return Item(packet, item.pts, item.index, item.time_base, item.created, info)


def encode_stages(
    encoder: FrameEncoder, *, reconstruct: bool = False, frame_threads: int = 1, worker: Worker | None = None
) -> list[Stage]:
    """The stages that put ``encoder`` into a :class:`~streamcodec.pipeline.core.Pipeline`: networks (of
    ``frame_threads`` frames at once, the first in ``worker`` if given: see :class:`QuantiseStage`), then
    arithmetic coding, overlapping from frame to frame."""
    quantise = QuantiseStage(encoder, reconstruct=reconstruct, frame_threads=frame_threads, worker=worker)
    return [quantise, EntropyStage(encoder)]


class DecodeStage(WorkerStage):
    """Packets in, HxWx3 uint8 RGB frames out (``item.info`` gains ``decode_ms``).

    A packet that arrived intact but does not decode (:class:`~streamcodec.errors.CorruptStreamError`,
    :class:`~streamcodec.errors.DesyncError`) is skipped and listed in :attr:`undecodable` as (pts, reason), so
    the frames after it still come out; with ``on_error="raise"`` it stops the pipeline instead.
    ``frame_threads`` > 1 decodes that many frames at once (every frame is intra-coded).
    """

    name = "decode"

    def __init__(
        self, decoder: FrameDecoder, on_error: str = "skip", *, frame_threads: int = 1, worker: Worker | None = None
    ) -> None:
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        super().__init__(frame_threads, worker)
        self.decoder = decoder
        self.on_error = on_error
        self.undecodable: list[tuple[int, str]] = []

    async def process(self, item: Item) -> Item | None:
        return await self._call(self._decode, item)

    def _decode(self, item: Item) -> Item | None:
        start = time.perf_counter()
        try:
            image = self.decoder.decode(item.data, item.index)
        except (CorruptStreamError, DesyncError) as exc:
            if self.on_error == "raise":
                raise
            log.warning("skipping the frame at pts %d: %s", item.pts, exc)
            self.undecodable.append((item.pts, str(exc)))
            return None
        info = dict(item.info)
        info["decode_ms"] = 1e3 * (time.perf_counter() - start)
        return Item(image, item.pts, item.index, item.time_base, item.created, info)


__all__ = ["DecodeStage", "EntropyStage", "QuantiseStage", "encode_stages"]
