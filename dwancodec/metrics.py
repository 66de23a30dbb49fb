"""Objective speech quality scores on numpy arrays (no torch, no torchaudio).

All functions take a reference and an estimate as mono float arrays ``[T]`` at sample rate
``sr``. If the lengths differ, both are trimmed to the shorter one (a codec's output is usually
padded to whole frames). Scores:

- :func:`si_sdr`: scale-invariant signal-to-distortion ratio in dB (higher is better).
- :func:`mel_distance`: mean L1 distance between log10 mel spectrograms (0 = identical).
- :func:`pesq_wb`: wideband PESQ (ITU-T P.862.2) MOS-LQO in ``[1.04, 4.64]`` (``pesq`` package,
  at 16 kHz; other rates are resampled with soxr). ``nan`` with a warning when PESQ cannot
  score the pair (silence, too short).
- :func:`stoi`: short-time objective intelligibility in ``[0, 1]`` (``pystoi``).
- :func:`score_all`: all of them in a dict.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

PESQ_RATE = 16000


def _pair(ref: np.ndarray, est: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate two mono signals and trim them to the shorter length (float64)."""
    r = np.asarray(ref, dtype=np.float64)
    e = np.asarray(est, dtype=np.float64)
    r = np.squeeze(r) if r.ndim > 1 and r.size == max(r.shape) else r
    e = np.squeeze(e) if e.ndim > 1 and e.size == max(e.shape) else e
    if r.ndim != 1 or e.ndim != 1:
        raise ValueError(
            f"metrics expect mono signals [T], got shapes {np.shape(ref)} and {np.shape(est)}"
        )
    n = min(r.size, e.size)
    if n == 0:
        raise ValueError("metrics need non-empty signals")
    r, e = r[:n], e[:n]
    if not (np.isfinite(r).all() and np.isfinite(e).all()):
        raise ValueError("signals contain NaN or Inf values")
    return r, e


def si_sdr(ref: np.ndarray, est: np.ndarray, eps: float = 1e-10) -> float:
    """Scale-invariant SDR in dB (Le Roux et al. 2019), signals made zero-mean first.

    Identical signals give a large value (about ``10 log10(energy / eps)``); independent noise
    gives a strongly negative one.
    """
    r, e = _pair(ref, est)
    r = r - r.mean()
    e = e - e.mean()
    alpha = float(np.dot(e, r)) / (float(np.dot(r, r)) + eps)
    target = alpha * r
    noise = e - target
    return float(10.0 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))


def _hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular HTK-style mel filterbank ``[n_mels, n_fft // 2 + 1]`` (area-normalised)."""
    fmax = sr / 2 if fmax is None else fmax
    freqs = np.linspace(0.0, sr / 2, n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(fmin), _hz_to_mel(fmax), n_mels + 2))
    lower, center, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None] - lower) / (center - lower)
    down = (upper - freqs[None]) / (upper - center)
    fb = np.maximum(0.0, np.minimum(up, down))
    fb *= (2.0 / (upper - lower))  # Slaney-style area normalisation
    fb.setflags(write=False)
    return fb


def _log_mel(x: np.ndarray, sr: int, n_fft: int, hop: int, n_mels: int) -> np.ndarray:
    """``[T]`` -> ``[n_mels, frames]`` log10 mel magnitude spectrogram (Hann window)."""
    if x.size < n_fft:
        x = np.pad(x, (0, n_fft - x.size))
    frames = 1 + (x.size - n_fft) // hop
    idx = np.arange(n_fft)[None] + hop * np.arange(frames)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(n_fft + 1)[:-1], axis=-1))  # [frames, bins]
    mel = mel_filterbank(sr, n_fft, n_mels) @ spec.T
    return np.log10(np.maximum(mel, 1e-5))


def mel_distance(ref: np.ndarray, est: np.ndarray, sr: int, n_mels: int = 80) -> float:
    """Mean absolute difference of log10 mel spectrograms (window ~32 ms, hop 1/4 window).

    0 for identical signals; grows with spectral distortion. Computed frame by frame in numpy;
    memory is ``O(T)``.
    """
    r, e = _pair(ref, est)
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    n_fft = 2 ** round(math.log2(0.032 * sr))
    hop = n_fft // 4
    n_mels = min(n_mels, n_fft // 4)
    return float(np.mean(np.abs(_log_mel(r, sr, n_fft, hop, n_mels)
                                - _log_mel(e, sr, n_fft, hop, n_mels))))


def _to_rate(x: np.ndarray, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return x
    import soxr

    return soxr.resample(x, sr, target, quality="HQ")


def pesq_wb(ref: np.ndarray, est: np.ndarray, sr: int) -> float:
    """Wideband PESQ MOS-LQO (higher is better, max ~4.64); ``nan`` + warning if unscorable."""
    from pesq import pesq

    r, e = _pair(ref, est)
    r, e = _to_rate(r, sr, PESQ_RATE), _to_rate(e, sr, PESQ_RATE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # pesq divides silence by 0
            value = float(pesq(PESQ_RATE, r.astype(np.float32), e.astype(np.float32), "wb"))
    except Exception as err:  # pesq raises its own error types (NoUtterancesError, ...)
        warnings.warn(f"PESQ could not score this pair ({type(err).__name__}: {err}); "
                      "returning nan", stacklevel=2)
        return float("nan")
    if not math.isfinite(value):
        warnings.warn("PESQ returned a non-finite score; returning nan", stacklevel=2)
        return float("nan")
    return value


def stoi(ref: np.ndarray, est: np.ndarray, sr: int, extended: bool = False) -> float:
    """STOI (or ESTOI with ``extended=True``) in ``[0, 1]``; ``nan`` + warning if unscorable."""
    from pystoi import stoi as _stoi

    r, e = _pair(ref, est)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            value = float(_stoi(r, e, sr, extended=extended))
    except Exception as err:
        warnings.warn(f"STOI could not score this pair ({type(err).__name__}: {err}); "
                      "returning nan", stacklevel=2)
        return float("nan")
    return value


def score_all(ref: np.ndarray, est: np.ndarray, sr: int) -> dict[str, float]:
    """``{"pesq_wb", "stoi", "si_sdr", "mel_distance"}`` for one reference/estimate pair."""
    return {
        "pesq_wb": pesq_wb(ref, est, sr),
        "stoi": stoi(ref, est, sr),
        "si_sdr": si_sdr(ref, est),
        "mel_distance": mel_distance(ref, est, sr),
    }
