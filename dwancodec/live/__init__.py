"""Live round trip: microphone -> streaming encoder -> packets -> streaming decoder -> speaker.

- :class:`~dwancodec.live.engine.LiveEngine`: audio callbacks <-> queues <-> a worker thread;
  device rates are converted with soxr streaming resamplers; end-to-end latency is measured.
- :class:`~dwancodec.live.link.CodecLink`: encoder -> packets -> simulated network -> jitter
  buffer -> decoder, with a simple concealment of lost frames (no device, no thread).
- :mod:`~dwancodec.live.network`: packet loss / jitter simulation and the jitter buffer (the
  packets are :mod:`dwancodec.bitstream`'s; ``Packet`` here is
  :class:`dwancodec.bitstream.Packet`).
- :mod:`~dwancodec.live.backends`: the shared sessions over the torch or ONNX Runtime engine.
- :mod:`~dwancodec.live.audio_io`: sounddevice streams, a real-time file source, a null sink.

Nothing here imports torch unless the torch backend is used. ``dwancodec live`` is the command.
"""

from __future__ import annotations

from ..bitstream import Packet
from .backends import CodecBackend, EngineBackend, OnnxBackend, TorchBackend, open_backend
from .engine import LiveEngine
from .link import CodecLink
from .network import JitterBuffer, NetworkSimulator

__all__ = [
    "CodecBackend", "CodecLink", "EngineBackend", "JitterBuffer", "LiveEngine", "NetworkSimulator",
    "OnnxBackend", "Packet", "TorchBackend", "open_backend",
]
