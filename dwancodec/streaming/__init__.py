"""Streaming engine: explicit state (``state``) and sessions that accept any chunk size."""

from .engine import TorchEngine
from .session import StreamingDecoder, StreamingEncoder
from .state import State, Stateful, StateSpec, reset_streams, zero_state

__all__ = ["State", "StateSpec", "Stateful", "StreamingDecoder", "StreamingEncoder",
           "TorchEngine", "reset_streams", "zero_state"]
