"""Speed benchmark: per-stage and end-to-end encode and decode times of one model at one frame size.

Stages are timed separately (the GPU synchronised at each boundary, so the split is honest but the total is a
little pessimistic); the "network only" figures leave out entropy coding and packets, the way papers report.
:func:`pipeline_throughput` measures what the pipeline gets out of the same model: arithmetic coding of frame t
while the networks take frame t+1, and several frames in flight with frame threads.
"""

from __future__ import annotations

import io
import itertools
import time
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import numpy as np
import torch

from .bitstream import Packet, PacketType, StreamReader, StreamWriter
from .codec.evc import EVC
from .codec.masked import MaskedEVC, MaskedFrame, check_rdo
from .codec.quality import index_to_q, q_to_index
from .codec.registry import machine_description
from .codec.stream import FrameDecoder, FrameEncoder, to_image
from .pipeline import CallbackSink, DecodeStage, IteratorSource, Pipeline, ScvSource, Worker, encode_stages

ENCODE_STAGES = ("upload", "analysis", "prior", "entropy_encode", "packet_write")
#: Block-masked models choose the frame's mask (zero-pass variance mask or RDO search) after the analysis.
MASKED_ENCODE_STAGES = ("upload", "analysis", "mask", "prior", "entropy_encode", "packet_write")
DECODE_STAGES = ("packet_read", "prior_entropy_decode", "synthesis", "download")


