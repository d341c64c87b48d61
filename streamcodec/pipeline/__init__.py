"""The streaming pipeline: source -> encoder (or decoder) -> sinks on asyncio, for live streams and files.

Encode a file (back-pressure, every frame)::

    source = open_source("clip.mp4")
    await source.open()
    encoder = FrameEncoder(load_model("evc-s"), source.width, source.height, 32, source.time_base, source.fps)
    sinks = [ScvFileSink("clip.scv", encoder.header), TcpServerSink(encoder.header, port=9000)]
    stats = await Pipeline(source, encode_stages(encoder), sinks).run()

A live source (``rtsp://``, ``/dev/video0``) runs under the live policy: the newest frame wins, drops are counted,
and the source reconnects by itself. Decoding is the mirror: :func:`open_packet_source` -> :class:`DecodeStage`
-> :class:`FrameFileSink` / :class:`IteratorSink` / :func:`opencv_window`.
"""

from .core import (
    EOS,
    HopStats,
    Item,
    Mailbox,
    Pipeline,
    PipelineError,
    PipelineStats,
    Sink,
    SinkError,
    Source,
    SourceError,
    SourceTimeoutError,
    Stage,
    Worker,
    WorkerStage,
)
from .sinks import (
    CallbackSink,
    FrameFileSink,
    IteratorSink,
    ScvFileSink,
    TcpServerSink,
    TsSink,
    open_packet_sink,
    opencv_window,
)
from .sources import (
    BlockingSource,
    CaptureSource,
    IteratorSource,
    MediaSource,
    PacketSource,
    ScvSource,
    TcpClientSource,
    TsSource,
    open_packet_source,
    open_source,
)
from .stages import DecodeStage, EntropyStage, QuantiseStage, encode_stages

__all__ = [
    "EOS",
    "BlockingSource",
    "CallbackSink",
    "CaptureSource",
    "DecodeStage",
    "EntropyStage",
    "FrameFileSink",
    "HopStats",
    "Item",
    "IteratorSink",
    "IteratorSource",
    "Mailbox",
    "MediaSource",
    "PacketSource",
    "Pipeline",
    "PipelineError",
    "PipelineStats",
    "QuantiseStage",
    "ScvFileSink",
    "ScvSource",
    "Sink",
    "SinkError",
    "Source",
    "SourceError",
    "SourceTimeoutError",
    "Stage",
    "TcpClientSource",
    "TcpServerSink",
    "TsSink",
    "TsSource",
    "Worker",
    "WorkerStage",
    "encode_stages",
    "open_packet_sink",
    "open_packet_source",
    "open_source",
    "opencv_window",
]
