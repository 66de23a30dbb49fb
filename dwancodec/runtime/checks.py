"""Input checks for the runtime, in numpy: the same rules (and messages) as the torch API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

DTYPES = {"float32": np.float32, "int64": np.int64}


def check_pcm(pcm: Any, batch_size: int) -> np.ndarray:
    """Session input: ``[n]`` (batch 1), ``[B, n]`` or ``[B, 1, n]`` float PCM -> ``[B, n]``."""
    if not isinstance(pcm, np.ndarray):
        raise ValueError(f"pcm must be a numpy array, got {type(pcm).__name__}")
    if pcm.dtype.kind != "f":
        raise ValueError(
            f"pcm must be floating point in [-1, 1], got {pcm.dtype}; "
            "convert integer PCM with x / 32768"
        )
    if pcm.ndim == 1 and batch_size == 1:
        pcm = pcm[None]
    elif pcm.ndim == 3 and pcm.shape[1] == 1:
        pcm = pcm[:, 0]
    if pcm.ndim != 2 or pcm.shape[0] != batch_size:
        raise ValueError(
            f"pcm must have shape [{batch_size}, n] for a session of {batch_size} stream(s), "
            f"got {tuple(pcm.shape)}"
        )
    if pcm.size and not np.isfinite(pcm).all():
        raise ValueError("pcm contains NaN or Inf values")
    return pcm.astype(np.float32, copy=False)


def check_audio(audio: Any, name: str = "audio") -> np.ndarray:
    """Step input: a finite float array ``[B, 1, T]`` with ``B, T >= 1``."""
    if not isinstance(audio, np.ndarray):
        raise ValueError(f"{name} must be a numpy array [B, 1, T], got {type(audio).__name__}")
    if audio.ndim != 3 or audio.shape[1] != 1:
        raise ValueError(
            f"{name} must have shape [B, 1, T] (mono), got {tuple(audio.shape)}; "
            "use audio.reshape(B, 1, T) or downmix channels first"
        )
    if audio.dtype.kind != "f":
        raise ValueError(
            f"{name} must be floating point in [-1, 1], got {audio.dtype}; "
            "convert integer PCM with x.astype(np.float32) / 32768"
        )
    if audio.shape[0] == 0 or audio.shape[-1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(audio.shape)}")
    if not np.isfinite(audio).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return audio.astype(np.float32, copy=False)


def check_n_q(n_q: Any, num_codebooks: int) -> int:
    if isinstance(n_q, bool) or not isinstance(n_q, (int, np.integer)) \
            or not 1 <= n_q <= num_codebooks:
        raise ValueError(f"n_q must be an integer in [1, {num_codebooks}], got {n_q!r}")
    return int(n_q)


def check_codes(codes: Any, num_codebooks: int, codebook_size: int) -> np.ndarray:
    """``codes`` must be an integer array ``[B, n_q, F]`` with values in range; -> int64."""
    if not isinstance(codes, np.ndarray):
        raise ValueError(f"codes must be a numpy array [B, n_q, F], got {type(codes).__name__}")
    if codes.ndim != 3:
        raise ValueError(f"codes must have shape [B, n_q, F], got {tuple(codes.shape)}")
    if codes.dtype.kind not in "iu":
        raise ValueError(f"codes must be an integer array, got {codes.dtype}")
    if not 1 <= codes.shape[1] <= num_codebooks:
        raise ValueError(
            f"codes has {codes.shape[1]} codebooks; this model has 1 to {num_codebooks}"
        )
    if codes.shape[0] == 0:
        raise ValueError("codes is empty (batch size 0)")
    if codes.size and (int(codes.min()) < 0 or int(codes.max()) >= codebook_size):
        raise ValueError(
            f"codes out of range: values must be in [0, {codebook_size}), "
            f"got min {int(codes.min())}, max {int(codes.max())}"
        )
    return codes.astype(np.int64, copy=False)


def check_state(spec: Mapping[str, tuple[tuple[int, ...], str]], state: Any, batch: int
                ) -> None:
    """Raise ``ValueError`` naming the first missing, extra or mis-shaped state entry.

    ``spec``: key -> (shape without batch, dtype name).
    """
    if not isinstance(state, Mapping):
        raise ValueError(f"state must be a dict of numpy arrays, got {type(state).__name__}")
    missing = sorted(set(spec) - set(state))
    if missing:
        raise ValueError(f"state is missing entries: {missing[:5]}")
    extra = sorted(set(state) - set(spec))
    if extra:
        raise ValueError(f"state has unknown entries: {extra[:5]}")
    for k, (shape, dtype) in spec.items():
        t = state[k]
        if not isinstance(t, np.ndarray):
            raise ValueError(f"state[{k!r}] must be a numpy array, got {type(t).__name__}")
        if tuple(t.shape) != (batch, *shape) or t.dtype != DTYPES[dtype]:
            raise ValueError(
                f"state[{k!r}] has shape {tuple(t.shape)} {t.dtype}, "
                f"expected {(batch, *shape)} {dtype}"
            )
