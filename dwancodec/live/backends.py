"""Codec backends for the live path: numpy in, numpy out, one stream.

Both wrap a streaming encoder/decoder pair with the ``push / flush / reset`` API:
:class:`TorchBackend` uses :class:`dwancodec.streaming.StreamingEncoder` /
:class:`~dwancodec.streaming.StreamingDecoder`; :class:`OnnxBackend` uses
``dwancodec.runtime.OnnxStreamingEncoder`` / ``OnnxStreamingDecoder`` on an exported folder and
does not import torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np


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


def resolve_n_q(num_codebooks: int, per_stage_kbps: float, bitrate: float | None,
                n_q: int | None) -> int:
    """``--bitrate`` / ``--n-q`` -> number of stages (all by default); clear errors."""
    if n_q is not None:
        if not 1 <= n_q <= num_codebooks:
            raise ValueError(f"--n-q must be in [1, {num_codebooks}] for this model, got {n_q}")
        return n_q
    if bitrate is not None:
        if bitrate < per_stage_kbps:
            raise ValueError(f"bitrate {bitrate} kbps is below the lowest this model offers "
                             f"({per_stage_kbps:.2f} kbps)")
        return min(num_codebooks, int(bitrate / per_stage_kbps + 1e-9))
    return num_codebooks


class TorchBackend:
    """:class:`~dwancodec.model.Codec` through the torch streaming sessions."""

    name = "torch"

    def __init__(self, codec: Any, n_q: int | None = None, threads: int | None = 1) -> None:
        import torch

        from ..streaming import StreamingDecoder, StreamingEncoder

        if threads is not None:
            torch.set_num_threads(threads)
        self._torch = torch
        self.codec = codec.eval()
        self.sample_rate = int(codec.sample_rate)
        self.hop_length = int(codec.hop_length)
        self.num_codebooks = int(codec.num_codebooks)
        self.codebook_size = int(codec.codebook_size)
        self.n_q = self.num_codebooks if n_q is None else int(n_q)
        self._enc = StreamingEncoder(codec, 1, self.n_q)
        self._dec = StreamingDecoder(codec, 1)

    @property
    def latency_ms(self) -> float:
        return float(self.codec.latency_ms)

    @property
    def bitrate_kbps(self) -> float:
        return float(self.codec.bitrate(self.n_q)) / 1000.0

    def encode(self, pcm: np.ndarray) -> np.ndarray:
        return self._enc.push(np.asarray(pcm, dtype=np.float32)[None])[0].cpu().numpy()

    def flush(self) -> np.ndarray:
        return self._enc.flush()[0].cpu().numpy()

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return self._dec.push(self._torch.from_numpy(np.asarray(codes, np.int64))[None])[0] \
            .cpu().numpy()

    def reset(self) -> None:
        self._enc.reset()
        self._dec.reset()

    def describe(self) -> str:
        return f"torch {self.codec.identity()}"


class OnnxBackend:
    """:class:`dwancodec.runtime.OnnxCodec` sessions on an exported folder (no torch)."""

    name = "onnx"

    def __init__(self, onnx_dir: str | Path, n_q: int | None = None, bitrate: float | None = None,
                 threads: int | None = 1) -> None:
        onnx_dir = Path(onnx_dir)
        if not onnx_dir.is_dir():
            raise FileNotFoundError(f"ONNX folder not found: {onnx_dir}")
        try:
            from ..runtime import OnnxCodec
        except ImportError as e:  # onnxruntime missing
            raise ValueError(f"the onnx backend needs onnxruntime ({e}); pip install "
                             "'dwancodec[runtime]'") from None
        codec = OnnxCodec(onnx_dir, num_threads=threads or 1)
        if codec.frames_per_step != 1:
            raise ValueError(f"{onnx_dir} was exported with {codec.frames_per_step} frames per "
                             "step; live needs one (`dwancodec export` without "
                             "--frames-per-step)")
        self.codec = codec
        self.sample_rate = codec.sample_rate
        self.hop_length = codec.hop_length
        self.num_codebooks = codec.num_codebooks
        self.codebook_size = codec.codebook_size
        per_stage = codec.bitrate(1) / 1000.0
        self.n_q = resolve_n_q(codec.encoder_n_q, per_stage, bitrate, n_q)
        self._enc = codec.streaming_encoder(1, self.n_q)
        self._dec = codec.streaming_decoder(1)

    @property
    def latency_ms(self) -> float:
        return float(self.codec.latency_ms)

    @property
    def bitrate_kbps(self) -> float:
        return float(self.codec.bitrate(self.n_q)) / 1000.0

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
        return f"onnx {self.codec.identity} ({self.codec.directory})"


def open_backend(backend: str = "torch", model: str | Path | None = None,
                 onnx_dir: str | Path | None = None, bitrate: float | None = None,
                 n_q: int | None = None, device: str = "cpu",
                 threads: int | None = 1) -> CodecBackend:
    """Build the backend named ``backend`` ("torch" or "onnx") at the requested rate."""
    if backend == "onnx":
        if model is not None:
            raise ValueError("--model is for the torch backend; the onnx backend reads the "
                             "folder given by --onnx-dir (made by `dwancodec export`)")
        if onnx_dir is None:
            from ..runtime.onnx_codec import SIDECAR, shipped_onnx_dir

            onnx_dir = shipped_onnx_dir()
            if not (onnx_dir / SIDECAR).exists():
                raise ValueError("--backend onnx needs --onnx-dir (a folder made by `dwancodec "
                                 "export`): the default model's graphs are not installed")
        return OnnxBackend(onnx_dir, n_q=n_q, bitrate=bitrate, threads=threads)
    if backend != "torch":
        raise ValueError(f"unknown backend {backend!r} (torch or onnx)")
    from ..api import load_codec

    codec = load_codec(model, device=device)
    per_stage = codec.bitrate(1) / 1000.0
    return TorchBackend(codec, resolve_n_q(codec.num_codebooks, per_stage, bitrate, n_q),
                        threads=threads)
