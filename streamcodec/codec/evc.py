"""The EVC model (Wang et al., ICLR 2023): training forward pass, rate probe, compress and decompress.

One model serves every rate through its quality q. The analysis transform runs once per frame; the rate at
another q costs only the hyperprior and prior path (:meth:`EVC.estimate_bits`), which rate control uses.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import crc32c
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CorruptStreamError, DesyncError
from .coder import TableBank, decode_substreams, encode_substreams
from .entropy import (
    Z_RADIUS,
    FactorizedDensity,
    gaussian_coding_tables,
    gaussian_likelihood,
    rate_input,
    scale_index,
)
from .exact import exact_copy
from .prior import HyperDecoder, HyperEncoder, PriorFusion, SpatialPrior, checkerboard_masks, checkerboard_positions
from .quality import decoded_q, index_to_q, interpolate_log, q_to_index
from .transforms import AnalysisTransform, SynthesisTransform

#: Inputs are padded to a multiple of this (the hyper-latent is at 1/64 resolution).
PAD_MULTIPLE = 64
# 2: entropy parameters on the exact fixed-point grid; 3: a checksum of z of its own; 4: the packet's q_index in
# the extended range (codec.quality); 5: the grid of 2**-8 activations and per-channel 15-bit weights (codec.exact)
PAYLOAD_VERSION = 5
#: The dtypes the analysis and synthesis transforms may run in at inference, by their ``--precision`` names.
PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
#: ``torch.compile`` modes of :meth:`EVC.compile_transforms`, and those that also capture CUDA graphs.
COMPILE_MODES = ("default", "max-autotune-no-cudagraphs", "reduce-overhead", "max-autotune")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")
Transform = Callable[[torch.Tensor], torch.Tensor]
#: Default number of independent sub-streams per coding step of y.
DEFAULT_SUBSTREAMS = 4
#: Fewest symbols per sub-stream: below this a sub-stream's fixed cost (length field, final ANS word)
#: outweighs the parallelism, so small frames use fewer sub-streams than asked for.
MIN_SUBSTREAM_SYMBOLS = 32768
#: Head of a frame payload: version, CRC32C of z, CRC32C of all quantised latents, sub-streams per step; a u32
#: length per sub-stream (z, then each step's) follows.
PAYLOAD_HEAD = struct.Struct("<BIIB")


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """Round with a straight-through gradient."""
    return x + (torch.round(x) - x).detach()


def pad_to_multiple(x: torch.Tensor, multiple: int = PAD_MULTIPLE) -> torch.Tensor:
    """Replicate-pad (B, C, H, W) on the right and bottom to a multiple of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


@dataclass(frozen=True)
class EncodedFrame:
    """One coded frame: the payload plus what the container stores beside it.

    ``estimated_bits`` is the model's estimate of ``8 * len(payload)`` (entropy plus framing).
    """

    payload: bytes
    q_index: int
    height: int
    width: int
    estimated_bits: float


@dataclass(frozen=True)
class Symbols:
    """A frame's integer symbols and coding-table indexes on the host: everything the arithmetic coder needs.
    ``z`` is channel-major; ``sym1``/``idx1`` and ``sym2``/``idx2`` are the two checkerboard steps of y."""

    z: np.ndarray
    sym1: np.ndarray
    idx1: np.ndarray
    sym2: np.ndarray
    idx2: np.ndarray


@dataclass
class Latents:
    """Quantised latents of one image at one q, with everything coding needs (``bits``: the model's estimate)."""

    z_sym: torch.Tensor
    sym1: torch.Tensor
    idx1: torch.Tensor
    sym2: torch.Tensor
    idx2: torch.Tensor
    y_hat_s: torch.Tensor
    q_step: torch.Tensor
    bits: torch.Tensor

    def host_symbols(self) -> Symbols:
        """The integer symbols and table indexes, copied to the host."""
        return Symbols(
            self.z_sym.to(torch.int32).cpu().numpy().ravel(),
            self.sym1.to(torch.int32).cpu().numpy(),
            self.idx1.cpu().numpy(),
            self.sym2.to(torch.int32).cpu().numpy(),
            self.idx2.cpu().numpy(),
        )


