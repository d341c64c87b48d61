"""scvenc: raw RGB video in, a ``.scv`` stream out, coded by streamcodec's :class:`FrameEncoder`.

The first output buffer is the stream header, then one buffer per frame packet with the frame's pts and
duration, and at EOS the trailer (EOS packet, index, footer): written to a file, the buffers are exactly what
``streamcodec encode`` writes. Packet pts count nanoseconds (the header's time base is 1/1e9), so GStreamer's
timestamps are kept exactly.
"""

from __future__ import annotations

import traceback
from fractions import Fraction
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GObject, Gst, GstVideo  # noqa: E402
from scvelement import RGB_CAPS, SCV_CAPS, ElementFailed, ScvElement, import_streamcodec, pad_templates  # noqa: E402

#: packet pts unit: GStreamer's clock unit, so no timestamp is rounded
TIME_BASE = Fraction(1, Gst.SECOND)


class PushFailed(Exception):
    """Downstream refused a buffer; ``flow`` is the pad's answer (FLUSHING, EOS, NOT_LINKED, ...)."""

    def __init__(self, flow: Gst.FlowReturn) -> None:
        super().__init__(flow.value_nick)
        self.flow = flow


class PadFile:
    """A write-only binary file for :class:`StreamWriter` that pushes each ``write`` downstream as one buffer.

    The writer writes the header, each packet and each trailer part in one call, so a buffer is always one of
    them; :attr:`pts`, :attr:`duration` and :attr:`flags` are stamped on the next buffers.
    """

    def __init__(self, pad: Gst.Pad) -> None:
        self.pad = pad
        self.pts = self.duration = Gst.CLOCK_TIME_NONE
        self.flags = Gst.BufferFlags.HEADER

    def write(self, data: bytes | memoryview) -> int:
        buffer = Gst.Buffer.new_wrapped(bytes(data))
        buffer.pts, buffer.duration = self.pts, self.duration
        buffer.set_flags(self.flags)
        flow = self.pad.push(buffer)
        if flow != Gst.FlowReturn.OK:
            raise PushFailed(flow)
        return len(data)

    def flush(self) -> None:
        """Nothing to do: every write was pushed."""


