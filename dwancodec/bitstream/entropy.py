"""Entropy coding of FSQ codes: static context tables and a byte-wise rANS coder (numpy only).

A fixed-rate ``.dwc`` frame costs ``n_q * log2(K)`` bits whatever it holds. The codes are far
from uniform: the later residual stages sit near the middle of their levels, and a digit
repeats its previous frame's value more often than chance. Each FSQ code is split into its
mixed-radix digits (``levels``, least significant first, as :class:`~dwancodec.quantization.FSQ`
numbers them) and each digit is coded with a probability table chosen by two contexts:

- ``prev``: the same digit of the same stage in the previous frame of the block (``L`` at the
  block's first frame, ``L = max(levels)``);
- ``lower``: the same digit of the stage below in the same frame (``L`` for the first stage).

So the table is ``freq[stage, digit, prev, lower, symbol]``, ``[S, D, L + 1, L + 1, L]``
uint16, each row summing to ``2**PRECISION`` with every legal symbol at 1 or more (a code the
tables never saw still codes, at up to ``PRECISION`` bits). Both contexts exist for any
``n_q``: stage ``s`` needs only stages below it.

Blocks: frames are coded in blocks of ``block_frames``; each block is one rANS stream
(32-bit state, byte-wise renormalisation, state in ``[2**23, 2**31)``), the 4-byte final
state first, then its bytes, with no length field. The decoder knows how many symbols a block
holds and reads bytes as it needs them; a block ends where its state is back at ``2**23``, the
encoder's start, which checks every block (a flipped bit decodes to another state with
near certainty). A block costs 4 bytes of state, 0.6 kbit/s at 50 frames of 20 ms per block.

Round 23 (docs/training-log.md): for the default model these tables take n_q 8 from 5.56 to
4.05 kbps and n_q 5 from 3.48 to 2.89 kbps on val-16k speech, the same audio.
"""

from __future__ import annotations

import functools
import hashlib
import json
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .bits import BitstreamError

PRECISION = 15                 # table rows sum to 2**15 (so uint16 holds every entry)
FORMAT = "dwancodec-entropy-1"
FILE = "entropy.safetensors"   # beside a bundle's config.json, or in an export folder
_RANS_L = 1 << 23              # the state's lower bound (and the encoder's start state)
_STATE = 4                     # bytes of the flushed state at the head of each block
_SHIFT = 23 - PRECISION + 8    # encoder renormalises while x >= freq << _SHIFT: x stays < 2**31
MAX_LEVEL = 256


