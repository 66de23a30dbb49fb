"""Streaming engine: explicit state (``state``) and sessions that accept any chunk size."""

from .session import StreamingDecoder, StreamingEncoder
from .state import State, Stateful, StateSpec, reset_streams, zero_state

__all__ = ["State", "StateSpec", "Stateful", "StreamingDecoder", "StreamingEncoder",
           "reset_streams", "zero_state"]