@dataclass(frozen=True)
class QuantisedFrame:
    """One frame after the networks and before arithmetic coding (:meth:`EVC.quantise_frame`).

    Its symbols are on the host, so coding it (:meth:`EVC.code_frame`) never touches the device and may run in
    another thread while the networks take the next frame. ``symbols`` is :class:`Symbols`, or a block-masked
    model's ``MaskedSymbols``; ``estimated_bits`` is the model's estimate of the payload's size; ``x_hat`` the
    decoder's reconstruction when it was asked for.
    """

    symbols: Any
    q_index: int
    height: int
    width: int
    substreams: int
    estimated_bits: float
    x_hat: torch.Tensor | None = None


class EVC(nn.Module):
    """EVC with analysis and synthesis sizes chosen independently ("s", "m" or "l")."""

    def __init__(self, encoder_size: str = "s", decoder_size: str = "s", n: int = 192) -> None:
        super().__init__()
        self.n = n
        self.analysis = AnalysisTransform(encoder_size, n)
        self.synthesis = SynthesisTransform(decoder_size, n)
        self.hyper_encoder = HyperEncoder(n)
        self.hyper_decoder = HyperDecoder(n)
        self.prior_fusion = PriorFusion(n)
        self.spatial_prior = SpatialPrior(n)
        self.z_density = FactorizedDensity(n)
        self.q_basic = nn.Parameter(torch.ones(1, n, 1, 1))
        self.log_q_anchors = nn.Parameter(torch.log(torch.tensor([1.6, 0.9, 0.5, 0.28])))
        self.executor: Executor | None = None
        #: dtype of the analysis and synthesis transforms at inference (:meth:`set_transform_dtype`)
        self.transform_dtype = torch.float32
        #: The compiled (analysis, synthesis) transforms that run at inference instead of the modules, if any
        #: (:meth:`compile_transforms`)
        self._compiled: tuple[Transform, Transform] | None = None
        #: Set by :func:`~streamcodec.codec.registry.load_model`: registry name, FourCC, weights identity.
        self.name = ""
        self.codec_id = ""
        self.weights_hash = b""

    # -- quality ------------------------------------------------------------------------------------------
    def latent_scale(self, q: torch.Tensor) -> torch.Tensor:
        """Per-sample, per-channel divisor of the latent, q_basic * q_scale(q): shape (B, N, 1, 1)."""
        q_scale = interpolate_log(torch.exp(self.log_q_anchors), q.to(self.q_basic.device))
        return self.q_basic.clamp_min(0.5) * q_scale.view(-1, 1, 1, 1)

    # -- training -----------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, q: torch.Tensor, noise: bool = True) -> dict[str, torch.Tensor]:
        """Training pass: reconstruction and per-sample bits of y and z.

        Rates use additive uniform noise (``noise=True``) or rounding; the reconstruction always uses
        straight-through rounding, as decoding will.
        """
        scale = self.latent_scale(q)
        y = self.analysis(x).float() / scale
        # The entropy model runs in fp32 even under mixed precision: rounding residuals and tail
        # probabilities are meaningless in bf16.
        with torch.autocast(x.device.type, enabled=False):
            z = self.hyper_encoder(y)
            z_hat = ste_round(z)
            z_rate = z + torch.empty_like(z).uniform_(-0.5, 0.5) if noise else z_hat
            bits_z = -torch.log2(self.z_density.likelihood(z_rate)).sum(dim=(1, 2, 3))

            q_step, scales, means = self.prior_fusion(self.hyper_decoder(z_hat))
            y_s = y / q_step
            b, c, h, w = y.shape
            m1, m2 = (m.to(y.dtype) for m in checkerboard_masks(c, h, w, y.device))
            res1 = y_s - means
            y1_hat = (ste_round(res1) + means) * m1
            scales2, means2 = self.spatial_prior(y1_hat, means, scales, q_step)
            res2 = y_s - means2
            y_hat_s = y1_hat + (ste_round(res2) + means2) * m2
            log_lik = m1 * torch.log2(gaussian_likelihood(rate_input(res1, noise), scales)) + m2 * torch.log2(
                gaussian_likelihood(rate_input(res2, noise), scales2)
            )
            bits_y = -log_lik.sum(dim=(1, 2, 3))
        x_hat = self.synthesis(y_hat_s * q_step * scale)
        return {"x_hat": x_hat, "bits_y": bits_y, "bits_z": bits_z}

    # -- inference ----------------------------------------------------------------------------------------
    @cached_property
    def _z_bank(self) -> TableBank:
        return TableBank(self.z_density.coding_tables())

    @cached_property
    def _y_bank(self) -> TableBank:
        return TableBank(gaussian_coding_tables())

    def _exact_prior(self) -> tuple[nn.Module, nn.Module, nn.Module]:
        """Coding copies of the entropy-parameter networks (hyper decoder, prior fusion, spatial prior), made on
        first use on the model's device.

        They compute exactly on a fixed-point grid (:mod:`.exact`), so encoder and decoder get bit-identical
        scales and means on any device, thread count or memory layout. The copies live outside the module tree,
        so they are neither trained nor saved.
        """
        device = self.q_basic.device
        cached = self.__dict__.get("_exact_prior_cache")
        if cached is None or cached[0] != device:
            nets = (self.hyper_decoder, self.prior_fusion, self.spatial_prior)
            cached = (device, tuple(exact_copy(net).to(device) for net in nets))
            self.__dict__["_exact_prior_cache"] = cached
        return cached[1]

    def hyper_symbols(self, y: torch.Tensor) -> torch.Tensor:
        """The quantised hyper-latent of a scaled latent ``y``, in float64. The hyper encoder runs only in the
        encoder, so it runs in float32 like the analysis transform."""
        return torch.round(self.hyper_encoder(y.float())).clamp(-Z_RADIUS, Z_RADIUS).double()

    def prepare_coding(self) -> None:
        """Build what coding needs (the coders' tables, the exact copies of the prior) now, in the calling
        thread, instead of on the first frame: the first frame of a live stream is not delayed, and the work
        (parallel torch operators) does not start a team of OpenMP threads in another thread (see
        :class:`~streamcodec.pipeline.stages.QuantiseStage`)."""
        self._z_bank, self._y_bank, self._exact_prior()  # noqa: B018 - built on first access

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        """As :meth:`torch.nn.Module.load_state_dict`, dropping what was built from the old weights (the exact
        copies of the prior, the hyper-latent's coding tables)."""
        self.__dict__.pop("_exact_prior_cache", None)
        self.__dict__.pop("_z_bank", None)
        return super().load_state_dict(*args, **kwargs)

    def set_transform_dtype(self, dtype: torch.dtype) -> None:
        """Run the analysis and synthesis transforms in ``dtype`` (float32, bfloat16 or float16) at inference.
        Their inputs and outputs stay float32, and the entropy-parameter path stays exact (:mod:`.exact`), so
        streams decode the same way whatever precision either side used; only the pixels move (the README's
        Speed section gives the RD cost)."""
        if dtype not in PRECISIONS.values():
            raise ValueError(f"transforms run in float32, bfloat16 or float16, not {dtype}")
        self.analysis.to(dtype)
        self.synthesis.to(dtype)
        self.transform_dtype = dtype

    def compile_transforms(self, mode: str = "default", backend: str | Callable[..., Any] = "inductor") -> None:
        """Run the inference transforms through ``torch.compile`` (``mode`` of :data:`COMPILE_MODES`, for the
        inductor ``backend``): one fused graph per frame size, built on the first frame of that size. Only the
        analysis and synthesis transforms are compiled; the entropy-parameter path stays the exact eager code, so
        streams do not change format and decode with or without compiling. Call after
        :meth:`set_transform_dtype`."""
        if mode not in COMPILE_MODES:
            raise ValueError(f"compile mode must be one of {', '.join(COMPILE_MODES)}, not {mode!r}")
        options = {"mode": mode} if backend == "inductor" else {}
        analysis = torch.compile(self.analysis, backend=backend, dynamic=False, **options)
        synthesis = torch.compile(self.synthesis, backend=backend, dynamic=False, **options)
        if mode in CUDA_GRAPH_MODES:
            # A CUDA graph's output lives in memory its next replay overwrites, and the frame before may still
            # be in the prior or the entropy stage: copy it out.
            self._compiled = (lambda x: analysis(x).clone(), lambda x: synthesis(x).clone())
        else:
            self._compiled = (analysis, synthesis)

    def analyse(self, x: torch.Tensor) -> torch.Tensor:
        """Analysis transform of an image (1, 3, H, W) in [0, 1], padded as coding needs."""
        analysis = self._compiled[0] if self._compiled else self.analysis
        return analysis(pad_to_multiple(x).to(self.transform_dtype)).float()

    def synthesise_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Synthesis transform of the unscaled latent, in :attr:`transform_dtype`; float32 out."""
        synthesis = self._compiled[1] if self._compiled else self.synthesis
        return synthesis(latent.to(self.transform_dtype)).float()

    def quantise(self, features: torch.Tensor, q: float) -> Latents:
        """Quantise the analysis ``features`` at quality ``q`` through the hyperprior and dual prior."""
        y_bank = self._y_bank
        q_t = torch.tensor([q], device=features.device)
        hyper_decoder, prior_fusion, spatial_prior = self._exact_prior()
        y = (features.double() / self.latent_scale(q_t).double()).contiguous()
        z_sym = self.hyper_symbols(y)
        q_step, scales, means = prior_fusion(hyper_decoder(z_sym))
        y_s = (y / q_step).contiguous()
        p1, p2 = checkerboard_positions(*y.shape[1:], y.device)
        radius = torch.from_numpy(y_bank.radius).to(y.device)

        scales1, means1 = torch.take(scales, p1), torch.take(means, p1)
        idx1 = scale_index(scales1)
        sym1 = torch.round(torch.take(y_s, p1) - means1)
        sym1 = torch.maximum(torch.minimum(sym1, radius[idx1]), -radius[idx1])
        y_hat_s = torch.zeros_like(y_s)
        y_hat_s.view(-1)[p1] = sym1 + means1
        scales2, means2 = (torch.take(t, p2) for t in spatial_prior(y_hat_s, means, scales, q_step))
        idx2 = scale_index(scales2)
        sym2 = torch.round(torch.take(y_s, p2) - means2)
        sym2 = torch.maximum(torch.minimum(sym2, radius[idx2]), -radius[idx2])
        y_hat_s.view(-1)[p2] = sym2 + means2

        bits = -(
            torch.log2(self.z_density.likelihood(z_sym)).sum()
            + torch.log2(gaussian_likelihood(sym1, scales1)).sum()
            + torch.log2(gaussian_likelihood(sym2, scales2)).sum()
        )
        return Latents(z_sym, sym1, idx1, sym2, idx2, y_hat_s, q_step, bits)

    @torch.inference_mode()
    def estimate_bits(self, features: torch.Tensor, q: float, substreams: int = DEFAULT_SUBSTREAMS) -> float:
        """The estimate of a frame's payload size in bits at quality ``q`` (the rate probe): the entropy
        model's bits plus the payload's framing."""
        lat = self.quantise(features, q)
        return float(lat.bits) + framing_bits(len(lat.sym1), substreams)

    def encode_latents(self, symbols: Symbols, substreams: int = DEFAULT_SUBSTREAMS) -> bytes:
        """Entropy-code a frame's symbols into its payload."""
        if not 1 <= substreams <= 255:
            raise ValueError("substreams must lie in 1..255")
        s = symbols
        z_idx = np.repeat(np.arange(self.n), s.z.size // self.n)
        substreams = substream_count(len(s.sym1), substreams)
        chunks = [self._z_bank.encode(s.z, z_idx)]
        chunks += encode_substreams(self._y_bank, s.sym1, s.idx1, substreams, self.executor)
        chunks += encode_substreams(self._y_bank, s.sym2, s.idx2, substreams, self.executor)
        return _pack_payload(_latent_crc(s.z), _latent_crc(s.z, s.sym1, s.sym2), substreams, chunks)

    def decode_latents(
        self, payload: bytes, height: int, width: int, timings: dict[str, float] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Entropy-decode a frame payload to (y_hat / q_step, q_step), checking the latents' CRC.

        ``timings``, when given, receives the seconds spent in arithmetic decoding under "entropy_decode".
        """
        clock = time.perf_counter
        spent = 0.0
        z_check, check, substreams, chunks = _unpack_payload(payload)
        device = self.q_basic.device
        hp, wp = -(-height // PAD_MULTIPLE) * PAD_MULTIPLE, -(-width // PAD_MULTIPLE) * PAD_MULTIPLE
        n = self.n
        hz, wz = hp // 64, wp // 64
        start = clock()
        z_sym = self._decode_z(chunks[0], hz * wz, z_check)
        spent += clock() - start
        z_hat = torch.from_numpy(z_sym.astype(np.float64)).view(1, n, hz, wz).to(device)
        hyper_decoder, prior_fusion, spatial_prior = self._exact_prior()
        q_step, scales, means = prior_fusion(hyper_decoder(z_hat))
        p1, p2 = checkerboard_positions(n, hp // 16, wp // 16, device)
        means1 = torch.take(means, p1)
        index1 = scale_index(torch.take(scales, p1)).cpu().numpy()
        start = clock()
        sym1 = self._decode_step(chunks[1 : 1 + substreams], index1)
        spent += clock() - start
        y_hat_s = torch.zeros(means.shape, dtype=means.dtype, device=device)
        y_hat_s.view(-1)[p1] = torch.from_numpy(sym1).to(device, means.dtype) + means1
        scales2, means2 = (torch.take(t, p2) for t in spatial_prior(y_hat_s, means, scales, q_step))
        index2 = scale_index(scales2).cpu().numpy()
        start = clock()
        sym2 = self._decode_step(chunks[1 + substreams :], index2)
        spent += clock() - start
        if timings is not None:
            timings["entropy_decode"] = timings.get("entropy_decode", 0.0) + spent
        if _latent_crc(z_sym, sym1, sym2) != check:
            raise DesyncError("decoded latents fail their checksum: entropy parameters differ from the encoder's")
        y_hat_s.view(-1)[p2] = torch.from_numpy(sym2).to(device, means.dtype) + means2
        return y_hat_s, q_step

    def synthesise(
        self, y_hat_s: torch.Tensor, q_step: torch.Tensor, q: float, height: int, width: int
    ) -> torch.Tensor:
        """Synthesis transform of decoded latents: the image (1, 3, height, width) in [0, 1]."""
        scale = self.latent_scale(torch.tensor([q], device=y_hat_s.device))
        x_hat = self.synthesise_latent(y_hat_s * q_step * scale)
        return x_hat[..., :height, :width].clamp(0, 1)

    @torch.inference_mode()
    def quantise_frame(
        self,
        x: torch.Tensor,
        q: float,
        substreams: int = DEFAULT_SUBSTREAMS,
        features: torch.Tensor | None = None,
        reconstruct: bool = False,
    ) -> QuantisedFrame:
        """The networks' part of coding one image (1, 3, H, W) in [0, 1] at quality ``q``: analysis (unless
        ``features`` passes the result of :meth:`analyse`, e.g. from rate control), hyperprior and prior, and the
        reconstruction when ``reconstruct`` is set. :meth:`code_frame` does the rest."""
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(f"expected an image tensor of shape (1, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        q_index = q_to_index(q)
        q = index_to_q(q_index)
        if features is None:
            features = self.analyse(x)
        lat = self.quantise(features, q)
        estimate = float(lat.bits) + framing_bits(len(lat.sym1), substreams)
        x_hat = self.synthesise(lat.y_hat_s, lat.q_step, q, h, w) if reconstruct else None
        return QuantisedFrame(lat.host_symbols(), q_index, h, w, substreams, estimate, x_hat)

    def code_frame(self, frame: QuantisedFrame) -> EncodedFrame:
        """Arithmetic-code a quantised frame into its payload (host work only)."""
        payload = self.encode_latents(frame.symbols, frame.substreams)
        return EncodedFrame(payload, frame.q_index, frame.height, frame.width, frame.estimated_bits)

    def compress(
        self,
        x: torch.Tensor,
        q: float,
        substreams: int = DEFAULT_SUBSTREAMS,
        features: torch.Tensor | None = None,
        reconstruct: bool = False,
        **options: Any,
    ) -> tuple[EncodedFrame, torch.Tensor | None]:
        """Code one image (1, 3, H, W) in [0, 1] at quality ``q``: :meth:`quantise_frame` then
        :meth:`code_frame`. Returns the frame and, when ``reconstruct`` is set, the decoder's reconstruction.
        ``options`` go to a subclass's :meth:`quantise_frame` (a block-masked model's ``mask`` and ``rdo``)."""
        quantised = self.quantise_frame(x, q, substreams, features, reconstruct, **options)
        return self.code_frame(quantised), quantised.x_hat

    @torch.inference_mode()
    def decompress(self, payload: bytes, height: int, width: int, q_index: int) -> torch.Tensor:
        """Decode one frame's payload to an image (1, 3, height, width) in [0, 1].

        Raises :class:`CorruptStreamError` for a malformed payload and :class:`DesyncError` when the decoded
        latents fail their checksum (the entropy parameters differ from the encoder's).
        """
        q = decoded_q(q_index)
        y_hat_s, q_step = self.decode_latents(payload, height, width)
        return self.synthesise(y_hat_s, q_step, q, height, width)

    def _decode_z(self, chunk: bytes, positions: int, check: int) -> np.ndarray:
        """Decode the hyper-latent (``positions`` per channel) and check it before any network runs on it: a
        damaged payload, or one decoded at another frame size than it was coded at, stops here at the cost of
        the z decode alone (an ANS decoder never runs out of symbols by itself)."""
        try:
            z_sym = self._z_bank.decode(chunk, np.repeat(np.arange(self.n), positions))
        except (ValueError, RuntimeError) as exc:
            raise CorruptStreamError(f"hyper-latent does not decode: {exc}") from exc
        if _latent_crc(z_sym) != check:
            raise CorruptStreamError("hyper-latent fails its checksum: damaged, or coded at another frame size")
        return z_sym

    def _decode_step(self, chunks: Sequence[bytes], index: np.ndarray) -> np.ndarray:
        try:
            return decode_substreams(self._y_bank, chunks, index, self.executor)
        except (ValueError, RuntimeError) as exc:
            raise CorruptStreamError(f"latent does not decode: {exc}") from exc


def substream_count(step_symbols: int, requested: int) -> int:
    """Sub-streams a coding step of ``step_symbols`` symbols really uses when ``requested`` are asked for."""
    return max(1, min(requested, step_symbols // MIN_SUBSTREAM_SYMBOLS))


def framing_bits(step_symbols: int, requested: int) -> int:
    """Bits of a payload's fixed framing: its head and one length per sub-stream."""
    chunks = 1 + 2 * substream_count(step_symbols, requested)
    return 8 * (PAYLOAD_HEAD.size + 4 * chunks)


def _latent_crc(*arrays: np.ndarray) -> int:
    value = 0
    for a in arrays:
        value = crc32c.crc32c(np.ascontiguousarray(a, dtype="<i2").tobytes(), value)
    return value


def _pack_payload(z_check: int, check: int, substreams: int, chunks: Sequence[bytes]) -> bytes:
    lengths = struct.pack(f"<{len(chunks)}I", *(len(c) for c in chunks))
    return PAYLOAD_HEAD.pack(PAYLOAD_VERSION, z_check, check, substreams) + lengths + b"".join(chunks)


def _unpack_payload(payload: bytes) -> tuple[int, int, int, list[bytes]]:
    """(CRC of z, CRC of all latents, sub-streams per step, chunks) of a frame payload."""
    if len(payload) < PAYLOAD_HEAD.size:
        raise CorruptStreamError("frame payload is shorter than its header")
    version, z_check, check, substreams = PAYLOAD_HEAD.unpack_from(payload)
    if version != PAYLOAD_VERSION or substreams == 0:
        raise CorruptStreamError(f"unknown frame payload version {version} or sub-stream count {substreams}")
    count = 1 + 2 * substreams
    offset = PAYLOAD_HEAD.size + 4 * count
    if len(payload) < offset:
        raise CorruptStreamError("frame payload is shorter than its sub-stream table")
    lengths = struct.unpack_from(f"<{count}I", payload, PAYLOAD_HEAD.size)
    if offset + sum(lengths) != len(payload) or any(n % 4 for n in lengths):
        raise CorruptStreamError("frame payload's sub-stream lengths do not add up")
    chunks = []
    for n in lengths:
        chunks.append(payload[offset : offset + n])
        offset += n
    return z_check, check, substreams, chunks


__all__ = ["EVC", "EncodedFrame", "PAD_MULTIPLE", "QuantisedFrame", "Symbols", "pad_to_multiple"]
