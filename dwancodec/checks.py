"""Input checks for every public entry point: one rule, one message, in one place (numpy only).

The torch API converts its tensors to numpy views and calls these same functions
(:mod:`dwancodec.validation`); the torch-free runtime (:mod:`dwancodec.runtime`) calls them
directly. Each check raises ``ValueError`` with a message that names the problem and, for a
shape, the layout that was expected. The checks run in the public entry points (``encode``,
``decode``, sessions), never inside a streaming ``step``, so exported graphs stay free of
value-dependent branches.

Accepted audio layouts:

- offline coding of whole arrays (``DwanCodec.encode``, ``OnnxCodec.encode``):
  ``[T]`` one mono signal; ``[C, T]`` one signal of ``C <= MAX_CHANNELS`` channels, downmixed
  (channels first, as ``torchaudio.load`` returns them); ``[B, 1, T]`` ``B`` mono signals.
  Anything else, ``[T, C]`` (channels last) included, is refused: a 2-D shape is only read as
  ``[C, T]`` when exactly its first axis is small (or is 1);
- sessions of ``B`` streams (``push``): ``[B, n]``, ``[B, 1, n]``, or ``[n]`` when ``B = 1``;
- a step on explicit state: ``[B, 1, k * hop]``; codes everywhere: ``[B, n_q, F]``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

MAX_CHANNELS = 8           # a 2-D array [C, T] is read as channels only for C <= this
MAX_BATCH = 4096           # streams in one session / arrays in one batch
MAX_SAMPLE_RATE = 768_000  # Hz
DTYPES = {"float32": np.float32, "int64": np.int64}

OFFLINE_LAYOUTS = f"[T] (mono), [C, T] (C <= {MAX_CHANNELS} channels, first) or [B, 1, T]"


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _shape(a: np.ndarray) -> tuple[int, ...]:
    return tuple(int(s) for s in a.shape)


# Scalars --------------------------------------------------------------------------------------
def check_n_q(n_q: Any, num_codebooks: int) -> int:
    """``n_q``: an integer in ``[1, num_codebooks]``."""
    if not _is_int(n_q) or not 1 <= n_q <= num_codebooks:
        raise ValueError(f"n_q must be an integer in [1, {num_codebooks}], got {n_q!r}")
    return int(n_q)


def check_batch_size(batch_size: Any) -> int:
    """A session's number of streams: an integer in ``[1, MAX_BATCH]``."""
    if not _is_int(batch_size) or not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be an integer in [1, {MAX_BATCH}], got "
                         f"{batch_size!r}")
    return int(batch_size)


def check_sample_rate(rate: Any, name: str = "sample_rate") -> int:
    """A sample rate: an integer number of Hz in ``[1, MAX_SAMPLE_RATE]``."""
    if not _is_int(rate) or not 1 <= rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"{name} must be an integer number of Hz in [1, {MAX_SAMPLE_RATE}], "
                         f"got {rate!r}")
    return int(rate)


def check_length(length: Any, name: str = "length") -> int | None:
    """An output length in samples: ``None`` (keep all) or an integer ``>= 0``."""
    if length is None:
        return None
    if not _is_int(length) or length < 0:
        raise ValueError(f"{name} must be None or an integer number of samples >= 0, got "
                         f"{length!r}")
    return int(length)