def synthetic_frame(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A deterministic, photo-like test frame (smooth gradients plus fine texture)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([np.sin(xx / 97 + c) * np.cos(yy / 61 - c) for c in range(3)], axis=-1) * 80 + 128
    texture = rng.normal(0, 12, (height, width, 3)).astype(np.float32)
    return np.clip(base + texture, 0, 255).astype(np.uint8)


class _Timer:
    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.times: dict[str, list[float]] = {}

    def __call__(self, name: str, fn: Callable[[], Any]) -> Any:
        if self.cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if self.cuda:
            torch.cuda.synchronize()
        self.times.setdefault(name, []).append(time.perf_counter() - start)
        return out

    def drop_warmup(self, count: int) -> None:
        self.times = {k: v[count:] for k, v in self.times.items()}


def _summary(times: dict[str, list[float]], stages: tuple[str, ...]) -> dict[str, Any]:
    per_frame = np.sum([times[s] for s in stages], axis=0)
    total_median = float(np.median(per_frame))
    return {
        "stages": {
            s: {
                "median_ms": round(1e3 * float(np.median(times[s])), 3),
                "p99_ms": round(1e3 * float(np.percentile(times[s], 99)), 3),
                "share": round(float(np.median(times[s])) / total_median, 4),
            }
            for s in stages
        },
        "median_ms": round(1e3 * total_median, 3),
        "p99_ms": round(1e3 * float(np.percentile(per_frame, 99)), 3),
        "fps": round(1 / total_median, 2),
    }


async def pipeline_throughput(
    model: EVC,
    image: np.ndarray,
    frames: int = 20,
    warmup: int = 3,
    qp: float = 32,
    frame_threads: int = 1,
    worker: Worker | None = None,
    rdo: int = 0,
) -> dict[str, Any]:
    """Frames per second through the pipeline as ``streamcodec encode`` and ``decode`` run it: frames -> the
    encode stages (arithmetic coding of frame t while the networks take frame t+1, ``frame_threads`` frames in
    the networks at once, the first in ``worker``) -> packets, then a ``.scv`` -> the decode stage (the same
    threads). ``warmup`` frames go through first, untimed; a block-masked model's frames take ``rdo`` passes."""
    height, width = image.shape[:2]
    encoder = FrameEncoder(model, width, height, qp, rdo=rdo)

    async def encode(count: int) -> tuple[list[Packet], float]:
        packets: list[Packet] = []
        stages = encode_stages(encoder, frame_threads=frame_threads, worker=worker)
        sink = CallbackSink(lambda item: packets.append(item.data))
        stats = await Pipeline(IteratorSource(itertools.repeat(image, count)), stages, [sink]).run()
        return packets, stats.fps

    async def decode(packets: list[Packet]) -> float:
        stream = io.BytesIO()
        with StreamWriter(stream, encoder.header) as writer:
            for packet in packets:
                writer.write(packet)
        stream.seek(0)
        decoder = FrameDecoder(model, encoder.header)
        stage = DecodeStage(decoder, on_error="raise", frame_threads=frame_threads, worker=worker)
        stats = await Pipeline(ScvSource(stream), [stage], [CallbackSink(lambda item: None)]).run()
        return stats.fps

    await decode((await encode(warmup))[0])
    packets, encode_fps = await encode(frames)
    decode_fps = await decode(packets)
    return {"frame_threads": frame_threads, "encode_fps": round(encode_fps, 2), "decode_fps": round(decode_fps, 2)}


def run_benchmark(
    model: EVC, image: np.ndarray, frames: int = 20, warmup: int = 3, qp: float = 32, rdo: int = 0
) -> dict[str, Any]:
    """Encode and decode ``image`` ``frames`` times (after ``warmup`` untimed runs) and summarise.

    A block-masked model codes KEY_MASKED frames with ``rdo`` search passes (0: the zero-pass variance mask),
    timed as the "mask" stage.
    """
    check_rdo(model, rdo)
    masked = isinstance(model, MaskedEVC)
    device = model.q_basic.device
    height, width = image.shape[:2]
    q = index_to_q(q_to_index(qp))
    encoder = FrameEncoder(model, width, height, q, Fraction(1, 30), Fraction(30))
    host = torch.from_numpy(image)
    if device.type == "cuda":
        host = host.pin_memory()
        torch.cuda.reset_peak_memory_stats(device)
    timer = _Timer(device)
    sink = io.BytesIO()
    payload_bytes = []
    with torch.inference_mode(), StreamWriter(sink, encoder.header) as writer:
        for i in range(warmup + frames):
            x = timer("upload", lambda: host.to(device, non_blocking=True).permute(2, 0, 1)[None].float().div_(255))
            feats = timer("analysis", lambda: model.analyse(x))
            options = {"mask": timer("mask", lambda: model.choose_mask(x, q, rdo, feats))} if masked else {}
            quantised = timer("prior", lambda: model.quantise_frame(x, q, encoder.substreams, feats, **options))
            frame = timer("entropy_encode", lambda: model.code_frame(quantised))
            kind = PacketType.KEY_MASKED if isinstance(frame, MaskedFrame) else PacketType.KEY
            timer("packet_write", lambda: writer.write(Packet(kind, i, frame.q_index, frame.payload)))
            payload_bytes.append(len(frame.payload))
        timer.drop_warmup(warmup)
        encode = _summary(timer.times, MASKED_ENCODE_STAGES if masked else ENCODE_STAGES)
        analysis_ms, prior_ms = (1e3 * float(np.median(timer.times[s])) for s in ("analysis", "prior"))
        if masked:  # the mask search runs the networks too
            analysis_ms += 1e3 * float(np.median(timer.times["mask"]))

        sink.seek(0)
        reader = StreamReader(sink)
        packets = iter(reader)
        timer.times = {}
        coding: list[float] = []
        for _ in range(warmup + frames):
            packet = timer("packet_read", lambda: next(packets))
            spent: dict[str, float] = {}
            # by the packet: a masked model codes a plain KEY when its mask is the finest everywhere
            decode_latents = model.decode_masked if packet.type is PacketType.KEY_MASKED else model.decode_latents
            y_hat, q_step = timer(
                "prior_entropy_decode", lambda: decode_latents(packet.payload, height, width, spent)
            )
            coding.append(spent["entropy_decode"])
            x_hat = timer("synthesis", lambda: model.synthesise(y_hat, q_step, q, height, width))
            timer("download", lambda: to_image(x_hat))
        timer.drop_warmup(warmup)
        decode = _summary(timer.times, DECODE_STAGES)
        # Arithmetic decoding alone, inside prior_entropy_decode (it interleaves with the prior's networks).
        decode["entropy_decode_ms"] = round(1e3 * float(np.median(coding[warmup:])), 3)
        synthesis_ms = 1e3 * float(np.median(timer.times["synthesis"]))
    result: dict[str, Any] = {
        "machine": machine_description(device),
        "device": str(device),
        "model": model.name,
        "size": f"{width}x{height}",
        "frames": frames,
        "qp": q,
        "rdo": rdo if masked else None,
        "bytes_per_frame": int(np.median(payload_bytes)),
        "bpp": round(8 * float(np.median(payload_bytes)) / (width * height), 4),
        "encode": encode,
        "decode": decode,
        # Networks alone: analysis + prior path to encode; the same prior path + synthesis to decode.
        "network_only_ms": {
            "encode": round(analysis_ms + prior_ms, 3),
            "decode": round(prior_ms + synthesis_ms, 3),
        },
    }
    if device.type == "cuda":
        result["gpu_peak_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return result
