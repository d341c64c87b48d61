"""EVC with RDONet's hierarchical latents (Brand et al.): three granularities chosen per 64x64 block.

The latent y (1/16) is also carried at 1/32 and 1/64 by two further latent-space units. A block mask says which
level carries each 64x64 block (:mod:`~streamcodec.codec.masks`). Levels are coded coarsest first and each
finer level's prior is conditioned on the coarser levels' decoded latent (a conditional hyperprior), so the
levels do not repeat each other; the synthesis transform sees the finest latent where it was coded and the
coarser levels, lifted to 1/16, elsewhere.

All of EVC's networks are reused unchanged. The conditioning of the finest level is bias-free and starts at
zero, so a block mask that selects the finest level everywhere codes exactly as plain EVC: such frames go out
as plain KEY packets, and plain EVC weights initialise the shared parts of this model.

Masked payload: head (version u8, mask length u32, level-2 length u32, level-1 length u32), the coded mask, the
level-2 and level-1 symbols, then an EVC payload holding z and the two dual-prior steps of level 0, whose CRC
covers the mask and every level's symbols.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CorruptStreamError, DesyncError
from .coder import decode_substreams, encode_substreams
from .entropy import SCALE_MAX, gaussian_likelihood, rate_input, scale_index
from .evc import (
    DEFAULT_SUBSTREAMS,
    EVC,
    PAD_MULTIPLE,
    EncodedFrame,
    QuantisedFrame,
    _latent_crc,
    _pack_payload,
    _unpack_payload,
    framing_bits,
    pad_to_multiple,
    ste_round,
    substream_count,
)
from .exact import exact_copy, float64_copy
from .layers import DepthConvBlock, subpel_conv1x1
from .masks import (
    BLOCK,
    DEFAULT_SHARES,
    block_variance,
    calibrate_thresholds,
    decode_mask,
    encode_mask,
    level_maps,
    random_masks,
    variance_levels,
)
from .prior import checkerboard_masks
from .quality import decoded_q, index_to_q, q_to_index
from .rdo import search_mask

# 2: the packet's q_index in the extended range (codec.quality); 3: the exact grid of payload v5 (codec.exact)
MASKED_PAYLOAD_VERSION = 3
_MASKED_HEAD = struct.Struct("<BIII")
#: Variance thresholds (coarse, fine) of an uncalibrated model, for RGB in [0, 1].
DEFAULT_THRESHOLDS = (1e-3, 5e-3)

#: ``take(level key, selection (N, h, w), scales, means, divisor)`` -> the symbols of the selected positions.
SymbolSource = Callable[[str, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


class Rescale(nn.Module):
    """Halve (average pooling) or double (nearest-neighbour copies) a latent's resolution, plus a learned
    correction that starts at zero, so that fresh coarse levels already carry a blocky version of y."""

    def __init__(self, n: int, upsample: bool) -> None:
        super().__init__()
        self.upsample = upsample
        if upsample:
            self.net = nn.Sequential(DepthConvBlock(n, n, capped_ffn=True), subpel_conv1x1(n, n, 2))
            last = self.net[1][0]
        else:
            self.net = nn.Sequential(DepthConvBlock(n, n, stride=2, capped_ffn=True), nn.Conv2d(n, n, 1))
            last = self.net[1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        base = F.interpolate(x, scale_factor=2, mode="nearest") if self.upsample else F.avg_pool2d(x, 2)
        return base + self.net(x)


class LevelNets(nn.Module):
    """The networks RDONet adds to EVC: down-samplers (encoder only), priors of the coarse levels, up-samplers
    that lift a coarse latent one level, and the conditioning of the finest level's prior."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.down1 = Rescale(n, upsample=False)
        self.down2 = Rescale(n, upsample=False)
        self.prior2 = DepthConvBlock(n, 2 * n, capped_ffn=True)
        self.prior1 = DepthConvBlock(2 * n, 2 * n, capped_ffn=True)
        self.up2 = Rescale(n, upsample=True)
        self.up1 = Rescale(n, upsample=True)
        # Point-wise, bias-free and zero at the start: no coarse blocks, no change to EVC's prior.
        self.cond0 = nn.Sequential(
            nn.Conv2d(n + 1, n, 1, bias=False), nn.LeakyReLU(0.01), nn.Conv2d(n, n, 1, bias=False)
        )
        nn.init.zeros_(self.cond0[2].weight)


