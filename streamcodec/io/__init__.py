"""Reading frames from images, videos and streams, and writing decoded frames, as RGB ``uint8``."""

from streamcodec.io.readers import Frame, FrameSource, open_source
from streamcodec.io.writers import FrameSink, open_sink

__all__ = ["Frame", "FrameSource", "FrameSink", "open_source", "open_sink"]
