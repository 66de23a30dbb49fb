"""The torch side of the input checks: tensors go through :mod:`dwancodec.checks` as numpy.

Every rule and message lives in :mod:`dwancodec.checks`; these adapters only convert a tensor
to a numpy view (a copy for a tensor off the CPU or of a dtype numpy lacks, such as bfloat16)
and give the checked result back as a tensor on the caller's device. They run in the public
entry points (``Codec.encode``, sessions), never inside ``step``, so exported graphs stay free
of value-dependent branches.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from . import checks
from .checks import check_n_q

__all__ = ["as_numpy", "check_audio", "check_codes", "check_device", "check_n_q",
           "check_pcm", "check_state", "stream_mask"]

TENSOR = "a torch.Tensor"
TENSOR_OR_ARRAY = "a torch.Tensor or numpy array"


def as_numpy(x: Tensor) -> np.ndarray:
    """A numpy view of ``x`` (float16 stays float16; bfloat16 and other dtypes numpy lacks
    become float32; a tensor off the CPU is copied)."""
    t = x.detach()
    if t.dtype == torch.bfloat16:
        t = t.float()
    t = t.cpu().resolve_conj().resolve_neg()
    return t.numpy()


def _numpy_or_none(x: Any) -> Any:
    return as_numpy(x) if isinstance(x, Tensor) else x


def check_audio(audio: Any, name: str = "audio") -> Tensor:
    """``audio`` must be a finite float tensor ``[B, 1, T]`` with ``B, T >= 1``; returns it as
    float32 on its device."""
    if not isinstance(audio, Tensor):
        raise ValueError(f"{name} must be {TENSOR} [B, 1, T], got {type(audio).__name__}")
    checks.check_audio(as_numpy(audio), name, TENSOR)
    return audio.float()


def check_pcm(pcm: Any, batch_size: int) -> Tensor:
    """Session input (tensor or numpy): ``[n]`` (batch 1), ``[B, n]`` or ``[B, 1, n]`` float
    PCM -> float32 tensor ``[B, n]`` (on the CPU for numpy input, else on its device)."""
    if isinstance(pcm, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(checks.check_pcm(pcm, batch_size,
                                                                      TENSOR_OR_ARRAY)))
    if not isinstance(pcm, Tensor):
        checks.check_pcm(pcm, batch_size, TENSOR_OR_ARRAY)  # raises, naming the type
    shape = checks.check_pcm(as_numpy(pcm), batch_size, TENSOR_OR_ARRAY).shape
    return pcm.reshape(shape).float()


def check_codes(codes: Any, num_codebooks: int, codebook_size: int,
                batch_size: int | None = None) -> Tensor:
    """Integer codes ``[B, n_q, F]`` (tensor or numpy) in range -> int64 tensor (on its device;
    numpy input: on the CPU). ``F = 0`` is allowed."""
    if isinstance(codes, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(checks.check_codes(
            codes, num_codebooks, codebook_size, batch_size, TENSOR_OR_ARRAY)))
    if not isinstance(codes, Tensor):
        checks.check_codes(codes, num_codebooks, codebook_size, batch_size, TENSOR_OR_ARRAY)
    checks.check_codes(as_numpy(codes), num_codebooks, codebook_size, batch_size,
                       TENSOR_OR_ARRAY)
    return codes.long()


def stream_mask(streams: Any, batch_size: int, device: torch.device | str | None = None
                ) -> Tensor:
    """``reset(streams)`` argument -> ``[B]`` bool tensor (see :func:`checks.stream_mask`)."""
    mask = checks.stream_mask(_numpy_or_none(streams), batch_size)
    return torch.from_numpy(mask).to(device)


def check_state(spec: Mapping[str, Any], state: Any, batch: int) -> None:
    """Torch state dict against a spec of :class:`~dwancodec.streaming.state.StateSpec`."""
    checks.check_state({k: (tuple(s.shape), _dtype_name(s.dtype)) for k, s in spec.items()},
                       state, batch, Tensor, lambda t: _dtype_name(t.dtype))


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def check_device(device: str | torch.device) -> torch.device:
    """A torch device that exists here; ``ValueError`` naming it otherwise (``"foo"``,
    ``"cuda"`` on a CPU-only torch, ``"cuda:3"`` on a one-GPU machine)."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"unknown device {str(device)!r} (use cpu, cuda, cuda:N or mps)"
                         ) from None
    if dev.type == "cpu":
        return dev
    if dev.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise ValueError(f"device {str(device)!r}: this torch build has no CUDA support "
                             f"(torch {torch.__version__}); use --device cpu")
        n = torch.cuda.device_count()
        if n == 0:
            raise ValueError(f"device {str(device)!r}: no CUDA GPU is available here; use "
                             "--device cpu")
        if dev.index is not None and dev.index >= n:
            raise ValueError(f"device {str(device)!r}: this machine has {n} CUDA GPU(s) "
                             f"(cuda:0 .. cuda:{n - 1})")
        return dev
    if dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ValueError(f"device {str(device)!r} (Apple GPU) is not available here")
        return dev
    try:
        torch.empty(0, device=dev)
    except (RuntimeError, AssertionError) as e:
        raise ValueError(f"device {str(device)!r} is not available: {e}") from None
    return dev
