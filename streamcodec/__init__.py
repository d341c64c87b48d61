"""streamcodec: real-time neural compression of live and recorded video with EVC.

Public API::

    model = streamcodec.load_model("evc-s", device="cuda")
    encoder = streamcodec.FrameEncoder(model, width, height, q=32)
    with streamcodec.open("clip.scv", "w", header=encoder.header) as out:
        out.write(encoder.encode(rgb_uint8, pts=0)[0])
    with streamcodec.open("clip.scv") as stream:
        decoder = streamcodec.FrameDecoder(streamcodec.load_model(stream.header.model_name), stream.header)
        for i, packet in enumerate(stream):
            image = decoder.decode(packet, i)
"""

from __future__ import annotations

import logging

from . import cv
from .bitstream import Packet, PacketType, StreamHeader, StreamReader, StreamWriter, open
from .codec.registry import load_model, model_card, model_names
from .codec.stream import FrameDecoder, FrameEncoder
from .cv import *  # noqa: F403 - the OpenCV-shaped API: VideoWriter, VideoCapture, imencode, CAP_PROP_FPS...
from .errors import (
    CorruptStreamError,
    DesyncError,
    FrameSizeError,
    ModelNotFoundError,
    StreamError,
    TruncatedStreamError,
    UnsupportedVersionError,
    WrongModelError,
)

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = [
    "CorruptStreamError",
    "DesyncError",
    "FrameDecoder",
    "FrameEncoder",
    "FrameSizeError",
    "ModelNotFoundError",
    "Packet",
    "PacketType",
    "StreamError",
    "StreamHeader",
    "StreamReader",
    "StreamWriter",
    "TruncatedStreamError",
    "UnsupportedVersionError",
    "WrongModelError",
    "load_model",
    "model_card",
    "model_names",
    "open",
]
__all__ += cv.__all__  # noqa: F405