def digits_of(codes: np.ndarray, levels: Sequence[int]) -> np.ndarray:
    """FSQ codes ``[n_q, F]`` -> digits ``[n_q, F, D]`` (``D = len(levels)``), digit ``k`` in
    ``[0, levels[k])``, least significant first: ``code = sum_k digit_k * prod(levels[:k])``.

    >>> digits_of(np.array([[0, 7, 8, 100]]), (8, 5, 3))[0].tolist()
    [[0, 0, 0], [7, 0, 0], [0, 1, 0], [4, 2, 2]]
    """
    lv = np.asarray(levels, dtype=np.int64)
    basis = np.cumprod(np.concatenate([[1], lv[:-1]]))
    return (np.asarray(codes, dtype=np.int64)[..., None] // basis) % lv


def codes_of(digits: np.ndarray, levels: Sequence[int]) -> np.ndarray:
    """The inverse of :func:`digits_of`: ``[n_q, F, D]`` -> ``[n_q, F]`` int64."""
    lv = np.asarray(levels, dtype=np.int64)
    basis = np.cumprod(np.concatenate([[1], lv[:-1]]))
    return (np.asarray(digits, dtype=np.int64) * basis).sum(-1)


def contexts(digits: np.ndarray, max_level: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``prev`` and ``lower`` contexts of every digit of one block ``[n_q, F, D]``
    (``max_level`` where there is none: the block's first frame, the first stage)."""
    prev = np.full_like(digits, max_level)
    prev[:, 1:] = digits[:, :-1]
    lower = np.full_like(digits, max_level)
    lower[1:] = digits[:-1]
    return prev, lower


def context_counts(blocks: Iterable[np.ndarray], levels: Sequence[int],
                   num_stages: int) -> np.ndarray:
    """How often each symbol follows each context: ``[S, D, L + 1, L + 1, L]`` int64 over
    ``blocks`` of codes ``[n_q, F]`` (``n_q <= num_stages``; each as coded, one block)."""
    L = max(levels)
    counts = np.zeros((num_stages, len(levels), L + 1, L + 1, L), dtype=np.int64)
    for codes in blocks:
        dig = digits_of(codes, levels)
        prev, lower = contexts(dig, L)
        s, _, k = np.indices(dig.shape)
        np.add.at(counts, (s, k, prev, lower, dig), 1)
    return counts


class EntropyTables:
    """Static context tables for the FSQ codes of one model (see the module docstring).

    ``freq``: ``[S, D, L + 1, L + 1, L]`` integers, each row summing to ``2**PRECISION``, every
    symbol below ``levels[digit]`` at 1 or more and every one above at 0. ``codes``: the
    codes identity of the model they were fitted for (``Codec.codes_identity()``).
    """

    def __init__(self, freq: np.ndarray, levels: Sequence[int], codes: str = "",
                 stage_bits: Sequence[float] = ()) -> None:
        self.levels = tuple(int(v) for v in levels)
        self.codes = codes
        # each stage's mean coded bits per frame where the tables were fitted (informational:
        # `encode --bitrate` picks stages by them; not part of the identity)
        self.stage_bits = tuple(float(b) for b in stage_bits)
        f = np.asarray(freq)
        L = max(self.levels) if self.levels else 0
        if not self.levels or any(not 2 <= v <= MAX_LEVEL for v in self.levels):
            raise ValueError(f"entropy tables: FSQ levels must be 2..{MAX_LEVEL}, got "
                             f"{self.levels}")
        shape = (len(self.levels), L + 1, L + 1, L)
        if f.ndim != 5 or f.shape[1:] != shape or f.shape[0] < 1:
            raise ValueError(f"entropy tables: freq must be [stages, {', '.join(map(str, shape))}]"
                             f" for levels {self.levels}, got {list(f.shape)}")
        if f.dtype.kind not in "iu" or int(f.min()) < 0:
            raise ValueError("entropy tables: freq must be non-negative integers")
        if not (f.sum(-1) == 1 << PRECISION).all():
            raise ValueError(f"entropy tables: every row must sum to 2**{PRECISION}")
        legal = np.arange(L)[None, :] < np.asarray(self.levels)[:, None]  # [D, L]
        legal = legal[None, :, None, None, :]
        if not ((f >= 1) | ~legal).all() or not ((f == 0) | legal).all():
            raise ValueError("entropy tables: every symbol below its digit's level needs a "
                             "frequency >= 1, every one above it 0")
        self.freq = f.astype(np.uint16)
        self.num_stages = int(f.shape[0])
        self._L = L
        cum = np.concatenate([np.zeros((*f.shape[:-1], 1), np.int64),
                              np.cumsum(f.astype(np.int64), -1)], -1)
        self._cum = cum          # [S, D, L+1, L+1, L+1]
        self._rows: list[list[int]] | None = None  # flat Python rows for the decoder

    # -- construction -------------------------------------------------------------------
    @classmethod
    def fit(cls, counts: np.ndarray, levels: Sequence[int], codes: str = "",
            prior: float = 0.5) -> EntropyTables:
        """Tables from :func:`context_counts`: each row's counts plus ``prior`` per legal
        symbol, scaled to ``2**PRECISION`` with every legal symbol at 1 or more."""
        levels = tuple(int(v) for v in levels)
        c = np.asarray(counts, dtype=np.float64)
        L = max(levels)
        legal = (np.arange(L)[None, :] < np.asarray(levels)[:, None])[None, :, None, None, :]
        p = np.where(legal, c + prior, 0.0)
        p = p / p.sum(-1, keepdims=True)
        total = 1 << PRECISION
        freq = np.where(legal, np.maximum(1, np.floor(p * total)), 0).astype(np.int64)
        # the rounding's remainder goes to (or comes from) each row's most likely symbol, which
        # keeps it far above 1 (a row's largest share is at least 1 / L of 2**15)
        top = freq.argmax(-1)[..., None]
        fix = total - freq.sum(-1, keepdims=True)
        np.put_along_axis(freq, top, np.take_along_axis(freq, top, -1) + fix, -1)
        return cls(freq, levels, codes)

    @functools.cached_property
    def _identity(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps({"format": FORMAT, "levels": self.levels,
                             "precision": PRECISION}).encode())
        h.update(np.ascontiguousarray(self.freq, dtype="<u2").tobytes())
        return h.hexdigest()[:16]

    def identity(self) -> str:
        """16 hex digits naming these tables (sha256 of levels, precision and frequencies):
        a ``.dwc`` file names the tables that coded it."""
        return self._identity

    # -- files --------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        from safetensors.numpy import save_file

        p = Path(path)
        save_file({"freq": np.ascontiguousarray(self.freq)}, str(p), metadata={
            "format": FORMAT, "levels": json.dumps(list(self.levels)),
            "precision": str(PRECISION), "codes": self.codes, "identity": self.identity(),
            "stage_bits": json.dumps(list(self.stage_bits))})
        return p

    @classmethod
    def load(cls, path: str | Path) -> EntropyTables:
        """Tables from an ``entropy.safetensors``; ``ValueError`` naming the file otherwise."""
        from safetensors import safe_open

        p = Path(path)
        try:
            with safe_open(str(p), framework="numpy") as f:
                meta = f.metadata() or {}
                freq = f.get_tensor("freq")
        except Exception as e:  # safetensors raises its own types for corrupt headers
            raise ValueError(f"{p}: not a readable entropy table file ({e})") from None
        if meta.get("format") != FORMAT or meta.get("precision") != str(PRECISION):
            raise ValueError(f"{p}: entropy tables of format {meta.get('format')!r} precision "
                             f"{meta.get('precision')!r}; this dwancodec reads {FORMAT!r}, "
                             f"precision {PRECISION}")
        try:
            levels = json.loads(meta.get("levels", ""))
            bits = json.loads(meta.get("stage_bits", "[]"))
        except json.JSONDecodeError:
            raise ValueError(f"{p}: entropy tables with invalid 'levels' or 'stage_bits' "
                             "metadata") from None
        if not isinstance(bits, list) or len(bits) > freq.shape[0] or not all(
                isinstance(b, (int, float)) and 0 < b <= 64 * PRECISION for b in bits):
            raise ValueError(f"{p}: 'stage_bits' must list at most one positive number of "
                             f"bits per stage, got {bits!r:.80}")
        try:
            tables = cls(freq, levels, str(meta.get("codes", "")), bits)
        except ValueError as e:
            raise ValueError(f"{p}: {e}") from None
        if meta.get("identity") not in (None, tables.identity()):
            raise ValueError(f"{p}: the tables do not match their recorded identity "
                             f"{meta.get('identity')!r} (a damaged file)")
        return tables

    # -- coding -------------------------------------------------------------------------
    def check(self, n_q: int, levels: Sequence[int]) -> None:
        if tuple(levels) != self.levels:
            raise BitstreamError(f"entropy tables for FSQ levels {self.levels}, the stream "
                                 f"has {tuple(levels)}")
        if not 1 <= n_q <= self.num_stages:
            raise BitstreamError(f"entropy tables cover {self.num_stages} stages, the stream "
                                 f"has n_q={n_q}")

    def stage_bits_of(self, codes: np.ndarray) -> np.ndarray:
        """The ideal cost of each stage of one block of codes ``[n_q, F]``, in bits, ``[n_q]``
        (a stage's digits depend on the stages below it only, so these are what each added
        stage costs)."""
        dig = digits_of(codes, self.levels)
        prev, lower = contexts(dig, self._L)
        s, _, k = np.indices(dig.shape)
        f = self.freq[s, k, prev, lower, dig].astype(np.float64)
        return -np.log2(f / (1 << PRECISION)).sum(axis=(1, 2))

    def block_bits(self, codes: np.ndarray) -> float:
        """The ideal cost of one block of codes ``[n_q, F]`` in bits (what :meth:`encode_block`
        spends, less its 4-byte state and the byte rounding)."""
        return float(self.stage_bits_of(codes).sum())

    def encode_block(self, codes: np.ndarray) -> bytes:
        """One block of codes ``[n_q, F]`` (``F >= 1``; in range, as checked by
        :func:`~dwancodec.bitstream.bits.check_codes`) -> its rANS bytes."""
        n_q = codes.shape[0]
        if n_q > self.num_stages:
            raise ValueError(f"{n_q} stages, the tables cover {self.num_stages}")
        dig = digits_of(codes, self.levels)                    # [n_q, F, D]
        prev, lower = contexts(dig, self._L)
        s, _, k = np.indices(dig.shape)
        start = self._cum[s, k, prev, lower, dig]
        freq = self._cum[s, k, prev, lower, dig + 1] - start
        # decode order is frame, stage, digit; rANS encodes in reverse
        order = lambda a: a.transpose(1, 0, 2).reshape(-1)[::-1].tolist()  # noqa: E731
        out = bytearray()
        x = _RANS_L
        for st, fr in zip(order(start), order(freq), strict=True):
            x_max = fr << _SHIFT
            while x >= x_max:
                out.append(x & 0xFF)
                x >>= 8
            q, r = divmod(x, fr)
            x = (q << PRECISION) + r + st
        out.reverse()
        return x.to_bytes(_STATE, "little") + bytes(out)

    def _decoder_rows(self) -> list[list[int]]:
        if self._rows is None:
            self._rows = self._cum.reshape(-1, self._L + 1).tolist()
        return self._rows

    def decode_block(self, data: bytes | memoryview, offset: int, n_q: int,
                     num_frames: int) -> tuple[np.ndarray, int]:
        """Decode one block of ``num_frames`` frames of ``n_q`` stages starting at byte
        ``offset`` of ``data``: ``(codes [n_q, F], offset after the block)``.
        :class:`BitstreamError` if the bytes end first or the block does not check out."""
        if offset + _STATE > len(data):
            raise BitstreamError("truncated .dwc payload: an entropy-coded block is cut short")
        rows = self._decoder_rows()
        L1 = self._L + 1
        n_d = len(self.levels)
        mask = (1 << PRECISION) - 1
        x = int.from_bytes(data[offset:offset + _STATE], "little")
        if not _RANS_L <= x < _RANS_L << 8:  # no encoder ends a block outside [2**23, 2**31)
            raise BitstreamError("corrupt .dwc payload: an entropy-coded block starts with an "
                                 "impossible state")
        pos = offset + _STATE
        end = len(data)
        out = [0] * (n_q * num_frames * n_d)  # frame-major: [F, n_q, D]
        prev_frame = [self._L] * (n_q * n_d)
        i = 0
        try:
            for _ in range(num_frames):
                for s in range(n_q):
                    base_s = s * n_d
                    for k in range(n_d):
                        lo = out[i - n_d] if s else self._L
                        row = rows[((base_s + k) * L1 + prev_frame[base_s + k]) * L1 + lo]
                        slot = x & mask
                        sym = bisect_right(row, slot) - 1
                        st = row[sym]
                        x = (row[sym + 1] - st) * (x >> PRECISION) + slot - st
                        while x < _RANS_L:
                            x = (x << 8) | data[pos]
                            pos += 1
                        out[i] = sym
                        i += 1
                prev_frame = out[i - n_q * n_d:i]
        except IndexError:
            raise BitstreamError("truncated .dwc payload: an entropy-coded block is cut "
                                 "short") from None
        if x != _RANS_L or pos > end:
            raise BitstreamError("corrupt .dwc payload: an entropy-coded block does not "
                                 "decode to its end state")
        dig = np.asarray(out, dtype=np.int64).reshape(num_frames, n_q, n_d).transpose(1, 0, 2)
        if (dig >= np.asarray(self.levels)).any():
            raise BitstreamError("corrupt .dwc payload: a digit out of its level's range")
        return codes_of(dig, self.levels), pos


@functools.lru_cache(maxsize=1)
def _shipped() -> EntropyTables | None:
    from ..bundled import default_model_dir

    p = default_model_dir() / FILE
    return EntropyTables.load(p) if p.is_file() else None


def shipped_tables(identity: str) -> EntropyTables | None:
    """The tables shipped with the package (the default model's) if ``identity`` names them,
    else ``None``. An identity is a hash of the tables' content, so a ``.dwc`` file that names
    them is read with them without a model at hand (``read_dwc``, ``dwancodec info``)."""
    t = _shipped()
    return t if t is not None and t.identity() == identity else None


def find_tables(directory: str | Path) -> EntropyTables | None:
    """The entropy tables of a model folder: ``directory/entropy.safetensors``; for an export
    (a folder with the ONNX sidecar), the nearest one up through the folders it sits in that
    are themselves exports or a bundle (the shipped ``default/onnx/blocks/`` ->
    ``default/onnx/`` -> ``default/``, the bundle with ``config.json``). ``None`` where there
    are none (the model then writes fixed-rate files); a damaged file is a ``ValueError``
    naming it."""
    from ..bundled import SIDECAR

    p = Path(directory)
    for _ in range(3):
        if (p / FILE).is_file():
            return EntropyTables.load(p / FILE)
        up = p.parent
        if not (p / SIDECAR).exists() or not ((up / SIDECAR).exists()
                                              or (up / "config.json").exists()):
            return None
        p = up
    return None