class ScvEnc(ScvElement):
    """Encodes raw RGB frames into a .scv stream."""

    __gtype_name__ = "GstScvEnc"

    __gstmetadata__ = (
        "SCV video encoder",
        "Codec/Encoder/Video",
        "Codes raw RGB video into a .scv stream with streamcodec's neural image codec",
        "streamcodec",
    )
    __gsttemplates__ = pad_templates(sink=RGB_CAPS, src=SCV_CAPS)
    error_code = Gst.StreamError.ENCODE

    model = GObject.Property(type=str, default="evc-s", nick="Model", blurb="model name (streamcodec info --models)")
    qp = GObject.Property(
        type=float, default=32.0, minimum=0.0, maximum=63.0, nick="QP",
        blurb="quality 0..63, higher is better: the constant quality of rc=cqp, the first guess of the others",
    )
    rc = GObject.Property(
        type=str, default="", nick="Rate control",
        blurb="cqp, crf, abr or cbr, as `streamcodec encode --rc` (empty: crf if crf is set, abr if bitrate is, "
              "else cqp)",
    )
    crf = GObject.Property(
        type=float, default=-1.0, minimum=-1.0, maximum=63.0, nick="CRF", blurb="crf quality 0..63 (-1: unset)"
    )
    bitrate = GObject.Property(type=str, default="", nick="Bitrate", blurb="target bitrate of abr/cbr: 500k, 2M")
    maxrate = GObject.Property(type=str, default="", nick="Max rate", blurb="VBV fill rate: 500k, 2M")
    bufsize = GObject.Property(type=str, default="", nick="Buffer size", blurb="VBV size: 1s, 500ms, 3f or bits")

    def __init__(self) -> None:
        super().__init__()
        self.sinkpad.set_chain_function_full(self._chain)
        self.sinkpad.set_event_function_full(self._event)
        self._out = PadFile(self.srcpad)
        self._reset()

    def do_change_state(self, transition: Gst.StateChange) -> Gst.StateChangeReturn:
        result = Gst.Element.do_change_state(self, transition)
        if transition == Gst.StateChange.PAUSED_TO_READY:
            self._reset()
        return result

    def _reset(self) -> None:
        self._info: GstVideo.VideoInfo | None = None
        self._new_stream()

    def _new_stream(self) -> None:
        """Make the next buffer start a new stream (header first) with a new encoder."""
        self._encoder: Any = None
        self._writer: Any = None
        self._frames = 0

    def _event(self, pad: Gst.Pad, parent: Gst.Object, event: Gst.Event) -> bool:
        if event.type == Gst.EventType.CAPS:
            return self._set_caps(event.parse_caps())
        if event.type == Gst.EventType.EOS and self._writer is not None:
            self._out.pts = self._out.duration = Gst.CLOCK_TIME_NONE
            try:
                self._writer.close()  # the trailer: EOS packet, index, footer
            except PushFailed:
                pass  # downstream is gone; it gets the EOS event all the same
        if event.type == Gst.EventType.FLUSH_STOP:
            # Downstream dropped what it had of the stream (filesink even truncates its file): the next buffer
            # starts a new one, header first, so what follows the flush is a complete stream by itself.
            self._new_stream()
        return pad.event_default(parent, event)

    def _set_caps(self, caps: Gst.Caps) -> bool:
        info = GstVideo.VideoInfo.new_from_caps(caps)
        if self._writer is not None and (info.width, info.height) != (self._info.width, self._info.height):
            self.post(Gst.MessageType.ERROR, f"frame size changed from {self._info.width}x{self._info.height} to "
                      f"{info.width}x{info.height}; a .scv stream has one frame size")
            return False
        self._info = info
        out = SCV_CAPS.copy()
        out.set_value("width", info.width)
        out.set_value("height", info.height)
        out.set_value("framerate", Gst.Fraction(info.fps_n, info.fps_d))
        return self.srcpad.push_event(Gst.Event.new_caps(out))

    def _chain(self, pad: Gst.Pad, parent: Gst.Object, buffer: Gst.Buffer) -> Gst.FlowReturn:
        try:
            if self._writer is None:
                self._start()
            packet, _, _ = self._encoder.encode(self._image(buffer), self._pts(buffer))
            self._out.pts, self._out.duration, self._out.flags = buffer.pts, buffer.duration, 0
            self._writer.write(packet)
        except PushFailed as exc:
            return exc.flow
        except ElementFailed as exc:
            self.post(Gst.MessageType.ERROR, str(exc), exc.debug)
            return Gst.FlowReturn.ERROR
        except Exception as exc:  # an exception must not cross into C: it becomes the element's error
            self.post(Gst.MessageType.ERROR, f"cannot encode frame {self._frames}: {exc}", traceback.format_exc())
            return Gst.FlowReturn.ERROR
        self._frames += 1
        return Gst.FlowReturn.OK

    def _start(self) -> None:
        """Load the model, make the encoder for the negotiated size and push the stream header."""
        streamcodec = import_streamcodec()
        if self._info is None:
            raise ElementFailed("no caps before the first buffer")
        fps = Fraction(self._info.fps_n, self._info.fps_d) if self._info.fps_n > 0 else None
        controller = self._rate_controller(fps)
        model = self.load_model(self.model)
        self._encoder = streamcodec.FrameEncoder(
            model, self._info.width, self._info.height, self.qp, TIME_BASE, fps, controller=controller
        )
        self._out.pts = self._out.duration = Gst.CLOCK_TIME_NONE  # not the last run's
        self._out.flags = Gst.BufferFlags.HEADER
        self._writer = streamcodec.StreamWriter(self._out, self._encoder.header)

    def _rate_controller(self, fps: Fraction | None) -> Any:
        """The controller the rate-control properties describe, or None for constant qp."""
        from streamcodec.ratecontrol import make_controller

        try:
            controller = make_controller(
                self.rc or None, fps=fps or 25,  # a placeholder rate, refused below unless the mode is cqp
                q=self.qp, crf=None if self.crf < 0 else self.crf, bitrate=self.bitrate or None,
                maxrate=self.maxrate or None, bufsize=self.bufsize or None,
            )  # fmt: skip
        except ValueError as exc:
            raise ElementFailed(f"rate control: {exc}") from None
        if controller.mode == "cqp":
            return None
        if fps is None:
            raise ElementFailed(f"rate control: {controller.mode} needs a fixed frame rate, the caps have 0/1")
        return controller

    def _image(self, buffer: Gst.Buffer) -> Any:
        """The buffer's frame as an HxWx3 uint8 array (rows may be padded to the stride)."""
        import numpy as np

        info = self._info
        if buffer.get_size() < info.size:
            raise ElementFailed(f"input buffer of {buffer.get_size()} bytes is smaller than a {info.width}x"
                                f"{info.height} RGB frame ({info.size} bytes)")
        ok, mapping = buffer.map(Gst.MapFlags.READ)
        if not ok:
            raise ElementFailed("cannot read an input buffer")
        try:  # copy the frame out: the mapped memory is released by unmap()
            rows = np.frombuffer(mapping.data, np.uint8, count=info.size).reshape(info.height, info.stride[0])
            return rows[:, : 3 * info.width].reshape(info.height, info.width, 3).copy()
        finally:
            buffer.unmap(mapping)

    def _pts(self, buffer: Gst.Buffer) -> int:
        """The packet pts: the buffer's in nanoseconds, or the frame's place at the frame rate when it has none."""
        if buffer.pts != Gst.CLOCK_TIME_NONE:
            return buffer.pts
        step = Gst.SECOND * self._info.fps_d // self._info.fps_n if self._info.fps_n > 0 else 1
        return self._frames * step


__gstelementfactory__ = ("scvenc", Gst.Rank.NONE, ScvEnc)
