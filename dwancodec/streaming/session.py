"""The torch streaming sessions: :class:`~dwancodec.engine.StreamingEncoder` /
:class:`~dwancodec.engine.StreamingDecoder` over :class:`~dwancodec.streaming.engine.TorchEngine`.

``StreamingEncoder(codec)`` with a torch :class:`~dwancodec.model.Codec` gives int64 tensors on
the model's device; push 1 sample or 10 seconds at a time. ``B`` independent streams run as
one batch; any subset can be reset without touching the others. The same classes run on ONNX
Runtime when given an :class:`~dwancodec.runtime.OnnxCodec` (see :mod:`dwancodec.engine`).
"""

from __future__ import annotations

from ..engine import StreamingDecoder, StreamingEncoder, Streams

__all__ = ["StreamingDecoder", "StreamingEncoder", "Streams"]
