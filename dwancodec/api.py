"""``DwanCodec``: the one-object Python API (files or arrays in, codes out, and back)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .audio import resample, stream_audio
from .bundled import default_model_dir
from .checks import check_length, check_offline_audio, check_sample_rate
from .config import CodecConfig
from .model import Codec
from .validation import as_numpy, check_codes, check_device

BLOCK_SECONDS = 5.0  # long inputs are coded in blocks of this much audio (bounded memory)


def load_codec(model: str | Path | None = None, config: str | Path | CodecConfig | None = None,
               device: str | torch.device = "cpu") -> Codec:
    """A bundle dir / weights file (``model``), or a named config with random weights."""
    dev = check_device(device)
    if model is None and config is None:
        model = default_model_dir()
        if not (model / "model.safetensors").exists():
            raise FileNotFoundError(
                f"the default model is not installed at {model}; pass a model bundle path"
            )
    if model is not None:
        codec = Codec.from_pretrained(model, map_location=dev)
        if config is not None:
            cfg = config if isinstance(config, CodecConfig) else Codec.from_config(config).config
            if cfg != codec.config:
                raise ValueError(f"config {config} does not match the model at {model}")
        return codec
    warnings.warn("no checkpoint given: the codec has random (untrained) weights", stacklevel=2)
    if isinstance(config, CodecConfig):
        return Codec(config).eval().to(dev)
    return Codec.from_config(config).to(dev)  # type: ignore[arg-type]


class DwanCodec:
    """Encode audio files or arrays to codes and decode them back.

    ``DwanCodec()`` loads the shipped default model. ``DwanCodec(config, checkpoint_path)``
    loads a bundle (``config`` may be None, a named config, a JSON path or a ``CodecConfig``).
    ``sample_rate`` is the rate of the caller's audio: inputs are resampled from it and
    ``decode`` returns audio at it (the model's own rate by default).

    Arrays (numpy or torch) may be ``[T]`` (mono), ``[C, T]`` (``C <= 8`` channels, first;
    downmixed with a warning) or ``[B, 1, T]`` (``B`` signals); every other shape is refused
    (see :mod:`dwancodec.checks`); integer PCM is scaled and values beyond ``[-1, 1]`` are
    clipped, as for files. Long inputs are coded in blocks through the streaming
    sessions, so memory stays bounded whatever the length; the codes equal the offline ones.

    >>> codec = DwanCodec()                                 # doctest: +SKIP
    >>> codes = codec.encode("speech.wav")                  # [1, n_q, F] int64
    >>> wav, sr = codec.decode(codes)                       # [1, F * hop] float32
    """

    def __init__(self, config: str | Path | CodecConfig | None = None,
                 checkpoint_path: str | Path | None = None, sample_rate: int | None = None,
                 device: str | torch.device = "cpu") -> None:
        self.model = load_codec(checkpoint_path, config, device)
        self.sample_rate = self.model.sample_rate if sample_rate is None else \
            check_sample_rate(sample_rate)
        self.device = next(self.model.parameters()).device

    def _block(self) -> int:
        hop = self.model.hop_length
        return max(1, round(BLOCK_SECONDS * self.model.sample_rate / hop)) * hop

    def _encode_blocks(self, blocks: Iterable[np.ndarray], batch: int, n_q: int, what: str
                       ) -> Tensor:
        """Blocks ``[B, n]`` through one streaming encoder -> codes ``[B, n_q, F]``."""
        from .streaming.session import StreamingEncoder

        enc = StreamingEncoder(self.model, batch, n_q)
        out, samples = [], 0
        for b in blocks:
            samples += b.shape[-1]
            out.append(enc.push(torch.from_numpy(np.ascontiguousarray(b))))
        if samples == 0:
            raise ValueError(f"{what} contains no audio samples")
        out.append(enc.flush())
        return torch.cat(out, dim=-1)

    @torch.inference_mode()
    def encode(self, audio: str | Path | np.ndarray | Tensor, n_q: int | None = None,
               sample_rate: int | None = None) -> Tensor:
        """A file path, or an array ``[T]`` / ``[C, T]`` / ``[B, 1, T]`` at ``sample_rate``
        (default: this object's rate) -> codes ``[B, n_q, ceil(T / hop)]`` int64 (``B = 1``
        but for ``[B, 1, T]``)."""
        from .checks import check_n_q

        n_q = self.model.num_codebooks if n_q is None else check_n_q(n_q,
                                                                     self.model.num_codebooks)
        block = self._block()
        if isinstance(audio, (str, Path)):
            blocks = (b[None] for b, _ in stream_audio(audio, self.model.sample_rate,
                                                       BLOCK_SECONDS))
            return self._encode_blocks(blocks, 1, n_q, str(audio))
        rate = self.sample_rate if sample_rate is None else check_sample_rate(sample_rate)
        if isinstance(audio, Tensor):
            audio = as_numpy(audio)
        x = check_offline_audio(audio, kind="a numpy array or torch.Tensor")  # [B, T]
        if rate != self.model.sample_rate:
            x = np.stack([resample(a, rate, self.model.sample_rate) for a in x])
        x = np.clip(x, -1.0, 1.0)  # as for files
        return self._encode_blocks((x[:, i:i + block] for i in range(0, x.shape[-1], block)),
                                   x.shape[0], n_q, "audio")

    @torch.inference_mode()
    def decode(self, codes: Tensor | np.ndarray, length: int | None = None
               ) -> tuple[Tensor, int]:
        """Codes ``[B, n_q, F]`` (or ``[n_q, F]``) -> ``(audio [B, T], sample_rate)``.

        ``length`` (``None`` or an integer ``>= 0``) trims the output to the original number
        of samples (at ``sample_rate``). Long inputs are decoded in blocks.
        """
        from .streaming.session import StreamingDecoder

        length = check_length(length)
        if isinstance(codes, (np.ndarray, Tensor)) and codes.ndim == 2:
            codes = codes[None]
        codes = check_codes(codes, self.model.num_codebooks, self.model.codebook_size)
        frames = max(1, self._block() // self.model.hop_length)
        if codes.shape[-1] <= frames:
            wav = self.model.decode(codes)[:, 0]
        else:
            dec = StreamingDecoder(self.model, codes.shape[0])
            wav = torch.cat([dec.push(codes[..., i:i + frames])
                             for i in range(0, codes.shape[-1], frames)], dim=-1)
        if self.sample_rate != self.model.sample_rate and wav.shape[-1]:
            y = np.stack([resample(a, self.model.sample_rate, self.sample_rate)
                          for a in wav.cpu().numpy()])
            wav = torch.from_numpy(y)
        if length is not None:
            wav = wav[:, :length]
        return wav, self.sample_rate
