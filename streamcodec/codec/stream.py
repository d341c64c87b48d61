"""Frame encoder and decoder: images in, ``.scv`` packets out, and back.

This is where the neural codec meets the container: the encoder fills the stream header from the model
(FourCC, weights hash, coder id) and wraps each coded frame in a packet; the decoder refuses streams made with
other weights and names the frame whose latents desynchronised.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from fractions import Fraction

import numpy as np
import torch

from ..bitstream import Packet, PacketType, StreamHeader
from ..bitstream.format import PACKET_HEADER_SIZE, ColorFormat
from ..errors import CorruptStreamError, DesyncError, FrameSizeError, UnsupportedVersionError, WrongModelError
from .coder import CODER_ID
from .evc import DEFAULT_SUBSTREAMS, EVC, PAD_MULTIPLE, EncodedFrame, QuantisedFrame
from .masked import MaskedEVC, MaskedFrame, check_rdo
from .quality import index_to_q

#: The largest frame side the decoder accepts (the container allows more; the model's memory does not).
MAX_SIDE = 8192


def to_tensor(image: np.ndarray | torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """An RGB image (H, W, 3) uint8 array, or a (3, H, W)/(1, 3, H, W) float tensor in [0, 1], as (1, 3, H, W)."""
    if isinstance(image, torch.Tensor):
        x = image if image.dim() == 4 else image.unsqueeze(0)
        if not image.is_floating_point() or x.dim() != 4 or x.shape[:2] != (1, 3):
            raise ValueError(
                f"expected a (3, H, W) or (1, 3, H, W) float tensor in [0, 1], got {image.dtype} of shape "
                f"{tuple(image.shape)}"
            )
        return x.to(device, torch.float32)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.dtype} array of shape {image.shape}")
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    return x.permute(2, 0, 1).unsqueeze(0).float().div_(255)


def to_image(x: torch.Tensor) -> np.ndarray:
    """A (1, 3, H, W) tensor in [0, 1] as an HxWx3 uint8 RGB array."""
    return x[0].mul(255).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()


class FrameEncoder:
    """Codes frames of one size with one model into packets of one stream."""

    def __init__(
        self,
        model: EVC,
        width: int,
        height: int,
        q: float,
        time_base: Fraction = Fraction(1, 25),
        fps: Fraction | None = None,
        substreams: int = DEFAULT_SUBSTREAMS,
        controller: object | None = None,
        rdo: int = 0,
    ) -> None:
        if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
            raise FrameSizeError(f"frame size {width}x{height} is outside 1..{MAX_SIDE}")
        check_rdo(model, rdo)
        self.model = model
        self.width, self.height = width, height
        self.q = q
        self.substreams = substreams
        #: optional rate controller (duck-typed, see ``streamcodec.ratecontrol``): ``choose(probe, index) -> q``
        #: with ``probe(q) -> estimated bits`` of the frame, then ``update(q, real_bits, duration)``, the duration
        #: in seconds from the previous frame's pts (None for the first frame: the controller assumes 1/fps)
        self.controller = controller
        #: block-masked models: 0 codes the variance mask (zero-pass), 1 or 2 refine it by RDO passes
        self.rdo = rdo
        self.frame_index = 0
        #: seconds :meth:`quantise` waits, with a rate controller, for the previous frame's :meth:`code`
        self.code_timeout = 120.0
        self._in_flight = 0  # frames quantised and not yet coded
        self._last_pts: int | None = None  # of the frame coded last
        self._coded = threading.Condition()
        self.device = model.q_basic.device
        self.header = StreamHeader(
            codec_id=model.codec_id,
            model_name=model.name,
            weights_hash=model.weights_hash,
            coder_id=CODER_ID,
            width=width,
            height=height,
            pad_multiple=PAD_MULTIPLE,
            time_base=time_base,
            fps=fps,
        )

    def encode(
        self, image: np.ndarray | torch.Tensor, pts: int, q: float | None = None, reconstruct: bool = False
    ) -> tuple[Packet, EncodedFrame, torch.Tensor | None]:
        """Code one frame at quality ``q`` into a KEY packet (KEY_MASKED for a block-masked model's frame that
        uses coarse levels): an explicit ``q`` wins, else the rate controller chooses (probing the entropy
        model's estimate at candidate qs, with the zero-pass mask), else the encoder's default q.
        Returns the packet, the coded frame and, with ``reconstruct``, the decoder's reconstruction."""
        quantised = self.quantise(image, q, reconstruct)
        packet, frame = self.code(quantised, pts)
        return packet, frame, quantised.x_hat

    def quantise(
        self, image: np.ndarray | torch.Tensor, q: float | None = None, reconstruct: bool = False
    ) -> QuantisedFrame:
        """The networks' half of :meth:`encode` (on the model's device); :meth:`code` does the rest on the host.

        The two may run in different threads, so that frame t is arithmetic-coded while the networks take frame
        t+1. Frames must be coded in the order they were quantised. With a rate controller choosing q, the next
        frame's analysis runs at once but its choice waits until the frame before it is coded (the controller
        learns each frame's real size before it picks the next q, as in :meth:`encode`), at most
        :attr:`code_timeout` seconds.
        """
        x = self._tensor(image)
        features = None
        options = {"rdo": self.rdo} if isinstance(self.model, MaskedEVC) else {}
        if self.controller is not None and q is None:
            features, probe = self._prober(x)
            with self._coded:
                if not self._coded.wait_for(lambda: self._in_flight == 0, self.code_timeout):
                    raise RuntimeError(
                        f"frame {self.frame_index - 1} was quantised but not coded within {self.code_timeout} s: "
                        "with a rate controller, code() each frame (from another thread, or before quantising "
                        "the next)"
                    )
            q = self.controller.choose(probe, self.frame_index)
        quantised = self.model.quantise_frame(
            x, self.q if q is None else q, self.substreams, features, reconstruct, **options
        )
        with self._coded:
            self._in_flight += 1
            self.frame_index += 1
        return quantised

    def code(self, quantised: QuantisedFrame, pts: int) -> tuple[Packet, EncodedFrame]:
        """Arithmetic-code a frame from :meth:`quantise` into its packet (with presentation time ``pts``), and
        tell the rate controller its real size and the media time since the previous frame (dropped frames and
        variable frame rates count as the time they span)."""
        try:
            frame = self.model.code_frame(quantised)
            if self.controller is not None:
                last, self._last_pts = self._last_pts, pts
                duration = float((pts - last) * self.header.time_base) if last is not None and pts > last else None
                # the packet's bits, header included: what the file or the link carries
                self.controller.update(
                    index_to_q(frame.q_index), 8 * (PACKET_HEADER_SIZE + len(frame.payload)), duration
                )
        finally:
            with self._coded:
                self._in_flight -= 1
                self._coded.notify_all()
        kind = PacketType.KEY_MASKED if isinstance(frame, MaskedFrame) else PacketType.KEY
        return Packet(kind, pts, frame.q_index, frame.payload), frame

    def estimate_bits(self, image: np.ndarray | torch.Tensor, q: float) -> float:
        """The entropy model's estimate of a frame's payload bits at quality ``q``, as the rate controller's
        probe sees it (e.g. a two-pass encode's first pass); nothing is coded."""
        return self._prober(self._tensor(image))[1](q)

    def _tensor(self, image: np.ndarray | torch.Tensor) -> torch.Tensor:
        x = to_tensor(image, self.device)
        if tuple(x.shape[-2:]) != (self.height, self.width):
            raise ValueError(
                f"frame is {x.shape[-1]}x{x.shape[-2]}, but this stream is {self.width}x{self.height}"
            )
        return x

    def _prober(self, x: torch.Tensor) -> tuple[torch.Tensor, Callable[[float], float]]:
        """The analysis features of ``x`` and its rate probe ``q -> estimated bits`` (with the zero-pass mask
        for a block-masked model)."""
        with torch.inference_mode():
            features = self.model.analyse(x)
        options = {"mask": self.model.variance_mask(x)[0]} if isinstance(self.model, MaskedEVC) else {}
        return features, lambda q: self.model.estimate_bits(features, q, self.substreams, **options)


def _color_name(value: int) -> str:
    return ColorFormat(value).name if value in ColorFormat._value2member_map_ else f"colour format {value}"


class FrameDecoder:
    """Decodes the packets of one stream with the model that made it."""

    def __init__(self, model: EVC, header: StreamHeader) -> None:
        if header.coder_id != CODER_ID:
            raise UnsupportedVersionError(
                f"stream uses entropy coder {header.coder_id:#06x}; this build has {CODER_ID:#06x}"
            )
        if header.weights_hash != model.weights_hash:
            raise WrongModelError(
                f"stream was encoded with {header.model_name!r} weights {header.weights_hash.hex()}, "
                f"but the model given ({model.name!r}) has weights {model.weights_hash.hex()}"
            )
        if header.color_format != ColorFormat.RGB or header.pad_multiple != PAD_MULTIPLE:
            raise UnsupportedVersionError(
                f"stream codes {_color_name(header.color_format)} frames padded to multiples of "
                f"{header.pad_multiple}; this build decodes RGB padded to multiples of {PAD_MULTIPLE}"
            )
        if not (header.width <= MAX_SIDE and header.height <= MAX_SIDE):
            raise FrameSizeError(f"frame size {header.width}x{header.height} exceeds {MAX_SIDE}")
        self.model = model
        self.header = header

    def decode_tensor(self, packet: Packet, frame_number: int | None = None) -> torch.Tensor:
        """Decode a KEY or KEY_MASKED packet to a (1, 3, H, W) tensor on the model's device."""
        masked, where = self._kind(packet, frame_number)
        decompress = self.model.decompress_masked if masked else self.model.decompress
        try:
            return decompress(packet.payload, self.header.height, self.header.width, packet.q_index)
        except DesyncError as exc:
            raise DesyncError(f"{where}: {exc}", frame=frame_number) from None

    def check_latents(self, packet: Packet, frame_number: int | None = None) -> None:
        """Entropy-decode a packet's latents and check their checksum, without the synthesis transform: raises
        as :meth:`decode_tensor` would for a damaged or desynchronised frame (a cheap cross-device check)."""
        masked, where = self._kind(packet, frame_number)
        decode = self.model.decode_masked if masked else self.model.decode_latents
        try:
            with torch.inference_mode():
                decode(packet.payload, self.header.height, self.header.width)
        except DesyncError as exc:
            raise DesyncError(f"{where}: {exc}", frame=frame_number) from None

    def _kind(self, packet: Packet, frame_number: int | None) -> tuple[bool, str]:
        """Whether ``packet`` is block-masked (refused if this model has no masks), and how errors name it."""
        where = f"frame {frame_number} (pts {packet.pts})" if frame_number is not None else f"pts {packet.pts}"
        masked = packet.type is PacketType.KEY_MASKED
        if masked and not isinstance(self.model, MaskedEVC):
            raise CorruptStreamError(f"{where}: a KEY_MASKED packet, but {self.model.name!r} has no block masks")
        return masked, where

    def decode(self, packet: Packet, frame_number: int | None = None) -> np.ndarray:
        """Decode a packet to an HxWx3 uint8 RGB image."""
        return to_image(self.decode_tensor(packet, frame_number))


__all__ = ["FrameEncoder", "FrameDecoder", "to_tensor", "to_image"]