@dataclass(frozen=True)
class MaskedFrame(EncodedFrame):
    """A frame coded with a block mask (a KEY_MASKED packet); ``mask`` is (H/64, W/64) of levels 0..2."""

    mask: np.ndarray | None = None


@dataclass(frozen=True)
class MaskedSymbols:
    """A masked frame's mask, z symbols and per-level (symbols, table indexes), on the host: what its payload
    holds."""

    mask: np.ndarray
    z: np.ndarray
    levels: dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass
class MaskedLatents:
    """Everything a masked frame's payload holds, plus its reconstruction latent and estimated bits."""

    mask: np.ndarray
    z_sym: torch.Tensor
    symbols: dict[str, tuple[torch.Tensor, torch.Tensor]]  # level key -> (symbols, table indexes)
    latent: torch.Tensor
    bits: torch.Tensor

    def host_symbols(self) -> MaskedSymbols:
        """The mask, symbols and table indexes, copied to the host."""
        levels = {k: (s.to(torch.int32).cpu().numpy(), i.cpu().numpy()) for k, (s, i) in self.symbols.items()}
        return MaskedSymbols(self.mask, self.z_sym.to(torch.int32).cpu().numpy().ravel(), levels)


def _sum_pool(t: torch.Tensor, factor: int) -> torch.Tensor:
    return F.avg_pool2d(t, factor) * factor * factor if factor > 1 else t


def check_rdo(model: EVC, rdo: int) -> None:
    """ValueError unless ``rdo`` is 0 (zero-pass), 1 or 2, and passes go with a block-masked model."""
    if rdo not in (0, 1, 2):
        raise ValueError(f"rdo must be 0 (zero-pass), 1 or 2 passes, got {rdo}")
    if rdo and not isinstance(model, MaskedEVC):
        raise ValueError(f"RDO passes need a block-masked model (e.g. evc-s-rdo), not {model.name!r}")


