"""Codec backends for the live path: numpy in, numpy out, one stream.

A backend is one :class:`~dwancodec.engine.StreamingEncoder` /
:class:`~dwancodec.engine.StreamingDecoder` pair over an :class:`~dwancodec.engine.Engine`
(:class:`EngineBackend`). :class:`TorchBackend` (a torch :class:`~dwancodec.model.Codec`) and
:class:`OnnxBackend` (an exported folder on ONNX Runtime, no torch) build it for each engine;
:func:`open_backend` picks the engine as the CLI does (ONNX Runtime where the model has graphs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..engine import Engine, StreamingDecoder, StreamingEncoder, choose_n_q, open_engine


class CodecBackend(Protocol):
    """What the live engine needs from a codec (single stream, numpy arrays)."""

    name: str
    sample_rate: int
    hop_length: int
    n_q: int
    num_codebooks: int
    codebook_size: int

    @property
    def latency_ms(self) -> float: ...

    @property
    def bitrate_kbps(self) -> float: ...

    def encode(self, pcm: np.ndarray) -> np.ndarray:
        """``[n]`` float32 at ``sample_rate`` -> codes ``[n_q, f]`` for each completed frame."""
        ...

    def flush(self) -> np.ndarray:
        """Encode the buffered partial frame (zero-padded) -> ``[n_q, f]``; resets the encoder."""
        ...

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes ``[n_q, f]`` -> ``[f * hop]`` float32 (no added latency)."""
        ...

    def reset(self) -> None: ...

    def describe(self) -> str: ...


def resolve_n_q(engine: Engine, bitrate: float | None, n_q: int | None) -> int:
    """``--bitrate`` / ``--n-q`` -> stages of ``engine``'s encoder (all by default)."""
    return choose_n_q(engine.encoder_n_q, engine.sample_rate / engine.hop_length,
                      engine.codebook_size, n_q, bitrate)


class EngineBackend:
    """One stream through the shared sessions over ``engine`` (numpy in and out)."""

    def __init__(self, engine: Engine, n_q: int | None = None,
                 bitrate: float | None = None) -> None:
        if engine.frames_per_step != 1:
            raise ValueError(f"{engine.describe()} was exported with {engine.frames_per_step} "
                             "frames per step; live needs one (`dwancodec export` without "
                             "--frames-per-step)")
        if hasattr(engine, "numpy_output"):
            engine.numpy_output = True  # type: ignore[attr-defined]
        self.engine = engine
        self.name = engine.name
        self.sample_rate = int(engine.sample_rate)
        self.hop_length = int(engine.hop_length)
        self.num_codebooks = int(engine.num_codebooks)
        self.codebook_size = int(engine.codebook_size)
        self.n_q = resolve_n_q(engine, bitrate, n_q)
        self._enc = StreamingEncoder(engine, 1, self.n_q)
        self._dec = StreamingDecoder(engine, 1)

    @property
    def codec(self) -> Any:
        return getattr(self.engine, "codec", None)

    @property
    def latency_ms(self) -> float:
        return float(self.engine.latency_ms)

    @property
    def bitrate_kbps(self) -> float:
        return float(self.engine.bitrate(self.n_q)) / 1000.0

    def encode(self, pcm: np.ndarray) -> np.ndarray:
        return self._enc.push(np.asarray(pcm, dtype=np.float32)[None])[0]

    def flush(self) -> np.ndarray:
        return self._enc.flush()[0]

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self._dec.push(np.asarray(codes, np.int64)[None])[0]

    def reset(self) -> None:
        self._enc.reset()
        self._dec.reset()

    def describe(self) -> str:
        return self.engine.describe()


class TorchBackend(EngineBackend):
    """:class:`~dwancodec.model.Codec` through the torch engine (``threads`` torch threads)."""

    def __init__(self, codec: Any, n_q: int | None = None, threads: int | None = 1) -> None:
        import torch

        from ..streaming.engine import TorchEngine

        if threads is not None:
            torch.set_num_threads(threads)
        super().__init__(TorchEngine(codec, numpy_output=True), n_q)


class OnnxBackend(EngineBackend):
    """An exported folder through the ONNX Runtime engine (no torch)."""

    def __init__(self, onnx_dir: str | Path, n_q: int | None = None,
                 bitrate: float | None = None, threads: int | None = 1,
                 int8: bool = False) -> None:
        engine, _ = open_engine("onnx", onnx_dir=Path(onnx_dir), threads=threads or 1,
                                int8=int8)
        super().__init__(engine, n_q, bitrate)


def open_backend(backend: str = "auto", model: str | Path | None = None,
                 onnx_dir: str | Path | None = None, bitrate: float | None = None,
                 n_q: int | None = None, device: str = "cpu", threads: int | None = 1,
                 note: Any = None, int8: bool = False) -> EngineBackend:
    """The backend ``backend`` names (``auto``, ``onnx`` or ``torch``; see
    :func:`dwancodec.engine.open_engine`) at the requested rate; ``note(msg)`` hears why
    ``auto`` chose torch."""
    engine, why = open_engine(backend, model, onnx_dir, device, threads or 1, int8=int8)
    if why is not None and note is not None:
        note(f"torch engine: {why}")
    return EngineBackend(engine, n_q, bitrate)
