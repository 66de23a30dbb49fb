"""Bit packing of codes, shared by the ``.dwc`` file and the packets (numpy only, no torch).

Codes are stored at their information width. With ``K`` codes per codebook and ``n_q`` stages,
frame ``f`` (codes ``c[0, f] .. c[n_q - 1, f]``) becomes ONE mixed-radix integer

    v_f = sum_i c[i, f] * K**i        (0 <= v_f < K**n_q)

written in ``B = bit_length(K**n_q - 1) = ceil(n_q * log2(K))`` bits, and the payload is the
little-endian byte encoding of ``P = sum_f v_f * 2**(B * f)`` (frames back to back, no padding
between them, zero bits after the last one up to a byte boundary). Each frame costs less than
one bit more than ``n_q * log2(K)``. The byte layout is in ``docs/bitstream.md``.
"""

from __future__ import annotations

import numpy as np

MAX_CODEBOOK_SIZE = 1 << 24


class BitstreamError(ValueError):
    """A ``.dwc`` file or packet that cannot be parsed, or that does not fit the model."""


def frame_bits(n_q: int, codebook_size: int) -> int:
    """Bits of one packed frame: ``ceil(n_q * log2(codebook_size))``, exactly.

    >>> frame_bits(8, 8 * 8 * 8 * 6 * 5)   # default model: 111.26 -> 112 bits
    112
    >>> frame_bits(3, 1024)
    30
    """
    return (codebook_size**n_q - 1).bit_length()


def payload_bytes(num_frames: int, n_q: int, codebook_size: int) -> int:
    return (num_frames * frame_bits(n_q, codebook_size) + 7) // 8


def check_codes(codes: np.ndarray, n_q: int | None, codebook_size: int) -> np.ndarray:
    """``codes`` as int64 ``[n_q, F]``; ``ValueError`` unless they are integers in
    ``[0, codebook_size)`` with ``n_q`` stages (any number for ``n_q=None``)."""
    c = np.asarray(codes)
    if c.ndim != 2:
        raise ValueError(f"codes must have shape [n_q, F], got {c.shape}")
    if n_q is not None and c.shape[0] != n_q:
        raise ValueError(f"codes have {c.shape[0]} stages, the stream has n_q={n_q}")
    if c.dtype.kind not in "iu":
        raise ValueError(f"codes must be integers, got {c.dtype}")
    if c.size and (int(c.min()) < 0 or int(c.max()) >= codebook_size):
        raise ValueError(f"codes out of range [0, {codebook_size}): min {int(c.min())}, "
                         f"max {int(c.max())}")
    return c.astype(np.int64, copy=False)


def _frame_values(codes: np.ndarray, codebook_size: int) -> list[int]:
    """``[n_q, F]`` -> ``F`` Python ints ``sum_i c[i] * K**i``."""
    n_q = codes.shape[0]
    if codebook_size**n_q <= 1 << 63:
        vals = np.zeros(codes.shape[1], dtype=np.uint64)
        for i in reversed(range(n_q)):
            vals = vals * np.uint64(codebook_size) + codes[i].astype(np.uint64)
        return [int(v) for v in vals]
    obj = codes.astype(object)
    acc = obj[n_q - 1]
    for i in reversed(range(n_q - 1)):
        acc = acc * codebook_size + obj[i]
    return list(acc)


