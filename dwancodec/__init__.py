"""DwanCodec: a streaming, real-time neural speech codec.

Imports are lazy so that ``dwancodec.runtime`` (numpy + onnxruntime) works without torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "DwanCodec": "dwancodec.api",
    "load_codec": "dwancodec.api",
    "Codec": "dwancodec.model",
    "CodecConfig": "dwancodec.config",
    "get_config": "dwancodec.config",
    "StreamingEncoder": "dwancodec.engine",
    "StreamingDecoder": "dwancodec.engine",
    "Engine": "dwancodec.engine",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dwancodec' has no attribute {name!r}")
