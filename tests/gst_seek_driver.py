"""Run a GStreamer pipeline and seek its source (with a flush) mid-stream; print what passed where as JSON.

Used by tests/test_gstreamer.py (a separate process with the environment the elements need): ``python
gst_seek_driver.py PIPELINE SEEK_AFTER``. PIPELINE names its source ``src``; the pts of the buffers entering
elements named ``enc`` and ``out`` are recorded, the lists starting over at each flush, and after SEEK_AFTER
buffers have entered ``enc`` the source gets a flushing seek to 0.
"""

from __future__ import annotations

import json
import sys
import time

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


def main(description: str, seek_after: int) -> dict:
    """Run the pipeline to its end (EOS or an ERROR); return the buffers' pts per element, the messages and the
    number of buffers ``enc`` had taken when the seek was sent."""
    Gst.init(None)
    pipeline = Gst.parse_launch(description)
    seen: dict[str, list[int]] = {"enc": [], "out": []}
    total = {"enc": 0}

    def watch(name: str) -> None:
        def probe(pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            if info.type & Gst.PadProbeType.BUFFER:
                seen[name].append(info.get_buffer().pts)
                total[name] = total.get(name, 0) + 1
            elif info.get_event().type == Gst.EventType.FLUSH_STOP:
                seen[name].clear()
            return Gst.PadProbeReturn.OK

        kinds = Gst.PadProbeType.BUFFER | Gst.PadProbeType.EVENT_FLUSH
        pipeline.get_by_name(name).get_static_pad("sink").add_probe(kinds, probe)

    for name in seen:
        watch(name)
    pipeline.set_state(Gst.State.PLAYING)
    bus = pipeline.get_bus()
    messages, sought_at = [], None
    deadline = time.monotonic() + 240
    kinds = Gst.MessageType.EOS | Gst.MessageType.ERROR | Gst.MessageType.WARNING
    while time.monotonic() < deadline:
        msg = bus.timed_pop_filtered(5 * Gst.MSECOND, kinds)
        if msg is not None:
            if msg.type == Gst.MessageType.EOS:
                messages.append("EOS")
                break
            error = msg.parse_error() if msg.type == Gst.MessageType.ERROR else msg.parse_warning()
            messages.append(f"{msg.type.value_nicks[0]}: {error[0].message}")
            if msg.type == Gst.MessageType.ERROR:
                break
        if sought_at is None and total["enc"] >= seek_after:
            sought_at = total["enc"]
            seek = Gst.Event.new_seek(1.0, Gst.Format.TIME, Gst.SeekFlags.FLUSH, Gst.SeekType.SET, 0,
                                      Gst.SeekType.NONE, -1)  # fmt: skip
            if not pipeline.get_by_name("src").send_event(seek):
                messages.append("seek refused")
    pipeline.set_state(Gst.State.NULL)
    return {"sought_at": sought_at, "total": total, "pts": seen, "messages": messages}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
