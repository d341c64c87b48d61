"""EVC behind the evaluation :class:`~streamcodec.evaluate.baselines.Codec` protocol: real payloads, real decode."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..bitstream.format import PACKET_HEADER_SIZE
from ..codec.coder import CODER_ID
from ..codec.evc import EVC, PAYLOAD_VERSION, PRECISIONS
from ..codec.masked import MASKED_PAYLOAD_VERSION, MaskedEVC, MaskedFrame, check_rdo
from ..codec.stream import to_image, to_tensor

#: The qps an RD sweep uses by default (covers about 0.1-1.5 bpp on Kodak with trained weights).
DEFAULT_QPS = (0, 8, 16, 24, 32, 40, 48, 56, 63)


class NeuralCodec:
    """A loaded EVC model: each setting is a qp. The size counts the frame's payload and its packet header.

    A block-masked model (``evc-s-rdo``) codes with ``rdo`` search passes (0: the zero-pass variance mask) and
    is named ``<model>/rdo<N>``.
    """

    def __init__(self, model: EVC, settings: Sequence[float] = DEFAULT_QPS, rdo: int = 0) -> None:
        check_rdo(model, rdo)
        self.model = model
        self.settings = tuple(settings)
        self.rdo = rdo
        self.masked = isinstance(model, MaskedEVC)

    @property
    def _precision(self) -> str | None:
        """The transforms' precision when not float32 (it moves the pixels, so it is part of name and version)."""
        name = next(k for k, dtype in PRECISIONS.items() if dtype == self.model.transform_dtype)
        return None if name == "fp32" else name

    @property
    def name(self) -> str:
        name = f"{self.model.name}/rdo{self.rdo}" if self.masked else self.model.name
        return f"{name}/{self._precision}" if self._precision else name

    @property
    def version(self) -> str:
        text = f"weights {self.model.weights_hash.hex()}; coder {CODER_ID:#06x}; payload v{PAYLOAD_VERSION}"
        text += "; prior exact fixed-point"
        text += f"; transforms {self._precision}" if self._precision else ""
        return text + (f"; masked payload v{MASKED_PAYLOAD_VERSION}" if self.masked else "")

    def code(self, img: np.ndarray, setting: float) -> tuple[int, np.ndarray]:
        h, w = img.shape[:2]
        options = {"rdo": self.rdo} if self.masked else {}
        frame, _ = self.model.compress(to_tensor(img, self.model.q_basic.device), float(setting), **options)
        decompress = self.model.decompress_masked if isinstance(frame, MaskedFrame) else self.model.decompress
        recon = decompress(frame.payload, h, w, frame.q_index)
        return len(frame.payload) + PACKET_HEADER_SIZE, to_image(recon)