def max_threads() -> int:
    """The most compute threads accepted: 4 per CPU this process may use, at least 64."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(64, 4 * cpus)


def check_threads(threads: Any, name: str = "num_threads") -> int:
    """A thread count: an integer in ``[1, max_threads()]``."""
    limit = max_threads()
    if not _is_int(threads) or not 1 <= threads <= limit:
        raise ValueError(f"{name} must be an integer in [1, {limit}], got {threads!r}")
    return int(threads)


# Audio ----------------------------------------------------------------------------------------
def pcm_to_float(a: np.ndarray, name: str = "audio") -> np.ndarray:
    """Integer PCM scaled by its full range (int16 -> ``/ 32768``) or float PCM -> float32."""
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        scale = -info.min if info.min else (info.max + 1) / 2
        return ((a.astype(np.float64) - (info.max + info.min + 1) / 2) / scale).astype(
            np.float32)
    if a.dtype.kind != "f":
        raise ValueError(f"{name} must be integer or float PCM, got dtype {a.dtype}")
    return a.astype(np.float32, copy=False)


def _finite(a: np.ndarray, name: str) -> None:
    if a.size and not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or Inf values")


def _array(x: Any, name: str, layout: str, kind: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} must be {kind} {layout}, got {type(x).__name__}")
    return x


def check_offline_audio(audio: Any, name: str = "audio", kind: str = "a numpy array"
                        ) -> np.ndarray:
    """Whole-array input of offline coding -> float32 ``[B, T]`` (``B`` mono signals).

    ``[T]``: one signal; ``[C, T]`` with ``C <= MAX_CHANNELS``: one signal of ``C`` channels,
    averaged to mono (with a warning when ``C > 1``); ``[B, 1, T]``: ``B`` signals. Integer PCM
    is scaled to ``[-1, 1]``. Empty, NaN/Inf and every other shape are refused.
    """
    a = _array(audio, name, OFFLINE_LAYOUTS, kind)
    shape = _shape(a)
    if a.ndim == 2:
        c, t = shape
        if not (c == 1 or c <= MAX_CHANNELS < t):
            hint = ("; it looks like channels last [T, C]: pass audio.T" if t <= MAX_CHANNELS
                    < c else "")
            raise ValueError(f"{name} has shape {shape}: expected {OFFLINE_LAYOUTS}{hint}")
    elif a.ndim == 3:
        if shape[1] != 1:
            raise ValueError(f"{name} has shape {shape}: expected {OFFLINE_LAYOUTS}; a batch "
                             "[B, C, T] must be downmixed to [B, 1, T] first")
        if shape[0] > MAX_BATCH:
            raise ValueError(f"{name} has a batch of {shape[0]} signals (at most {MAX_BATCH})")
    elif a.ndim != 1:
        raise ValueError(f"{name} has shape {shape}: expected {OFFLINE_LAYOUTS}")
    x = pcm_to_float(a, name)
    if x.size == 0:
        raise ValueError(f"{name} is empty: shape {shape}")
    _finite(x, name)
    if x.ndim == 1:
        return x[None]
    if x.ndim == 3:
        return x[:, 0]
    if x.shape[0] > 1:
        warnings.warn(f"downmixing {x.shape[0]} channels to mono", stacklevel=3)
    return x.mean(axis=0, dtype=np.float32)[None]


def check_pcm(pcm: Any, batch_size: int, kind: str = "a numpy array") -> np.ndarray:
    """Session input: ``[n]`` (batch 1), ``[B, n]`` or ``[B, 1, n]`` float PCM -> ``[B, n]``.

    ``n`` may be 0. Integer PCM is refused (a session never guesses a scale).
    """
    layout = f"[{batch_size}, n] or [{batch_size}, 1, n]" + (" or [n]" if batch_size == 1
                                                                else "")
    a = _array(pcm, "pcm", layout, kind)
    if a.dtype.kind != "f":
        raise ValueError(f"pcm must be floating point in [-1, 1], got {a.dtype}; "
                         "convert integer PCM with x / 32768")
    if a.ndim == 1 and batch_size == 1:
        a = a[None]
    elif a.ndim == 3 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 2 or a.shape[0] != batch_size:
        raise ValueError(f"pcm must have shape {layout} for a session of {batch_size} "
                         f"stream(s), got {_shape(pcm)}")
    _finite(a, "pcm")
    return a.astype(np.float32, copy=False)


def check_audio(audio: Any, name: str = "audio", kind: str = "a numpy array") -> np.ndarray:
    """Step input: a finite float array ``[B, 1, T]`` with ``B, T >= 1`` -> float32."""
    a = _array(audio, name, "[B, 1, T]", kind)
    if a.ndim != 3 or a.shape[1] != 1:
        raise ValueError(
            f"{name} must have shape [B, 1, T] (mono), got {_shape(a)}; "
            "use audio.reshape(B, 1, T) or downmix channels first"
        )
    if a.dtype.kind != "f":
        raise ValueError(f"{name} must be floating point in [-1, 1], got {a.dtype}; "
                         "convert integer PCM with x / 32768")
    if a.shape[0] == 0 or a.shape[-1] == 0:
        raise ValueError(f"{name} is empty: shape {_shape(a)}")
    _finite(a, name)
    return a.astype(np.float32, copy=False)


# Codes ----------------------------------------------------------------------------------------
def check_codes(codes: Any, num_codebooks: int, codebook_size: int,
                batch_size: int | None = None, kind: str = "a numpy array") -> np.ndarray:
    """Integer codes ``[B, n_q, F]``, ``1 <= n_q <= num_codebooks``, values in
    ``[0, codebook_size)`` -> int64. ``F = 0`` is allowed (it decodes to no audio);
    ``batch_size``: the batch a session expects."""
    c = _array(codes, "codes", "[B, n_q, F]", kind)
    if c.ndim != 3:
        raise ValueError(f"codes must have shape [B, n_q, F], got {_shape(c)}")
    if c.dtype.kind not in "iu":
        raise ValueError(f"codes must be an integer array, got {c.dtype}")
    b, n_q, _ = _shape(c)
    if not 1 <= n_q <= num_codebooks:
        raise ValueError(f"codes has {n_q} codebooks; this model has 1 to {num_codebooks}")
    if b == 0:
        raise ValueError("codes is empty (batch size 0)")
    if batch_size is not None and b != batch_size:
        raise ValueError(f"codes batch {b} does not match the session's {batch_size}")
    if c.size:
        lo, hi = int(c.min()), int(c.max())
        if lo < 0 or hi >= codebook_size:
            raise ValueError(f"codes out of range: values must be in [0, {codebook_size}), "
                             f"got min {lo}, max {hi}")
    return c.astype(np.int64, copy=False)


# Sessions -------------------------------------------------------------------------------------
def stream_mask(streams: Any, batch_size: int) -> np.ndarray:
    """Which streams a ``reset(streams)`` touches, as a ``[B]`` bool mask.

    ``streams``: ``None`` (all), a ``[B]`` bool mask (array or sequence of bools), or integer
    stream indices in ``[0, B)`` (array or sequence; may be empty).
    """
    if streams is None:
        return np.ones(batch_size, dtype=np.bool_)
    if isinstance(streams, np.ndarray):
        arr = streams
    elif isinstance(streams, Sequence) and not isinstance(streams, (str, bytes)):
        items = list(streams)
        if items and all(isinstance(s, (bool, np.bool_)) for s in items):
            arr = np.array(items, dtype=np.bool_)
        elif all(_is_int(s) for s in items):
            arr = np.array(items, dtype=np.int64)
        else:
            bad = next(s for s in items if not _is_int(s))
            raise ValueError(f"stream indices must be integers in [0, {batch_size}), got "
                             f"{bad!r}")
    else:
        raise ValueError(f"streams must be None, stream indices or a [{batch_size}] bool mask, "
                         f"got {type(streams).__name__}")
    if arr.dtype.kind == "b":
        if arr.shape != (batch_size,):
            raise ValueError(f"stream mask must have shape [{batch_size}], got {_shape(arr)}")
        return arr.astype(np.bool_, copy=False)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise ValueError(f"stream indices must be a list of integers in [0, {batch_size}), "
                         f"got {arr.dtype} {_shape(arr)}")
    if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= batch_size):
        raise ValueError(f"stream indices must be in [0, {batch_size}), got {arr.tolist()}")
    mask = np.zeros(batch_size, dtype=np.bool_)
    mask[arr.astype(np.int64)] = True
    return mask


def check_state(spec: Mapping[str, tuple[tuple[int, ...], str]], state: Any, batch: int,
                array_type: type | tuple[type, ...] = np.ndarray,
                dtype_name: Callable[[Any], str] = lambda a: str(a.dtype)) -> None:
    """Raise ``ValueError`` naming the first missing, extra or mis-shaped state entry.

    ``spec``: key -> (shape without batch, dtype name); ``array_type`` / ``dtype_name``: what
    an entry must be and how to name its dtype (numpy by default; the torch side passes its own).
    """
    if not isinstance(state, Mapping):
        raise ValueError(f"state must be a dict of arrays, got {type(state).__name__}")
    missing = sorted(set(spec) - set(state))
    if missing:
        raise ValueError(f"state is missing entries: {missing[:5]}")
    extra = sorted(set(state) - set(spec))
    if extra:
        raise ValueError(f"state has unknown entries: {extra[:5]}")
    for k, (shape, dtype) in spec.items():
        t = state[k]
        if not isinstance(t, array_type):
            raise ValueError(f"state[{k!r}] must be an array, got {type(t).__name__}")
        if tuple(t.shape) != (batch, *shape) or dtype_name(t) != dtype:
            raise ValueError(
                f"state[{k!r}] has shape {tuple(t.shape)} {dtype_name(t)}, "
                f"expected {(batch, *shape)} {dtype}"
            )


def finite_number(value: Any) -> bool:
    """True for a real, finite int or float (not bool)."""
    return (isinstance(value, (int, float, np.integer, np.floating))
            and not isinstance(value, (bool, np.bool_)) and math.isfinite(value))


__all__ = [
    "DTYPES", "MAX_BATCH", "MAX_CHANNELS", "MAX_SAMPLE_RATE", "OFFLINE_LAYOUTS",
    "check_audio", "check_batch_size", "check_codes", "check_length", "check_n_q",
    "check_offline_audio", "check_pcm", "check_sample_rate", "check_state", "check_threads",
    "finite_number", "max_threads", "pcm_to_float", "stream_mask",
]
