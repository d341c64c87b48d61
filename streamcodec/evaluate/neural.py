"""EVC behind the evaluation :class:`~streamcodec.evaluate.baselines.Codec` protocol: real payloads, real decode."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..bitstream.format import PACKET_HEADER_SIZE
from ..codec.coder import CODER_ID
from ..codec.evc import EVC, PAYLOAD_VERSION
from ..codec.stream import to_image, to_tensor

#: The qps an RD sweep uses by default (covers about 0.1-1.5 bpp on Kodak with trained weights).
DEFAULT_QPS = (0, 8, 16, 24, 32, 40, 48, 56, 63)


class NeuralCodec:
    """A loaded EVC model: each setting is a qp. The size counts the frame's payload and its packet header."""

    def __init__(self, model: EVC, settings: Sequence[float] = DEFAULT_QPS) -> None:
        self.model = model
        self.settings = tuple(settings)

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def version(self) -> str:
        return f"weights {self.model.weights_hash.hex()}; coder {CODER_ID:#06x}; payload v{PAYLOAD_VERSION}; prior float64"

    def code(self, img: np.ndarray, setting: float) -> tuple[int, np.ndarray]:
        h, w = img.shape[:2]
        frame, _ = self.model.compress(to_tensor(img, self.model.q_basic.device), float(setting))
        recon = self.model.decompress(frame.payload, h, w, frame.q_index)
        return len(frame.payload) + PACKET_HEADER_SIZE, to_image(recon)
