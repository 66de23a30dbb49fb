"""Torch-free runtime: the exported ONNX step graphs on ONNX Runtime (numpy in, numpy out).

Importing this package never imports torch. A deployment needs only::

    pip install --no-deps dwancodec
    pip install numpy onnxruntime soundfile soxr     # == the [runtime] extra

(``pip install dwancodec[runtime]`` also works but pulls torch, a main dependency.) Make the
graphs once, where torch is installed: ``dwancodec export --model BUNDLE --out exported/``;
the shipped default model's graphs come with the package (``OnnxCodec()`` opens them).

>>> from dwancodec.runtime import OnnxCodec             # doctest: +SKIP
>>> codec = OnnxCodec("exported/", num_threads=1)
>>> enc, dec = codec.streaming_encoder(), codec.streaming_decoder()
>>> pcm_out = dec.push(enc.push(pcm_in))                # any chunk size, numpy float32
"""

from __future__ import annotations

from .engine import OrtEngine
from .onnx_codec import (
    BLOCKS,
    SIDECAR,
    OnnxCodec,
    StepRunner,
    check_block_pair,
    load_sidecar,
    session_options,
    shipped_onnx_dir,
    whole_signal_graphs,
)
from .session import OnnxStreamingDecoder, OnnxStreamingEncoder

__all__ = [
    "BLOCKS",
    "SIDECAR",
    "OnnxCodec",
    "OnnxStreamingDecoder",
    "OnnxStreamingEncoder",
    "OrtEngine",
    "StepRunner",
    "check_block_pair",
    "load_sidecar",
    "session_options",
    "shipped_onnx_dir",
    "whole_signal_graphs",
]
