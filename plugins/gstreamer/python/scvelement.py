"""What scvenc and scvdec share: the ``device`` property, loading a model, and reporting errors on the bus.

GStreamer's Python plugin loader imports every module in this folder while it scans plugins, so streamcodec
(and torch with it) is imported only when an element starts: scanning stays fast, and a Python without
streamcodec yields a clear element error instead of elements that are silently missing from the registry.
"""

from __future__ import annotations

import sys
from typing import Any

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GObject, Gst  # noqa: E402

#: caps of a .scv byte stream
SCV_CAPS = Gst.Caps.from_string("application/x-scv")
#: raw video the codec takes and gives: packed 8-bit RGB (streamcodec's MAX_SIDE bounds the size)
RGB_CAPS = Gst.Caps.from_string(
    "video/x-raw, format=RGB, width=[1, 8192], height=[1, 8192], framerate=[0/1, 2147483647/1]"
)


def pad_templates(sink: Gst.Caps, src: Gst.Caps) -> tuple[Gst.PadTemplate, Gst.PadTemplate]:
    """The ``__gsttemplates__`` of a one-in, one-out element: an always-present sink and src pad."""
    return (
        Gst.PadTemplate.new("sink", Gst.PadDirection.SINK, Gst.PadPresence.ALWAYS, sink),
        Gst.PadTemplate.new("src", Gst.PadDirection.SRC, Gst.PadPresence.ALWAYS, src),
    )


class ElementFailed(Exception):
    """A problem to report as the element's ERROR message (the text is for people, the debug part for logs)."""

    def __init__(self, text: str, debug: str = "") -> None:
        super().__init__(text)
        self.debug = debug


def import_streamcodec() -> Any:
    """The ``streamcodec`` package, or :class:`ElementFailed` saying which Python lacks it."""
    try:
        import streamcodec
    except ImportError as exc:
        raise ElementFailed(
            f"cannot import streamcodec: {exc}",
            f"GStreamer's Python is {sys.executable} (sys.path {sys.path}); run gst-launch-1.0 with the virtual "
            "environment where streamcodec is installed active, see plugins/gstreamer/README.md",
        ) from None
    return streamcodec


class ScvElement(Gst.Element):
    """Base class of the .scv elements: one sink and one src pad made from the class's pad templates."""

    __gtype_name__ = "GstScvElement"

    #: the ``Gst.StreamError`` code of this element's errors (ENCODE or DECODE)
    error_code = Gst.StreamError.FAILED

    device = GObject.Property(
        type=str, default="auto", nick="Device", blurb="torch device: auto (CUDA when present), cpu, cuda or cuda:N"
    )

    def __init__(self) -> None:
        super().__init__()
        templates = {template.name_template: template for template in self.__gsttemplates__}
        self.sinkpad = Gst.Pad.new_from_template(templates["sink"], "sink")
        self.srcpad = Gst.Pad.new_from_template(templates["src"], "src")
        self.add_pad(self.sinkpad)
        self.add_pad(self.srcpad)
        self._loaded: tuple[tuple[str, str], Any] | None = None  # the last model loaded, by (name, device)

    def load_model(self, name: str) -> Any:
        """streamcodec's model ``name`` with its shipped weights on this element's device (loaded once: a stream
        started after a flush reuses it)."""
        key = (name, self.device)
        if self._loaded is None or self._loaded[0] != key:
            streamcodec = import_streamcodec()
            from streamcodec.codec.registry import resolve_device

            try:
                model = streamcodec.load_model(name, resolve_device(self.device))
            except (LookupError, RuntimeError, ValueError) as exc:  # unknown model or device, no CUDA
                raise ElementFailed(f"cannot load model {name!r} on device {self.device!r}: {exc}") from None
            self._loaded = (key, model)
        return self._loaded[1]

    def post(self, kind: Gst.MessageType, text: str, debug: str = "") -> None:
        """Post an ERROR or WARNING message from this element (what gst-launch-1.0 prints as ``from element``)."""
        self.message_full(kind, Gst.StreamError.quark(), self.error_code, text, debug, __file__, type(self).__name__, 0)
