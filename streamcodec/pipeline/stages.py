"""Stages: the codec between a source and its sinks, each running the model in its own worker thread.

:class:`EncodeStage` turns RGB frames into packets with a :class:`~streamcodec.codec.stream.FrameEncoder`
(whose rate controller, if it has one, picks q per frame; otherwise its constant q). :class:`DecodeStage` is the
mirror. One worker thread owns the model's calls, so a GPU model keeps one stream, and the event loop never waits
on the network.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from ..bitstream import StreamHeader
from ..bitstream.format import PACKET_HEADER_SIZE
from ..codec.quality import index_to_q
from ..codec.stream import FrameDecoder, FrameEncoder, to_image, to_tensor
from ..errors import CorruptStreamError, DesyncError
from .core import Item, Stage, Worker

log = logging.getLogger(__name__)


class EncodeStage(Stage):
    """RGB frames in, KEY packets out.

    Each frame is converted once, to a float tensor on the encoder's device, right before coding (frames a live
    mailbox dropped are never converted). ``item.info`` gains ``q``, ``bytes`` (packet size with its header),
    ``estimated_bits``, ``encode_ms`` (coding time), ``wait_ms`` (from capture to the start of coding) and, with
    ``reconstruct``, ``psnr`` (dB, on the uint8 reconstruction).
    """

    name = "encode"

    def __init__(self, encoder: FrameEncoder, *, reconstruct: bool = False) -> None:
        self.encoder = encoder
        self.reconstruct = reconstruct
        self._worker = Worker("encode")

    @property
    def header(self) -> StreamHeader:
        return self.encoder.header

    async def process(self, item: Item) -> Item:
        return await self._worker.call(self._encode, item)

    def _encode(self, item: Item) -> Item:
        start = time.perf_counter()
        x = to_tensor(item.data, self.encoder.device)
        packet, coded, x_hat = self.encoder.encode(x, item.pts, reconstruct=self.reconstruct)
        end = time.perf_counter()
        info: dict[str, Any] = dict(item.info)
        info.update(
            q=index_to_q(packet.q_index),
            bytes=PACKET_HEADER_SIZE + len(packet.payload),
            estimated_bits=coded.estimated_bits,
            wait_ms=1e3 * (start - item.created),
            encode_ms=1e3 * (end - start),
        )
        if x_hat is not None:
            diff = to_image(x_hat).astype(np.float64) - to_image(x.clamp(0, 1))
            mse = float(np.mean(diff**2))
            info["mse"] = mse
            info["psnr"] = 10 * math.log10(255**2 / max(mse, 1e-12))
        return Item(packet, item.pts, item.index, item.time_base, item.created, info)

    async def close(self) -> None:
        self._worker.close()


class DecodeStage(Stage):
    """Packets in, HxWx3 uint8 RGB frames out (``item.info`` gains ``decode_ms``).

    A packet that arrived intact but does not decode (:class:`~streamcodec.errors.CorruptStreamError`,
    :class:`~streamcodec.errors.DesyncError`) is skipped and listed in :attr:`undecodable` as (pts, reason), so
    the frames after it still come out; with ``on_error="raise"`` it stops the pipeline instead.
    """

    name = "decode"

    def __init__(self, decoder: FrameDecoder, on_error: str = "skip") -> None:
        if on_error not in ("skip", "raise"):
            raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
        self.decoder = decoder
        self.on_error = on_error
        self.undecodable: list[tuple[int, str]] = []
        self._worker = Worker("decode")

    async def process(self, item: Item) -> Item | None:
        return await self._worker.call(self._decode, item)

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

    async def close(self) -> None:
        self._worker.close()


__all__ = ["DecodeStage", "EncodeStage"]
