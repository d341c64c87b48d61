"""scvdec: a ``.scv`` byte stream in, in chunks of any size, raw RGB video out, decoded by streamcodec's
:class:`FrameDecoder` with the model the stream names.

The bytes are parsed by streamcodec's own :class:`StreamReader`, which reads a pipe or socket as its bytes
arrive: the sink pad feeds the buffers into one end of a socket pair, and a decoding thread reads the other
end and pushes the frames (so damaged packets are skipped and reported exactly as ``streamcodec decode`` does,
as WARNING messages here). Frames get the stream's pts in GStreamer time, its frame rate in the caps, and rows
padded to GStreamer's stride. Seeking is not supported; after a flush the input is a new stream (what
scvenc sends after one).
"""

from __future__ import annotations

import socket
import threading
import traceback
from fractions import Fraction
from typing import Any, BinaryIO

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import Gst, GstVideo  # noqa: E402
from scvelement import RGB_CAPS, SCV_CAPS, ElementFailed, ScvElement, import_streamcodec, pad_templates  # noqa: E402

#: push results the decoding thread reports as "streaming stopped" errors (as GStreamer's sources do)
FATAL_FLOWS = (Gst.FlowReturn.NOT_LINKED, Gst.FlowReturn.NOT_NEGOTIATED, Gst.FlowReturn.ERROR)


