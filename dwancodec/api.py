"""``DwanCodec``: the one-object Python API (files or arrays in, codes out, and back)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .audio import load_audio, resample, to_float_mono
from .bundled import default_model_dir
from .config import CodecConfig
from .model import Codec


def load_codec(model: str | Path | None = None, config: str | Path | CodecConfig | None = None,
               device: str = "cpu") -> Codec:
    """A bundle dir / weights file (``model``), or a named config with random weights."""
    if model is None and config is None:
        model = default_model_dir()
        if not (model / "model.safetensors").exists():
            raise FileNotFoundError(
                f"the default model is not installed at {model}; pass a model bundle path"
            )
    if model is not None:
        codec = Codec.from_pretrained(model, map_location=device)
        if config is not None:
            cfg = config if isinstance(config, CodecConfig) else Codec.from_config(config).config
            if cfg != codec.config:
                raise ValueError(f"config {config} does not match the model at {model}")
        return codec
    warnings.warn("no checkpoint given: the codec has random (untrained) weights", stacklevel=2)
    if isinstance(config, CodecConfig):
        return Codec(config).eval().to(device)
    return Codec.from_config(config).to(device)  # type: ignore[arg-type]


class DwanCodec:
    """Encode audio files or arrays to codes and decode them back.

    ``DwanCodec()`` loads the shipped default model. ``DwanCodec(config, checkpoint_path)``
    loads a bundle (``config`` may be None, a named config, a JSON path or a ``CodecConfig``).
    ``sample_rate`` is the rate of the caller's audio: inputs are resampled from it and
    ``decode`` returns audio at it (the model's own rate by default).

    >>> codec = DwanCodec()                                 # doctest: +SKIP
    >>> codes = codec.encode("speech.wav")                  # [1, n_q, F] int64
    >>> wav, sr = codec.decode(codes)                       # [1, F * hop] float32
    """

    def __init__(self, config: str | Path | CodecConfig | None = None,
                 checkpoint_path: str | Path | None = None, sample_rate: int | None = None,
                 device: str = "cpu") -> None:
        self.model = load_codec(checkpoint_path, config, device)
        self.sample_rate = self.model.sample_rate if sample_rate is None else sample_rate
        self.device = device

    def _to_model_audio(self, audio: str | Path | np.ndarray | Tensor,
                        sample_rate: int | None) -> Tensor:
        if isinstance(audio, (str, Path)):
            x, _ = load_audio(audio, self.model.sample_rate)
        else:
            if isinstance(audio, Tensor):
                audio = audio.detach().cpu().numpy()
            x = to_float_mono(np.squeeze(np.asarray(audio)) if np.ndim(audio) > 1 and
                              1 in np.shape(audio) else audio)
            rate = self.sample_rate if sample_rate is None else sample_rate
            x = resample(x, rate, self.model.sample_rate)
        if x.size == 0:
            raise ValueError("audio is empty")
        return torch.from_numpy(x).to(self.device)[None, None]

    @torch.inference_mode()
    def encode(self, audio: str | Path | np.ndarray | Tensor, n_q: int | None = None,
               sample_rate: int | None = None) -> Tensor:
        """A file path or a mono array ``[T]`` -> codes ``[1, n_q, ceil(T / hop)]``."""
        return self.model.encode(self._to_model_audio(audio, sample_rate), n_q)

    @torch.inference_mode()
    def decode(self, codes: Tensor | np.ndarray, length: int | None = None
               ) -> tuple[Tensor, int]:
        """Codes ``[1, n_q, F]`` (or ``[n_q, F]``) -> ``(audio [1, T], sample_rate)``.

        ``length`` trims the output to the original number of samples (at ``sample_rate``).
        """
        if isinstance(codes, np.ndarray):
            codes = torch.from_numpy(codes)
        if isinstance(codes, Tensor) and codes.dim() == 2:
            codes = codes.unsqueeze(0)
        wav = self.model.decode(codes.to(self.device))[:, 0]
        if self.sample_rate != self.model.sample_rate:
            y = resample(wav[0].cpu().numpy(), self.model.sample_rate, self.sample_rate)
            wav = torch.from_numpy(y)[None]
        if length is not None:
            wav = wav[:, :length]
        return wav, self.sample_rate
