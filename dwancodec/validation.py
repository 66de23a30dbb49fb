"""Input checks for the public API: loud ``ValueError`` naming the problem.

These run in the public entry points (``Codec.encode``, sessions), never inside ``step``,
so exported graphs stay free of value-dependent branches.
"""

from __future__ import annotations

import torch
from torch import Tensor


def check_audio(audio: Tensor, name: str = "audio") -> None:
    """``audio`` must be a finite float tensor ``[B, 1, T]`` with ``B, T >= 1``."""
    if not isinstance(audio, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor [B, 1, T], got {type(audio).__name__}")
    if audio.dim() != 3 or audio.shape[1] != 1:
        raise ValueError(
            f"{name} must have shape [B, 1, T] (mono), got {tuple(audio.shape)}; "
            "use audio.reshape(B, 1, T) or downmix channels first"
        )
    if not audio.is_floating_point():
        raise ValueError(
            f"{name} must be floating point in [-1, 1], got {audio.dtype}; "
            "convert integer PCM with x.float() / 32768"
        )
    if audio.shape[0] == 0 or audio.shape[-1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(audio.shape)}")
    if not bool(torch.isfinite(audio).all()):
        raise ValueError(f"{name} contains NaN or Inf values")


def check_n_q(n_q: int, num_codebooks: int) -> int:
    if isinstance(n_q, bool) or not isinstance(n_q, int) or not 1 <= n_q <= num_codebooks:
        raise ValueError(f"n_q must be an integer in [1, {num_codebooks}], got {n_q!r}")
    return n_q


def check_codes(codes: Tensor, num_codebooks: int, codebook_size: int) -> None:
    """``codes`` must be an integer tensor ``[B, n_q, F]`` with values in range."""
    if not isinstance(codes, Tensor):
        raise ValueError(f"codes must be a torch.Tensor [B, n_q, F], got {type(codes).__name__}")
    if codes.dim() != 3:
        raise ValueError(f"codes must have shape [B, n_q, F], got {tuple(codes.shape)}")
    if codes.is_floating_point() or codes.dtype == torch.bool or codes.is_complex():
        raise ValueError(f"codes must be an integer tensor, got {codes.dtype}")
    if not 1 <= codes.shape[1] <= num_codebooks:
        raise ValueError(
            f"codes has {codes.shape[1]} codebooks; this model has 1 to {num_codebooks}"
        )
    if codes.shape[0] == 0:
        raise ValueError("codes is empty (batch size 0)")
    if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= codebook_size):
        raise ValueError(
            f"codes out of range: values must be in [0, {codebook_size}), "
            f"got min {int(codes.min())}, max {int(codes.max())}"
        )