class ScvDec(ScvElement):
    """Decodes a .scv stream into raw RGB frames."""

    __gtype_name__ = "GstScvDec"
    __gstmetadata__ = (
        "SCV video decoder",
        "Codec/Decoder/Video",
        "Decodes a .scv stream into raw RGB video with streamcodec's neural image codec",
        "streamcodec",
    )
    __gsttemplates__ = pad_templates(sink=SCV_CAPS, src=RGB_CAPS)
    error_code = Gst.StreamError.DECODE

    def __init__(self) -> None:
        super().__init__()
        self.sinkpad.set_chain_function_full(self._chain)
        self.sinkpad.set_event_function_full(self._event)
        self._feed: socket.socket | None = None  # the sink pad's end of the socket pair
        self._source: socket.socket | None = None  # the decoding thread's end
        self._thread: threading.Thread | None = None
        self._flow = Gst.FlowReturn.OK  # the decoding thread's last push result, returned upstream once it stops
        self._stopping = False

    def do_change_state(self, transition: Gst.StateChange) -> Gst.StateChangeReturn:
        stopping = transition == Gst.StateChange.PAUSED_TO_READY
        if stopping:  # wake both ends first: deactivating the sink pad waits for _chain to return
            self._interrupt()
        result = Gst.Element.do_change_state(self, transition)
        if stopping:
            self._join()
        return result

    def _interrupt(self) -> None:
        """Make the decoding thread and a waiting ``_chain`` return (with FLUSHING) at once."""
        if self._thread is not None:
            self._stopping = True
            self._source.shutdown(socket.SHUT_RDWR)

    def _join(self) -> None:
        """Wait for an interrupted decoding thread and drop it: the next buffer starts a new stream."""
        if self._thread is not None:
            self._thread.join()
            self._feed.close()
            self._source.close()
            self._thread = self._feed = self._source = None
        self._stopping = False

    def _start(self) -> None:
        """Start the decoding thread on a fresh socket pair."""
        self._feed, self._source = socket.socketpair()
        self._flow = Gst.FlowReturn.OK
        self._thread = threading.Thread(
            target=self._run, args=(self._source.makefile("rb"),), name=f"{self.get_name()}:decode", daemon=True
        )
        self._thread.start()

    def _chain(self, pad: Gst.Pad, parent: Gst.Object, buffer: Gst.Buffer) -> Gst.FlowReturn:
        if self._stopping:
            return Gst.FlowReturn.FLUSHING
        if self._thread is None:
            self._start()
        ok, mapping = buffer.map(Gst.MapFlags.READ)
        if not ok:
            self.post(Gst.MessageType.ERROR, "cannot read an input buffer")
            return Gst.FlowReturn.ERROR
        try:
            self._feed.sendall(mapping.data, socket.MSG_NOSIGNAL)
        except OSError:
            pass  # the decoding thread has stopped; its flow says why
        finally:
            buffer.unmap(mapping)
        return Gst.FlowReturn.FLUSHING if self._stopping else self._flow

    def _event(self, pad: Gst.Pad, parent: Gst.Object, event: Gst.Event) -> bool:
        if event.type == Gst.EventType.EOS:  # the decoding thread sends EOS after the last frame
            if self._thread is None:
                self._start()
            try:
                self._feed.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # the decoding thread has stopped already
            return True
        if event.type in (Gst.EventType.CAPS, Gst.EventType.SEGMENT):
            return True  # replaced by the decoded video's caps and a time segment
        if event.type == Gst.EventType.FLUSH_START:
            # stopping first: the decoding thread's pushes now fail, and it must not take that for an error
            self._interrupt()
            return pad.event_default(parent, event)
        if event.type == Gst.EventType.FLUSH_STOP:
            # What was in flight is dropped; what follows the flush is a new stream, header first (as scvenc sends
            # after a flush), or a live stream's packets from a HEADER_REPEAT on
            self._join()
        return pad.event_default(parent, event)

    def _run(self, source: BinaryIO) -> None:
        """The decoding thread: decode and push every frame, then EOS; report what stopped it."""
        try:
            flow = self._decode(source)
        except ElementFailed as exc:
            self.post(Gst.MessageType.ERROR, str(exc), exc.debug)
            flow = Gst.FlowReturn.ERROR
        except Exception as exc:  # any other failure becomes the element's error, with its traceback
            self.post(Gst.MessageType.ERROR, str(exc), traceback.format_exc())
            flow = Gst.FlowReturn.ERROR
        self._flow = flow
        self._source.shutdown(socket.SHUT_RDWR)  # the sink pad's next write fails: it returns the flow upstream
        source.close()

    def _decode(self, source: BinaryIO) -> Gst.FlowReturn:
        streamcodec = import_streamcodec()
        try:
            reader = streamcodec.StreamReader(source)
            header = reader.header
            decoder = streamcodec.FrameDecoder(self.load_model(header.model_name), header)
        except streamcodec.StreamError as exc:  # not a .scv stream, other weights, ...: the input's fault
            raise ElementFailed(str(exc)) from None
        info = self._negotiate(header)
        if info is None:
            return self._finish(Gst.FlowReturn.NOT_NEGOTIATED)
        duration = int(Gst.SECOND / header.fps) if header.fps else Gst.CLOCK_TIME_NONE
        reported = 0
        flow = Gst.FlowReturn.OK
        for number, packet in enumerate(reader):
            reported = self._warn_damage(reader.damage, reported)
            try:
                image = decoder.decode(packet, number)
            except (streamcodec.CorruptStreamError, streamcodec.DesyncError) as exc:  # as `streamcodec decode`
                self.post(Gst.MessageType.WARNING, f"skipped a frame: {exc}")
                continue
            buffer = Gst.Buffer.new_wrapped(self._rows(image, info))
            buffer.pts = round(packet.pts * header.time_base * Gst.SECOND)
            buffer.duration = duration
            flow = self.srcpad.push(buffer)
            if flow != Gst.FlowReturn.OK:
                break
        self._warn_damage(reader.damage, reported)
        return self._finish(flow)

    def _negotiate(self, header: Any) -> GstVideo.VideoInfo | None:
        """Push the decoded video's caps and a time segment; their video info, or None if downstream refused."""
        fps = header.fps or Fraction(0)
        caps = Gst.Caps.from_string(
            f"video/x-raw, format=RGB, width={header.width}, height={header.height}, "
            f"framerate={fps.numerator}/{fps.denominator}"
        )
        segment = Gst.Segment()
        segment.init(Gst.Format.TIME)
        if self.srcpad.push_event(Gst.Event.new_caps(caps)) and self.srcpad.push_event(Gst.Event.new_segment(segment)):
            return GstVideo.VideoInfo.new_from_caps(caps)
        return None

    def _finish(self, flow: Gst.FlowReturn) -> Gst.FlowReturn:
        """End the output after the last push's ``flow`` as GstBaseSrc does: a fatal flow is an error, and EOS
        follows unless the pads are flushing. Return the flow for upstream."""
        if self._stopping or flow == Gst.FlowReturn.FLUSHING:
            return Gst.FlowReturn.FLUSHING
        if flow in FATAL_FLOWS:
            self.post(Gst.MessageType.ERROR, "streaming stopped", f"reason {flow.value_nick}")
        self.srcpad.push_event(Gst.Event.new_eos())
        return Gst.FlowReturn.EOS if flow == Gst.FlowReturn.OK else flow

    def _warn_damage(self, damage: list[Any], reported: int) -> int:
        """Post a WARNING for each damaged byte range not reported yet; return how many are reported now."""
        for d in damage[reported:]:
            self.post(Gst.MessageType.WARNING,
                      f"skipped damaged bytes {d.offset_start}-{d.offset_end} after pts {d.after_pts} ({d.reason})")
        return len(damage)

    @staticmethod
    def _rows(image: Any, info: GstVideo.VideoInfo) -> bytes:
        """An HxWx3 frame as GStreamer lays it out: each row padded to the stride."""
        import numpy as np

        rows = image.reshape(info.height, 3 * info.width)
        if info.stride[0] != rows.shape[1]:
            rows = np.pad(rows, ((0, 0), (0, info.stride[0] - rows.shape[1])))
        return rows.tobytes()


__gstelementfactory__ = ("scvdec", Gst.Rank.NONE, ScvDec)
