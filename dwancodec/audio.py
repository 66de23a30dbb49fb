"""Audio file I/O (soundfile) and resampling (soxr). No torch here: the runtime uses it too."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


class AudioError(ValueError):
    """A user-facing problem with an audio file or array."""


def to_float_mono(audio: np.ndarray, channels_axis: int = -1) -> np.ndarray:
    """Integer or float PCM, mono ``[T]`` or multichannel ``[T, C]`` -> float32 ``[T]``.

    Integer PCM is scaled by its full range (int16 -> /32768); multichannel is averaged with
    a warning; values are clipped to ``[-1, 1]``.
    """
    a = np.asarray(audio)
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        a = (a.astype(np.float64) - (info.max + info.min + 1) / 2) / (-(info.min) if info.min
                                                                      else (info.max + 1) / 2)
    elif a.dtype.kind != "f":
        raise AudioError(f"audio must be integer or float PCM, got dtype {a.dtype}")
    if a.ndim == 2:
        if a.shape[channels_axis] > 1:
            warnings.warn(f"downmixing {a.shape[channels_axis]} channels to mono", stacklevel=2)
        a = a.mean(axis=channels_axis)
    if a.ndim != 1:
        raise AudioError(f"audio must be [T] or [T, channels], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise AudioError("audio contains NaN or Inf values")
    return np.clip(a, -1.0, 1.0).astype(np.float32)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``[T]`` float32 at ``from_rate`` -> ``[T * to_rate / from_rate]`` (soxr, high quality)."""
    if from_rate <= 0 or to_rate <= 0:
        raise AudioError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if from_rate == to_rate or audio.size == 0:
        return audio.astype(np.float32)
    import soxr

    return soxr.resample(audio, from_rate, to_rate, quality="HQ").astype(np.float32)


def load_audio(path: str | Path, target_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 mono ``[T]``; resample to ``target_rate`` if given."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise AudioError(f"no such file: {p}")
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"cannot read {p} as audio: {e}") from None
    audio = to_float_mono(data)
    if target_rate is not None:
        audio = resample(audio, rate, target_rate)
        rate = target_rate
    return audio, rate


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write float ``[T]`` audio; format from the extension (16-bit PCM for wav)."""
    import soundfile as sf

    p = Path(path)
    subtype = "PCM_16" if p.suffix.lower() in (".wav", ".flac") else None
    sf.write(str(p), np.clip(np.asarray(audio, dtype=np.float32), -1, 1), sample_rate,
             subtype=subtype)