class MaskedEVC(EVC):
    """EVC whose latent is carried at three granularities chosen per 64x64 block (``evc-s-rdo``)."""

    def __init__(self, encoder_size: str = "s", decoder_size: str = "s", n: int = 192) -> None:
        super().__init__(encoder_size, decoder_size, n)
        self.levels = LevelNets(n)
        self.register_buffer("mask_thresholds", torch.tensor(DEFAULT_THRESHOLDS, dtype=torch.float64))

    # -- masks --------------------------------------------------------------------------------------------
    def variance_mask(self, x: torch.Tensor) -> torch.Tensor:
        """The zero-pass mask of images (B, 3, H, W): (B, ceil(H/64), ceil(W/64)) levels, on x's device."""
        variance = block_variance(pad_to_multiple(x.double(), BLOCK))
        return variance_levels(variance, self.mask_thresholds.to(variance.device))

    def calibrate_masks(self, images: list[np.ndarray], shares: tuple[float, ...] | None = None) -> None:
        """Set the variance thresholds from training images (HxWx3 uint8) so levels get the target shares."""
        self.mask_thresholds.copy_(torch.tensor(calibrate_thresholds(images, shares or DEFAULT_SHARES)))

    def training_mask(self, x: torch.Tensor, random: bool) -> torch.Tensor:
        """The mask a training batch uses: random levels (first phase) or the variance mask (second)."""
        if x.shape[-1] % BLOCK or x.shape[-2] % BLOCK:
            raise ValueError(f"masked models train on crops that are multiples of {BLOCK}, got {tuple(x.shape)}")
        if random:
            return random_masks(x.shape[0], x.shape[-2], x.shape[-1], x.device)
        return self.variance_mask(x)

    def choose_mask(
        self, x: torch.Tensor, q: float, rdo: int = 0, features: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The block mask of image x (1, 3, H, W) at quality q: the variance mask (``rdo=0``), refined by
        ``rdo`` passes of per-block search on the model's estimated RD cost. Returns (H/64, W/64) levels."""
        mask = self.variance_mask(x)[0]
        if rdo == 0:
            return mask
        return search_mask(self, x, q, mask, rdo, features)[0]

    # -- training and RD estimates ------------------------------------------------------------------------
    def forward(  # type: ignore[override]
        self, x: torch.Tensor, q: torch.Tensor, noise: bool = True, mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Training pass as :meth:`EVC.forward` with a block mask (default: the variance mask); also returns
        ``block_bits`` (B, H/64, W/64), the bits each block costs."""
        scale = self.latent_scale(q)
        y = self.analysis(x).float() / scale
        mask = self.variance_mask(x) if mask is None else mask
        with torch.autocast(x.device.type, enabled=False):
            out = self._forward_levels(y, mask, noise)
        out["x_hat"] = self.synthesis(out.pop("latent") * scale)
        return out

    def _forward_levels(self, y: torch.Tensor, mask: torch.Tensor, noise: bool) -> dict[str, torch.Tensor]:
        lv = self.levels
        maps = level_maps(mask, y.dtype)
        z = self.hyper_encoder(y)
        z_hat = ste_round(z)
        bits_z = -torch.log2(self.z_density.likelihood(rate_input(z, noise))).sum(1)
        hyper = self.hyper_decoder(z_hat)

        def level(y_k: torch.Tensor, params: torch.Tensor, sel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            scales, means = params.chunk(2, dim=1)
            res = y_k - means
            bits = -(sel * torch.log2(gaussian_likelihood(rate_input(res, noise), scales))).sum(1)
            return (ste_round(res) + means) * sel, bits

        y1 = lv.down1(y)
        y2_hat, bits2 = level(lv.down2(y1), lv.prior2(F.avg_pool2d(hyper, 4)), maps[2][2])
        ctx1 = lv.up2(y2_hat)
        y1_hat, bits1 = level(y1, lv.prior1(torch.cat((F.avg_pool2d(hyper, 2), ctx1), 1)), maps[1][1])
        coarse = 1 - maps[0][0]
        ctx0 = lv.up1(y1_hat + ctx1 * maps[1][2]) * coarse
        q_step, scales, means = self.prior_fusion(hyper + lv.cond0(torch.cat((ctx0, coarse), 1)))
        y_s = y / q_step
        cb1, cb2 = (m.to(y.dtype) * maps[0][0] for m in checkerboard_masks(*y.shape[1:], y.device))
        res_a = y_s - means
        y_hat_a = (ste_round(res_a) + means) * cb1
        scales_b, means_b = self.spatial_prior(y_hat_a, means, scales, q_step)
        res_b = y_s - means_b
        y_hat_s = y_hat_a + (ste_round(res_b) + means_b) * cb2
        bits0 = -(
            cb1 * torch.log2(gaussian_likelihood(rate_input(res_a, noise), scales))
            + cb2 * torch.log2(gaussian_likelihood(rate_input(res_b, noise), scales_b))
        ).sum(1)
        bits_y_blocks = _sum_pool(bits0, 4) + _sum_pool(bits1, 2) + bits2
        return {
            "latent": y_hat_s * q_step + ctx0,
            "bits_y": bits_y_blocks.sum(dim=(1, 2)),
            "bits_z": bits_z.sum(dim=(1, 2)),
            "block_bits": bits_y_blocks + bits_z,
        }

    @torch.inference_mode()
    def block_costs(
        self, x: torch.Tensor, features: torch.Tensor, q: float, masks: torch.Tensor, lam: float
    ) -> torch.Tensor:
        """Estimated RD cost ``lam * SSE / 3 + bits`` of every block of image x (1, 3, H, W) coded with each
        of ``masks`` (M, H/64, W/64): (M, H/64, W/64). Rounded latents, float32 (an estimate for the search;
        the coded frame runs the exact path)."""
        count = masks.shape[0]
        scale = self.latent_scale(torch.full((count,), q, device=features.device))
        y = features.float().expand(count, -1, -1, -1) / scale
        out = self._forward_levels(y, masks, noise=False)
        x_hat = self.synthesise_latent(out["latent"] * scale).clamp(0, 1)
        h, w = x.shape[-2:]
        valid = torch.zeros_like(x_hat[:1, :1])
        valid[..., :h, :w] = 1
        err = (x_hat - pad_to_multiple(x, BLOCK)).pow(2).sum(1, keepdim=True) * valid
        return lam * _sum_pool(err, BLOCK)[:, 0] / 3 + out["block_bits"]

    # -- coding -------------------------------------------------------------------------------------------
    def _exact_levels(self) -> nn.Module:
        """Coding copies of :class:`LevelNets`, made as :meth:`EVC._exact_prior` makes EVC's: the decoder-side
        networks exact on the fixed-point grid, the encoder-only down-samplers in plain float64."""
        device = self.q_basic.device
        cached = self.__dict__.get("_exact_levels_cache")
        if cached is None or cached[0] != device:
            copies = {
                name: (float64_copy if name.startswith("down") else exact_copy)(net)
                for name, net in self.levels.named_children()
            }
            cached = (device, nn.ModuleDict(copies).to(device))
            self.__dict__["_exact_levels_cache"] = cached
        return cached[1]

    def prepare_coding(self) -> None:
        """:meth:`EVC.prepare_coding`, and the exact copies of the level networks."""
        super().prepare_coding()
        self._exact_levels()

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self.__dict__.pop("_exact_levels_cache", None)
        return super().load_state_dict(*args, **kwargs)

    def _walk(self, z_hat: torch.Tensor, mask: torch.Tensor, take: SymbolSource) -> torch.Tensor:
        """The levels' coding order, shared by encoder and decoder: from the decoded hyper-latent and the mask,
        the entropy parameters of each level in turn, with ``take`` supplying its symbols. Returns the latent
        the synthesis transform decodes (y units, before the q scale)."""
        lv = self._exact_levels()
        hyper_decoder, prior_fusion, spatial_prior = self._exact_prior()
        maps = level_maps(mask[None], torch.float64)
        hyper = hyper_decoder(z_hat)

        def level(key: str, params: torch.Tensor, sel: torch.Tensor) -> torch.Tensor:
            scales, means = params.chunk(2, dim=1)
            chosen = sel[0].expand_as(means[0]).bool()
            y_hat = torch.zeros_like(means)
            y_hat[0][chosen] = take(key, chosen, scales[0], means[0], None) + means[0][chosen]
            return y_hat

        y2_hat = level("2", lv.prior2(F.avg_pool2d(hyper, 4)), maps[2][2])
        ctx1 = lv.up2(y2_hat)
        y1_hat = level("1", lv.prior1(torch.cat((F.avg_pool2d(hyper, 2), ctx1), 1)), maps[1][1])
        coarse = 1 - maps[0][0]
        ctx0 = lv.up1(y1_hat + ctx1 * maps[1][2]) * coarse
        q_step, scales, means = prior_fusion(hyper + lv.cond0(torch.cat((ctx0, coarse), 1)))
        fine = maps[0][0][0].bool()
        step1, step2 = (m & fine for m in checkerboard_masks(*means.shape[1:], means.device))
        y_hat_s = torch.zeros_like(means)
        y_hat_s[0][step1] = take("0a", step1, scales[0], means[0], q_step[0]) + means[0][step1]
        scales_b, means_b = spatial_prior(y_hat_s, means, scales, q_step)
        y_hat_s[0][step2] = take("0b", step2, scales_b[0], means_b[0], q_step[0]) + means_b[0][step2]
        return y_hat_s * q_step + ctx0

    @torch.inference_mode()
    def quantise_masked(self, features: torch.Tensor, q: float, mask: torch.Tensor) -> MaskedLatents:
        """Quantise the analysis ``features`` at quality ``q`` with block ``mask`` (H/64, W/64)."""
        radius = torch.from_numpy(self._y_bank.radius).to(features.device)
        y = (features.double() / self.latent_scale(torch.tensor([q], device=features.device)).double()).contiguous()
        z_sym = self.hyper_symbols(y)
        lv = self._exact_levels()
        y1 = lv.down1(y)
        targets = {"2": lv.down2(y1), "1": y1, "0a": y, "0b": y}
        symbols: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        bits = -torch.log2(self.z_density.likelihood(z_sym)).sum()

        def take(key: str, sel: torch.Tensor, scales: torch.Tensor, means: torch.Tensor, div: Any) -> torch.Tensor:
            nonlocal bits
            target = targets[key][0] / div if div is not None else targets[key][0]
            idx = scale_index(scales[sel])
            sym = torch.round(target[sel] - means[sel])
            sym = torch.maximum(torch.minimum(sym, radius[idx]), -radius[idx])
            symbols[key] = (sym, idx)
            # Scales beyond the table's largest are coded with it: estimate them so too.
            bits = bits - torch.log2(gaussian_likelihood(sym, scales[sel].clamp(max=SCALE_MAX))).sum()
            return sym

        latent = self._walk(z_sym, mask, take)
        return MaskedLatents(mask.cpu().numpy(), z_sym, symbols, latent, bits)

    def encode_masked(self, symbols: MaskedSymbols, substreams: int = DEFAULT_SUBSTREAMS) -> bytes:
        """Entropy-code a masked frame's symbols into a KEY_MASKED payload."""
        if not 1 <= substreams <= 255:
            raise ValueError("substreams must lie in 1..255")
        levels, z_sym = symbols.levels, symbols.z
        z_idx = np.repeat(np.arange(self.n), z_sym.size // self.n)
        substreams = substream_count(len(levels["0a"][0]), substreams)
        inner = [self._z_bank.encode(z_sym, z_idx)]
        for key in ("0a", "0b"):
            inner += encode_substreams(self._y_bank, *levels[key], substreams, self.executor)
        check = _latent_crc(symbols.mask, z_sym, *(levels[k][0] for k in ("2", "1", "0a", "0b")))
        head = [encode_mask(symbols.mask), self._y_bank.encode(*levels["2"]), self._y_bank.encode(*levels["1"])]
        body = _pack_payload(_latent_crc(z_sym), check, substreams, inner)
        return _MASKED_HEAD.pack(MASKED_PAYLOAD_VERSION, *map(len, head)) + b"".join(head) + body

    @torch.inference_mode()
    def decode_masked(
        self, payload: bytes, height: int, width: int, timings: dict[str, float] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Entropy-decode a KEY_MASKED payload to (latent, 1): the pair :meth:`EVC.synthesise` takes.

        A damaged mask raises :class:`CorruptStreamError`; latents failing their checksum :class:`DesyncError`.
        """
        if len(payload) < _MASKED_HEAD.size:
            raise CorruptStreamError("masked frame payload is shorter than its header")
        version, *lengths = _MASKED_HEAD.unpack_from(payload)
        if version != MASKED_PAYLOAD_VERSION:
            raise CorruptStreamError(f"unknown masked payload version {version}")
        offset = _MASKED_HEAD.size
        if offset + sum(lengths) > len(payload):
            raise CorruptStreamError("masked frame payload is shorter than its mask and coarse levels")
        parts = []
        for n in lengths:
            parts.append(payload[offset : offset + n])
            offset += n
        z_check, check, substreams, chunks = _unpack_payload(payload[offset:])
        device = self.q_basic.device
        hb, wb = -(-height // PAD_MULTIPLE), -(-width // PAD_MULTIPLE)
        mask_np = decode_mask(parts[0], hb * wb).reshape(hb, wb)
        mask = torch.from_numpy(mask_np).to(device)
        clock, spent = time.perf_counter, [0.0]
        start = clock()
        z_sym = self._decode_z(chunks[0], hb * wb, z_check)
        spent[0] += clock() - start
        streams = {"2": [parts[1]], "1": [parts[2]], "0a": chunks[1 : 1 + substreams], "0b": chunks[1 + substreams :]}
        decoded: dict[str, np.ndarray] = {}

        def take(key: str, sel: torch.Tensor, scales: torch.Tensor, means: torch.Tensor, div: Any) -> torch.Tensor:
            index = scale_index(scales[sel]).cpu().numpy()
            start = clock()
            try:
                decoded[key] = decode_substreams(self._y_bank, streams[key], index, self.executor)
            except (ValueError, RuntimeError) as exc:
                raise CorruptStreamError(f"level {key[0]} latent does not decode: {exc}") from exc
            spent[0] += clock() - start
            return torch.from_numpy(decoded[key]).to(device, means.dtype)

        z_hat = torch.from_numpy(z_sym.astype(np.float64)).view(1, self.n, hb, wb).to(device)
        latent = self._walk(z_hat, mask, take)
        if timings is not None:
            timings["entropy_decode"] = timings.get("entropy_decode", 0.0) + spent[0]
        if _latent_crc(mask_np, z_sym, *(decoded[k] for k in ("2", "1", "0a", "0b"))) != check:
            raise DesyncError("decoded mask or latents fail their checksum: damaged mask bits or entropy parameters "
                              "that differ from the encoder's")
        return latent, torch.ones((), dtype=latent.dtype, device=device)

    # -- whole frames -------------------------------------------------------------------------------------
    @torch.inference_mode()
    def estimate_bits(  # type: ignore[override]
        self, features: torch.Tensor, q: float, substreams: int = DEFAULT_SUBSTREAMS, mask: torch.Tensor | None = None
    ) -> float:
        """The rate probe of :meth:`EVC.estimate_bits`, for a masked frame when a non-trivial ``mask`` is given."""
        if mask is None or not bool(mask.any()):
            return super().estimate_bits(features, q, substreams)
        return _estimate(self.quantise_masked(features, q, mask), substreams)

    @torch.inference_mode()
    def quantise_frame(  # type: ignore[override]
        self,
        x: torch.Tensor,
        q: float,
        substreams: int = DEFAULT_SUBSTREAMS,
        features: torch.Tensor | None = None,
        reconstruct: bool = False,
        mask: torch.Tensor | None = None,
        rdo: int = 0,
    ) -> QuantisedFrame:
        """:meth:`EVC.quantise_frame` with a block mask: ``mask`` if given, else the variance mask refined by
        ``rdo`` search passes. A mask that is finest everywhere gives a plain frame; any other a masked one
        (its symbols are :class:`MaskedSymbols`)."""
        q = index_to_q(q_to_index(q))
        if features is None:
            features = self.analyse(x)
        if mask is None:
            mask = self.choose_mask(x, q, rdo, features)
        if not bool(mask.any()):
            return super().quantise_frame(x, q, substreams, features, reconstruct)
        h, w = x.shape[-2:]
        lat = self.quantise_masked(features, q, mask)
        x_hat = self.synthesise(lat.latent, torch.ones((), dtype=lat.latent.dtype), q, h, w) if reconstruct else None
        return QuantisedFrame(lat.host_symbols(), q_to_index(q), h, w, substreams, _estimate(lat, substreams), x_hat)

    def code_frame(self, frame: QuantisedFrame) -> EncodedFrame:
        """:meth:`EVC.code_frame`; a masked frame gives a :class:`MaskedFrame`."""
        if not isinstance(frame.symbols, MaskedSymbols):
            return super().code_frame(frame)
        payload = self.encode_masked(frame.symbols, frame.substreams)
        return MaskedFrame(
            payload, frame.q_index, frame.height, frame.width, frame.estimated_bits, frame.symbols.mask
        )

    @torch.inference_mode()
    def decompress_masked(self, payload: bytes, height: int, width: int, q_index: int) -> torch.Tensor:
        """Decode a KEY_MASKED payload to an image (1, 3, height, width) in [0, 1]."""
        q = decoded_q(q_index)
        latent, one = self.decode_masked(payload, height, width)
        return self.synthesise(latent, one, q, height, width)


def _estimate(lat: MaskedLatents, substreams: int) -> float:
    """A masked payload's estimated size in bits: the entropy model's bits plus framing (head, mask counts, the
    final words of the coarse streams, about 2 bits per block for the mask)."""
    framing = framing_bits(len(lat.symbols["0a"][0]), substreams) + 8 * (_MASKED_HEAD.size + 6 + 8)
    return float(lat.bits) + framing + 2 * lat.mask.size


__all__ = ["MaskedEVC", "MaskedFrame", "MaskedSymbols", "LevelNets", "check_rdo"]
