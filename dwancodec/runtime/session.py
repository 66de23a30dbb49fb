"""The ONNX Runtime streaming sessions: :class:`~dwancodec.engine.StreamingEncoder` /
:class:`~dwancodec.engine.StreamingDecoder` over :class:`~dwancodec.runtime.engine.OrtEngine`.

Kept for the names ``OnnxStreamingEncoder`` / ``OnnxStreamingDecoder``: they are the shared
sessions (``OnnxStreamingEncoder(OnnxCodec(...))`` or ``OnnxStreamingEncoder("exported/")``
give numpy results). With an export of ``frames_per_step = k > 1`` the encoder holds audio
back until ``k`` frames are complete and the decoder holds codes back until ``k`` frames
arrived (``k - 1`` frames of extra latency each); ``flush`` pads and returns the rest.
"""

from __future__ import annotations

from ..engine import StreamingDecoder, StreamingEncoder

OnnxStreamingEncoder = StreamingEncoder
OnnxStreamingDecoder = StreamingDecoder

__all__ = ["OnnxStreamingDecoder", "OnnxStreamingEncoder"]