class BitPacker:
    """Packs frames of codes into bytes incrementally (the payload of a ``.dwc`` file).

    ``push([n_q, f])`` returns the whole bytes completed so far; ``flush()`` the last partial
    byte (zero-padded). Memory is proportional to the pushed block, not the stream.
    """

    def __init__(self, n_q: int, codebook_size: int) -> None:
        self.n_q, self.codebook_size = n_q, codebook_size
        self.bits = frame_bits(n_q, codebook_size)
        self._nbytes = (self.bits + 7) // 8
        self._carry = np.zeros(0, dtype=np.uint8)  # < 8 pending bits
        self.num_frames = 0

    def push(self, codes: np.ndarray) -> bytes:
        c = check_codes(codes, self.n_q, self.codebook_size)
        if c.shape[1] == 0:
            return b""
        raw = b"".join(v.to_bytes(self._nbytes, "little")
                       for v in _frame_values(c, self.codebook_size))
        rows = np.frombuffer(raw, dtype=np.uint8).reshape(c.shape[1], self._nbytes)
        bits = np.unpackbits(rows, axis=1, bitorder="little")[:, : self.bits].ravel()
        bits = np.concatenate([self._carry, bits])
        whole = bits.size // 8 * 8
        self._carry = bits[whole:]
        self.num_frames += c.shape[1]
        return np.packbits(bits[:whole], bitorder="little").tobytes()

    def flush(self) -> bytes:
        out = np.packbits(self._carry, bitorder="little").tobytes() if self._carry.size else b""
        self._carry = np.zeros(0, dtype=np.uint8)
        return out


def pack_codes(codes: np.ndarray, codebook_size: int) -> bytes:
    """``[n_q, F]`` integer codes -> payload bytes (see the module docstring)."""
    c = np.asarray(codes)
    packer = BitPacker(c.shape[0] if c.ndim == 2 else 0, codebook_size)
    return packer.push(c) + packer.flush()


def unpack_codes(payload: bytes | memoryview, n_q: int, codebook_size: int, num_frames: int,
                 start: int = 0) -> np.ndarray:
    """Frames ``[start, start + num_frames)`` of a payload -> codes ``[n_q, num_frames]`` int64.

    Raises :class:`BitstreamError` if the payload is too short or a frame value is not a valid
    code combination (``>= K**n_q``).
    """
    bits_per = frame_bits(n_q, codebook_size)
    first_bit, end_bit = start * bits_per, (start + num_frames) * bits_per
    if (end_bit + 7) // 8 > len(payload):
        raise BitstreamError(f"truncated payload: {num_frames} frames from frame {start} need "
                             f"{(end_bit + 7) // 8} bytes, have {len(payload)}")
    if num_frames == 0:
        return np.zeros((n_q, 0), dtype=np.int64)
    chunk = np.frombuffer(payload, dtype=np.uint8, count=(end_bit + 7) // 8 - first_bit // 8,
                          offset=first_bit // 8)
    bits = np.unpackbits(chunk, bitorder="little")[first_bit % 8:][: num_frames * bits_per]
    nbytes = (bits_per + 7) // 8
    rows = np.zeros((num_frames, nbytes * 8), dtype=np.uint8)
    rows[:, :bits_per] = bits.reshape(num_frames, bits_per)
    packed = np.packbits(rows, axis=1, bitorder="little")
    limit = codebook_size**n_q
    out = np.empty((n_q, num_frames), dtype=np.int64)
    if limit <= 1 << 63:
        vals = packed.view(np.uint8).copy()
        v = np.zeros(num_frames, dtype=np.uint64)
        for b in reversed(range(nbytes)):
            v = (v << np.uint64(8)) | vals[:, b].astype(np.uint64)
        if int(v.max()) >= limit:
            raise BitstreamError(f"corrupt payload: frame {start + int(np.argmax(v >= limit))} "
                                 f"holds an invalid code combination")
        k = np.uint64(codebook_size)
        for i in range(n_q):
            out[i] = (v % k).astype(np.int64)
            v //= k
        return out
    for f, row in enumerate(packed):
        v = int.from_bytes(row.tobytes(), "little")
        if v >= limit:
            raise BitstreamError(f"corrupt payload: frame {start + f} holds an invalid code "
                                 "combination")
        for i in range(n_q):
            v, out[i, f] = divmod(v, codebook_size)
    return out


def padding_is_zero(payload: bytes, num_frames: int, n_q: int, codebook_size: int) -> bool:
    """True if the bits after the last of ``num_frames`` frames, up to the byte boundary, are
    all zero (as :class:`BitPacker` writes them)."""
    used = num_frames * frame_bits(n_q, codebook_size)
    return not (used % 8 and payload[-1] >> (used % 8))
