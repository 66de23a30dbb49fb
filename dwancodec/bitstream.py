"""The ``.dwc`` container and the streaming packet format (numpy only, no torch).

Codes are stored at their information width. With ``K`` codes per codebook and ``n_q`` stages,
frame ``f`` (codes ``c[0, f] .. c[n_q - 1, f]``) becomes ONE mixed-radix integer

    v_f = sum_i c[i, f] * K**i        (0 <= v_f < K**n_q)

written in ``B = bit_length(K**n_q - 1) = ceil(n_q * log2(K))`` bits, and the payload is the
little-endian byte encoding of ``P = sum_f v_f * 2**(B * f)`` (frames back to back, no padding
between them, zero bits after the last one up to a byte boundary). Each frame costs less than
one bit more than ``n_q * log2(K)``. The byte layout is in ``docs/bitstream.md``.

File: :func:`to_bytes` / :func:`from_bytes`, :func:`write_dwc` / :func:`read_dwc`,
:class:`DwcWriter` (incremental, bounded memory), :class:`DwcFile` (parsed file; codes unpacked
lazily in blocks). Live path: :func:`encode_packet` / :func:`decode_packet`,
:class:`PacketSender`, :class:`PacketReceiver` (detects loss, reordering, duplicates;
resynchronises after a sender restart or a long outage).

Every parse error is a :class:`BitstreamError` (a ``ValueError``) naming the problem; sizes are
checked against the actual data before anything is allocated.
"""

from __future__ import annotations

import binascii
import io
import math
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

MAGIC = b"\x89DWC"
VERSION = 1
QUANTIZER_KINDS = ("fsq", "lfq", "ema", "origin")

# Fixed part of the header: magic, version, flags, header_size, sample_rate, source_rate, hop,
# kind, num_codebooks, n_q, num_levels, codebook_size, num_frames, length, identity length.
_FIXED = struct.Struct("<4sBBHIIIBBBBIIQB")
_CRC = struct.Struct("<I")
MAX_IDENTITY = 255
MAX_LEVELS = 32
MAX_HEADER = _FIXED.size + MAX_IDENTITY + 2 * MAX_LEVELS + _CRC.size
MIN_HEADER = _FIXED.size + 1 + _CRC.size
MAX_CODEBOOK_SIZE = 1 << 24
MAX_SAMPLE_RATE = 1_000_000
MAX_HOP = 1 << 20

PACKET_MAGIC = 0xD7
PACKET_VERSION = 1
_PACKET_HEAD = struct.Struct("<BBBBH")
_PACKET_CRC = struct.Struct("<H")
PACKET_OVERHEAD = _PACKET_HEAD.size + _PACKET_CRC.size
SEQ_MODULUS = 1 << 16
MAX_PACKET_FRAMES = 255
RESYNC_SPAN = 4  # PacketReceiver: stale packets in a row may skip up to 3 numbers
CHECK_BLOCK_FRAMES = 4096  # frames unpacked at a time when a whole file is verified


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


# Header ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Header:
    """What a decoder needs besides the codes. ``length`` is in samples at ``sample_rate``.

    ``model`` is the encoding model's ``Codec.identity()`` (``name@hash`` of config + weights);
    ``source_rate`` is the rate of the file that was encoded (informational, 0 if unknown);
    ``levels`` are the FSQ levels (empty for other quantizer kinds).
    """

    model: str
    sample_rate: int
    hop_length: int
    n_q: int
    num_codebooks: int
    codebook_size: int
    kind: str = "fsq"
    levels: tuple[int, ...] = ()
    num_frames: int = 0
    length: int = 0
    source_rate: int = 0
    version: int = field(default=VERSION, compare=False)

    @classmethod
    def for_codec(cls, codec: Any, n_q: int | None = None, source_rate: int = 0) -> Header:
        """A header template for ``codec`` (a :class:`~dwancodec.model.Codec`), 0 frames."""
        q = codec.config.quantizer
        return cls(
            model=codec.identity(), sample_rate=int(codec.sample_rate),
            hop_length=int(codec.hop_length),
            n_q=int(codec.num_codebooks if n_q is None else n_q),
            num_codebooks=int(codec.num_codebooks), codebook_size=int(codec.codebook_size),
            kind=q.kind, levels=tuple(int(v) for v in q.levels) if q.kind == "fsq" else (),
            source_rate=int(source_rate),
        )

    # Derived quantities
    @property
    def frame_bits(self) -> int:
        return frame_bits(self.n_q, self.codebook_size)

    @property
    def payload_bytes(self) -> int:
        return payload_bytes(self.num_frames, self.n_q, self.codebook_size)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def duration(self) -> float:
        """Seconds of audio (the original length, not the frame-padded one)."""
        return self.length / self.sample_rate

    @property
    def bitrate(self) -> float:
        """Information rate of the codes, ``frame_rate * n_q * log2(K)`` bits per second."""
        return self.frame_rate * self.n_q * math.log2(self.codebook_size)

    @property
    def packed_bitrate(self) -> float:
        """Payload rate as stored: ``frame_rate * frame_bits`` bits per second."""
        return self.frame_rate * self.frame_bits

    @property
    def header_size(self) -> int:
        return _FIXED.size + len(self.model.encode()) + 2 * len(self.levels) + _CRC.size

    @property
    def file_size(self) -> int:
        """Total bytes of the ``.dwc`` file: header + payload + payload CRC."""
        return self.header_size + self.payload_bytes + _CRC.size

    def validate(self) -> None:
        """Raise :class:`BitstreamError` if any field is out of range or inconsistent."""
        def bad(msg: str) -> BitstreamError:
            return BitstreamError(f"invalid .dwc header: {msg}")

        if self.version != VERSION:
            raise BitstreamError(
                f"unsupported .dwc format version {self.version} (this dwancodec reads version "
                f"{VERSION}); a newer dwancodec may read it"
            )
        try:
            ident = self.model.encode("ascii")
        except UnicodeEncodeError:
            raise bad("model identity is not ASCII") from None
        if not 1 <= len(ident) <= MAX_IDENTITY or not self.model.isprintable():
            raise bad(f"model identity must be 1-{MAX_IDENTITY} printable characters")
        if not 1 <= self.sample_rate <= MAX_SAMPLE_RATE:
            raise bad(f"sample rate {self.sample_rate} Hz is out of range")
        if not 0 <= self.source_rate <= 10 * MAX_SAMPLE_RATE:
            raise bad(f"source sample rate {self.source_rate} Hz is out of range")
        if not 1 <= self.hop_length <= MAX_HOP:
            raise bad(f"hop length {self.hop_length} is out of range")
        if self.kind not in QUANTIZER_KINDS:
            raise bad(f"unknown quantizer kind {self.kind!r}")
        if not 1 <= self.num_codebooks <= 255:
            raise bad(f"number of codebooks {self.num_codebooks} is out of range")
        if not 1 <= self.n_q <= self.num_codebooks:
            raise bad(f"n_q {self.n_q} is not in [1, {self.num_codebooks}]")
        if not 2 <= self.codebook_size <= MAX_CODEBOOK_SIZE:
            raise bad(f"codebook size {self.codebook_size} is out of range")
        if len(self.levels) > MAX_LEVELS:
            raise bad(f"{len(self.levels)} FSQ levels (at most {MAX_LEVELS})")
        if self.levels and (any(not 2 <= v <= 65535 for v in self.levels)
                            or math.prod(self.levels) != self.codebook_size):
            raise bad(f"FSQ levels {self.levels} do not multiply to the codebook size "
                      f"{self.codebook_size}")
        if (self.kind == "fsq") != bool(self.levels):
            raise bad("FSQ levels must be given exactly for kind 'fsq'")
        if not 0 <= self.num_frames < 1 << 32:
            raise bad(f"number of frames {self.num_frames} is out of range")
        lo = (self.num_frames - 1) * self.hop_length + 1 if self.num_frames else 0
        hi = self.num_frames * self.hop_length
        if not lo <= self.length <= hi:
            raise bad(f"original length {self.length} samples does not fit {self.num_frames} "
                      f"frames of {self.hop_length} (expected {lo}..{hi})")

    def pack(self) -> bytes:
        """Header bytes, ending with the CRC32 of everything before it."""
        self.validate()
        ident = self.model.encode("ascii")
        body = _FIXED.pack(
            MAGIC, self.version, 0, self.header_size, self.sample_rate, self.source_rate,
            self.hop_length, QUANTIZER_KINDS.index(self.kind), self.num_codebooks, self.n_q,
            len(self.levels), self.codebook_size, self.num_frames, self.length, len(ident),
        ) + ident + struct.pack(f"<{len(self.levels)}H", *self.levels)
        return body + _CRC.pack(zlib.crc32(body))

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        """Parse a header from the start of ``data`` (which may hold more bytes after it)."""
        if len(data) < 4 or data[:4] != MAGIC:
            audio = bytes(data[:4]) in (b"RIFF", b"fLaC", b"OggS", b"ID3\x03", b"ID3\x04",
                                        b"FORM", b"RF64")
            hint = "; it looks like an audio file (dwancodec encode makes a .dwc)" if audio else ""
            raise BitstreamError(
                f"not a .dwc file (magic {bytes(data[:4])!r}, expected {MAGIC!r}){hint}"
            )
        if len(data) < _FIXED.size:
            raise BitstreamError(f"truncated .dwc file: {len(data)} bytes, shorter than the "
                                 f"{_FIXED.size}-byte header")
        (_, version, flags, size, rate, src_rate, hop, kind, n_cb, n_q, n_levels, k, frames,
         length, n_ident) = _FIXED.unpack_from(data)
        if version != VERSION:
            raise BitstreamError(
                f"unsupported .dwc format version {version} (this dwancodec reads version "
                f"{VERSION}); a newer dwancodec may read it"
            )
        expected = _FIXED.size + n_ident + 2 * n_levels + _CRC.size
        if size != expected or not MIN_HEADER <= size <= MAX_HEADER:
            raise BitstreamError(f"corrupt .dwc header: header size field {size} does not match "
                                 f"its contents ({expected} bytes)")
        if len(data) < size:
            raise BitstreamError(f"truncated .dwc file: {len(data)} bytes, header needs {size}")
        (crc,) = _CRC.unpack_from(data, size - _CRC.size)
        if zlib.crc32(data[: size - _CRC.size]) != crc:
            raise BitstreamError("corrupt .dwc header: checksum mismatch")
        if flags:
            raise BitstreamError(f"unsupported .dwc header flags 0x{flags:02x}")
        if kind >= len(QUANTIZER_KINDS):
            raise BitstreamError(f"corrupt .dwc header: unknown quantizer kind {kind}")
        try:
            ident = bytes(data[_FIXED.size: _FIXED.size + n_ident]).decode("ascii")
        except UnicodeDecodeError:
            raise BitstreamError("corrupt .dwc header: model identity is not ASCII") from None
        levels = struct.unpack_from(f"<{n_levels}H", data, _FIXED.size + n_ident)
        header = cls(model=ident, sample_rate=rate, hop_length=hop, n_q=n_q,
                     num_codebooks=n_cb, codebook_size=k, kind=QUANTIZER_KINDS[kind],
                     levels=tuple(levels), num_frames=frames, length=length,
                     source_rate=src_rate)
        header.validate()
        return header

    def check_model(self, codec: Any) -> None:
        """Raise :class:`BitstreamError` unless ``codec`` is the model that wrote this stream."""
        mine = Header.for_codec(codec, min(self.n_q, codec.num_codebooks))
        diffs = [f"{name} {getattr(self, name)} (model: {getattr(mine, name)})"
                 for name in ("sample_rate", "hop_length", "num_codebooks", "codebook_size",
                              "kind", "levels")
                 if getattr(self, name) != getattr(mine, name)]
        if diffs or self.model != mine.model:
            detail = f"; differences: {', '.join(diffs)}" if diffs else ""
            raise BitstreamError(
                f"the stream was encoded with model {self.model}, but the loaded model is "
                f"{mine.model}{detail}; decode with the same model bundle (--model)"
            )

    def describe(self) -> dict[str, Any]:
        return {
            "format_version": self.version, "model": self.model,
            "sample_rate": self.sample_rate, "source_rate": self.source_rate,
            "hop_length": self.hop_length, "frame_rate": self.frame_rate,
            "quantizer": self.kind, "levels": list(self.levels),
            "codebook_size": self.codebook_size, "n_q": self.n_q,
            "num_codebooks": self.num_codebooks, "num_frames": self.num_frames,
            "length_samples": self.length, "duration_s": self.duration,
            "frame_bits": self.frame_bits, "bitrate_bps": self.bitrate,
            "packed_bitrate_bps": self.packed_bitrate, "header_bytes": self.header_size,
            "payload_bytes": self.payload_bytes, "file_bytes": self.file_size,
        }


# Bit packing ----------------------------------------------------------------------------------
def _check_codes(codes: np.ndarray, n_q: int | None, codebook_size: int) -> np.ndarray:
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
        c = _check_codes(codes, self.n_q, self.codebook_size)
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


# Files ----------------------------------------------------------------------------------------
class DwcWriter:
    """Write a ``.dwc`` stream incrementally to a seekable binary file.

    ``header`` is a template (``num_frames``/``length`` are filled in by :meth:`finish`)::

        with open(path, "wb") as f:
            w = DwcWriter(f, Header.for_codec(codec, n_q))
            for codes in blocks:            # [n_q, f] each
                w.write(codes)
            w.finish(length=num_samples)    # rewrites the header in place
    """

    def __init__(self, file: BinaryIO, header: Header) -> None:
        if not file.seekable():
            raise ValueError("DwcWriter needs a seekable file (the header is rewritten at the "
                             "end)")
        self.file = file
        self.header = replace(header, num_frames=0, length=0)
        self.header.validate()
        self._start = file.tell()
        self._packer = BitPacker(header.n_q, header.codebook_size)
        self._crc = 0
        self._finished = False
        file.write(self.header.pack())

    @property
    def num_frames(self) -> int:
        return self._packer.num_frames

    def _emit(self, data: bytes) -> None:
        self._crc = zlib.crc32(data, self._crc)
        self.file.write(data)

    def write(self, codes: np.ndarray) -> None:
        """Append frames ``[n_q, f]``."""
        if self._finished:
            raise ValueError("DwcWriter is finished")
        self._emit(self._packer.push(codes))

    def finish(self, length: int | None = None) -> Header:
        """Write the trailer and the final header; ``length`` defaults to ``frames * hop``."""
        n = self.num_frames
        length = n * self.header.hop_length if length is None else int(length)
        final = replace(self.header, num_frames=n, length=length)
        final.validate()
        self._emit(self._packer.flush())
        self.file.write(_CRC.pack(self._crc))
        end = self.file.tell()
        self.file.seek(self._start)
        self.file.write(final.pack())
        self.file.seek(end)
        self._finished = True
        self.header = final
        return final


@dataclass(frozen=True)
class DwcFile:
    """A parsed ``.dwc`` file: header, both checksums, padding and every frame value verified
    (:meth:`parse`). Codes are unpacked on demand."""

    header: Header
    payload: bytes

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> DwcFile:
        """Validate ``data`` completely (header, sizes, both checksums, padding bits, every
        frame a valid code combination) before returning."""
        data = bytes(data)
        header = Header.unpack(data)
        expected = header.file_size
        if len(data) < expected:
            raise BitstreamError(
                f"truncated .dwc file: {len(data)} bytes, the header announces {expected} "
                f"({header.num_frames} frames)"
            )
        if len(data) > expected:
            raise BitstreamError(f"corrupt .dwc file: {len(data) - expected} unexpected bytes "
                                 f"after the end of the stream")
        payload = data[header.header_size: expected - _CRC.size]
        (crc,) = _CRC.unpack_from(data, expected - _CRC.size)
        if zlib.crc32(payload) != crc:
            raise BitstreamError("corrupt .dwc file: payload checksum mismatch")
        used = header.num_frames * header.frame_bits
        if used % 8 and payload[-1] >> (used % 8):
            raise BitstreamError("corrupt .dwc file: non-zero padding bits")
        for start in range(0, header.num_frames, CHECK_BLOCK_FRAMES):  # every frame value
            unpack_codes(payload, header.n_q, header.codebook_size,
                         min(CHECK_BLOCK_FRAMES, header.num_frames - start), start)
        return cls(header, payload)

    def codes(self) -> np.ndarray:
        """All codes ``[n_q, num_frames]`` int64."""
        h = self.header
        return unpack_codes(self.payload, h.n_q, h.codebook_size, h.num_frames)

    def iter_codes(self, block_frames: int = 500) -> Iterator[np.ndarray]:
        """Codes in blocks of ``block_frames`` frames, ``[n_q, f]`` each."""
        if block_frames < 1:
            raise ValueError("block_frames must be >= 1")
        h = self.header
        for start in range(0, h.num_frames, block_frames):
            n = min(block_frames, h.num_frames - start)
            yield unpack_codes(self.payload, h.n_q, h.codebook_size, n, start)


def to_bytes(header: Header, codes: np.ndarray, length: int | None = None) -> bytes:
    """A complete ``.dwc`` file in memory for codes ``[n_q, F]`` (``header`` is a template)."""
    buf = io.BytesIO()
    w = DwcWriter(buf, header)
    w.write(codes)
    w.finish(length)
    return buf.getvalue()


def from_bytes(data: bytes | bytearray | memoryview) -> tuple[Header, np.ndarray]:
    """Parse a complete ``.dwc`` file: ``(header, codes [n_q, F])``."""
    f = DwcFile.parse(data)
    return f.header, f.codes()


def write_dwc(path: str | Path, header: Header, codes: np.ndarray,
              length: int | None = None) -> Header:
    """Write codes ``[n_q, F]`` to ``path``; returns the final header."""
    with open(path, "wb") as f:
        w = DwcWriter(f, header)
        w.write(codes)
        return w.finish(length)


def read_dwc(path: str | Path) -> DwcFile:
    """Read and verify a ``.dwc`` file. The size announced by the header is checked against the
    file size before the payload is read, so a corrupt header never causes a big allocation."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a directory, not a .dwc file")
    size = os.path.getsize(p)
    with open(p, "rb") as f:
        head = f.read(MAX_HEADER)
        try:
            header = Header.unpack(head)
        except BitstreamError as e:
            raise BitstreamError(f"{p}: {e}") from None
        if size < header.file_size:
            raise BitstreamError(f"truncated .dwc file {p}: {size} bytes, the header announces "
                                 f"{header.file_size} ({header.num_frames} frames)")
        if size > header.file_size:
            raise BitstreamError(f"corrupt .dwc file {p}: {size - header.file_size} unexpected "
                                 f"bytes after the end of the stream ({header.num_frames} "
                                 "frames)")
        f.seek(0)
        data = f.read()
    try:
        return DwcFile.parse(data)
    except BitstreamError as e:
        raise BitstreamError(f"{p}: {e}") from None


def _read_up_to(f: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes from ``f``, fewer only at end of file (a pipe returns short reads)."""
    parts, got = [], 0
    while got < n:
        b = f.read(n - got)
        if not b:
            break
        parts.append(b)
        got += len(b)
    return b"".join(parts)


def read_dwc_from(f: BinaryIO, name: str = "stdin") -> DwcFile:
    """Read and verify a ``.dwc`` stream from a binary file object (a pipe: not seekable).

    As with :func:`read_dwc`, the header is parsed first and no more bytes than it announces
    are read (one more, to detect trailing data), so a corrupt header never causes a big
    allocation; ``name`` is used in messages.
    """
    head = _read_up_to(f, MAX_HEADER)
    try:
        header = Header.unpack(head)
    except BitstreamError as e:
        raise BitstreamError(f"{name}: {e}") from None
    rest = _read_up_to(f, max(0, header.file_size - len(head)) + 1)
    data = head + rest
    if len(data) < header.file_size:
        raise BitstreamError(f"truncated .dwc file {name}: {len(data)} bytes, the header "
                             f"announces {header.file_size} ({header.num_frames} frames)")
    if len(data) > header.file_size:
        raise BitstreamError(f"corrupt .dwc file {name}: unexpected bytes after the end of the "
                             f"stream ({header.num_frames} frames)")
    try:
        return DwcFile.parse(data)
    except BitstreamError as e:
        raise BitstreamError(f"{name}: {e}") from None


# Packets --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Packet:
    """One decoded packet: sequence number (mod 2**16) and codes ``[n_q, f]``."""

    seq: int
    codes: np.ndarray


def encode_packet(codes: np.ndarray, seq: int, codebook_size: int) -> bytes:
    """Codes ``[n_q, f]`` (``1 <= f <= 255``) -> one packet; ``seq`` is taken mod 2**16.

    Layout: magic ``0xD7``, version, n_q, f, seq (u16 LE), payload (frames packed as in a
    ``.dwc`` file), CRC-16/CCITT of all preceding bytes (u16 LE).
    """
    c = _check_codes(codes, None, codebook_size)
    n_q, f = c.shape
    if not 1 <= n_q <= 255:
        raise ValueError(f"a packet holds 1-255 stages, got {n_q}")
    if not 1 <= f <= MAX_PACKET_FRAMES:
        raise ValueError(f"a packet holds 1-{MAX_PACKET_FRAMES} frames, got {f}")
    body = _PACKET_HEAD.pack(PACKET_MAGIC, PACKET_VERSION, n_q, f, seq % SEQ_MODULUS)
    body += pack_codes(c, codebook_size)
    return body + _PACKET_CRC.pack(binascii.crc_hqx(body, 0xFFFF))


def decode_packet(data: bytes | bytearray | memoryview, codebook_size: int,
                  num_codebooks: int | None = None) -> Packet:
    """Parse one packet; :class:`BitstreamError` on any damage (size, magic, version, CRC)."""
    data = bytes(data)
    if len(data) < PACKET_OVERHEAD:
        raise BitstreamError(f"packet too short: {len(data)} bytes (at least "
                             f"{PACKET_OVERHEAD + 1})")
    magic, version, n_q, f, seq = _PACKET_HEAD.unpack_from(data)
    if magic != PACKET_MAGIC:
        raise BitstreamError(f"not a dwancodec packet (first byte 0x{magic:02x}, expected "
                             f"0x{PACKET_MAGIC:02x})")
    if version != PACKET_VERSION:
        raise BitstreamError(f"unsupported packet version {version} (this dwancodec reads "
                             f"{PACKET_VERSION})")
    if n_q == 0 or (num_codebooks is not None and n_q > num_codebooks):
        raise BitstreamError(f"packet has n_q={n_q}; the model has 1-{num_codebooks} stages")
    if f == 0:
        raise BitstreamError("packet carries no frames")
    if not 2 <= codebook_size <= MAX_CODEBOOK_SIZE:
        raise ValueError(f"codebook size {codebook_size} is out of range")
    expected = _PACKET_HEAD.size + payload_bytes(f, n_q, codebook_size) + _PACKET_CRC.size
    if len(data) != expected:
        raise BitstreamError(f"packet size {len(data)} does not match its header "
                             f"({n_q} stages x {f} frames -> {expected} bytes)")
    (crc,) = _PACKET_CRC.unpack_from(data, expected - _PACKET_CRC.size)
    if binascii.crc_hqx(data[: expected - _PACKET_CRC.size], 0xFFFF) != crc:
        raise BitstreamError(f"packet {seq}: checksum mismatch")
    payload = data[_PACKET_HEAD.size: expected - _PACKET_CRC.size]
    used = f * frame_bits(n_q, codebook_size)
    if used % 8 and payload[-1] >> (used % 8):
        raise BitstreamError(f"packet {seq}: non-zero padding bits")
    return Packet(seq, unpack_codes(payload, n_q, codebook_size, f))


class PacketSender:
    """Groups frames into packets of ``frames_per_packet`` and numbers them.

    ``push([n_q, f])`` returns the packets completed; ``flush()`` sends a last short packet.
    """

    def __init__(self, codebook_size: int, frames_per_packet: int = 1, start_seq: int = 0
                 ) -> None:
        if not 1 <= frames_per_packet <= MAX_PACKET_FRAMES:
            raise ValueError(f"frames_per_packet must be in [1, {MAX_PACKET_FRAMES}]")
        self.codebook_size = codebook_size
        self.frames_per_packet = frames_per_packet
        self.seq = start_seq % SEQ_MODULUS
        self._pending: np.ndarray | None = None

    def push(self, codes: np.ndarray) -> list[bytes]:
        c = _check_codes(codes, None, self.codebook_size)
        buf = c if self._pending is None else np.concatenate([self._pending, c], axis=1)
        out = []
        n = self.frames_per_packet
        done = buf.shape[1] // n * n
        for s in range(0, done, n):
            out.append(encode_packet(buf[:, s: s + n], self.seq, self.codebook_size))
            self.seq = (self.seq + 1) % SEQ_MODULUS
        self._pending = buf[:, done:]
        return out

    def flush(self) -> list[bytes]:
        if self._pending is None or self._pending.shape[1] == 0:
            return []
        pkt = encode_packet(self._pending, self.seq, self.codebook_size)
        self.seq = (self.seq + 1) % SEQ_MODULUS
        self._pending = None
        return [pkt]


@dataclass(frozen=True)
class Received:
    """What :meth:`PacketReceiver.receive` made of one packet.

    status: ``"ok"`` (the next expected packet), ``"gap"`` (in order after ``lost_before``
    missing packets), ``"late"`` (a packet earlier reported missing: reordered),
    ``"duplicate"`` (the same bytes as a packet already received), ``"stale"`` (outside the
    window, or new bytes under a number already received: not played; see the resync rule of
    :class:`PacketReceiver`), ``"resync"`` (the receiver jumped to a new sequence position with
    this packet: play it; ``lost_before`` packets were skipped on a forward jump),
    ``"corrupt"`` (could not be parsed; ``error`` says why, ``codes`` is None).
    Play the codes of ``ok``, ``gap``, ``late`` and ``resync`` packets.
    """

    status: str
    seq: int | None
    codes: np.ndarray | None
    lost_before: int = 0
    error: str | None = None


@dataclass
class ReceiverStats:
    received: int = 0
    lost: int = 0          # packets currently missing (a late arrival is taken off again)
    reordered: int = 0     # packets that arrived after a later one
    duplicates: int = 0
    corrupt: int = 0
    stale: int = 0
    resyncs: int = 0       # jumps to a new sequence position (sender restart, long outage)


class PacketReceiver:
    """Parses packets and tracks sequence numbers (mod 2**16) within a window.

    Rule (``window`` W, default 1024 packets; ``resync_after`` R, default 3):

    - a packet ``0 <= d < W`` ahead of the expected number is in order: ``ok``, or ``gap``
      after marking the ``d`` skipped numbers missing (at most W are remembered);
    - a missing packet that arrives later is ``late`` (reordered, taken off the lost count);
      a byte-identical copy of one of the last W packets is a ``duplicate``;
    - anything else (a packet W or more ahead, older than the window, or new bytes under a
      number already received) is ``stale``: one stray packet never moves the receiver. When
      R stale packets in a row lie within :data:`RESYNC_SPAN` numbers of each other (a sender
      that restarted at 0, or came back after an outage longer than the window; their order
      does not matter), the R-th is reported ``resync`` and the receiver continues after the
      highest of them; numbers inside the run not received are marked missing (they may still
      arrive ``late``) and a forward jump counts the skipped packets as lost. Any in-order or
      late packet ends such a run.

    ``history`` is the old name of ``window``.
    """

    def __init__(self, codebook_size: int, num_codebooks: int | None = None,
                 history: int = 1024, resync_after: int = 3, window: int | None = None
                 ) -> None:
        window = history if window is None else window
        if isinstance(window, bool) or not isinstance(window, int) \
                or not 1 <= window <= SEQ_MODULUS // 4:
            raise ValueError(f"window must be an integer in [1, {SEQ_MODULUS // 4}], got "
                             f"{window!r}")
        if isinstance(resync_after, bool) or not isinstance(resync_after, int) \
                or not 1 <= resync_after <= 64:
            raise ValueError(f"resync_after must be an integer in [1, 64], got "
                             f"{resync_after!r}")
        self.codebook_size = codebook_size
        self.num_codebooks = num_codebooks
        self.window = self.history = window
        self.resync_after = resync_after
        self.stats = ReceiverStats()
        self._expected: int | None = None
        self._missing: dict[int, None] = {}
        self._seen: dict[int, int] = {}     # seq -> CRC32 of the packet, the last W accepted
        self._run: dict[int, int] = {}      # seq -> CRC32 of the stale packets in a row

    def _mark_seen(self, seq: int, crc: int) -> None:
        self._seen.pop(seq, None)
        self._seen[seq] = crc
        while len(self._seen) > self.window:
            self._seen.pop(next(iter(self._seen)))

    def _accept(self, seq: int, crc: int, ahead: int) -> None:
        for k in range(max(0, ahead - self.window), ahead):
            self._missing[(self._expected + k) % SEQ_MODULUS] = None  # type: ignore[operator]
        while len(self._missing) > self.window:
            self._missing.pop(next(iter(self._missing)))
        self._missing.pop(seq, None)
        self.stats.lost += ahead
        self.stats.received += 1
        self._expected = (seq + 1) % SEQ_MODULUS
        self._mark_seen(seq, crc)
        self._run.clear()

    def receive(self, data: bytes) -> Received:
        """Parse one packet and classify it (see the class docstring)."""
        try:
            pkt = decode_packet(data, self.codebook_size, self.num_codebooks)
        except BitstreamError as e:
            self.stats.corrupt += 1
            return Received("corrupt", None, None, error=str(e))
        seq, crc = pkt.seq, zlib.crc32(bytes(data))
        if self._expected is None:
            self._expected = seq
        ahead = (seq - self._expected) % SEQ_MODULUS
        if ahead < self.window:  # in order, possibly after a gap
            self._accept(seq, crc, ahead)
            return Received("gap" if ahead else "ok", seq, pkt.codes, lost_before=ahead)
        if seq in self._missing:
            del self._missing[seq]
            self.stats.lost -= 1
            self.stats.reordered += 1
            self.stats.received += 1
            self._mark_seen(seq, crc)
            self._run.clear()
            return Received("late", seq, pkt.codes)
        if self._seen.get(seq) == crc or self._run.get(seq) == crc:
            self.stats.duplicates += 1
            return Received("duplicate", seq, pkt.codes)
        return self._stale(seq, crc, pkt.codes)

    def _stale(self, seq: int, crc: int, codes: np.ndarray) -> Received:
        def near(a: int, b: int) -> bool:
            return 0 < min((a - b) % SEQ_MODULUS, (b - a) % SEQ_MODULUS) <= RESYNC_SPAN

        if self._run and not any(near(seq, m) for m in self._run):
            self._run.clear()  # not part of the run: it starts again here
        self._run[seq] = crc
        if len(self._run) < self.resync_after:
            self.stats.stale += 1
            return Received("stale", seq, codes)
        # The run is a few numbers wide: order it from its first (earliest) member.
        anchor = next(iter(self._run))
        offsets = {(m - anchor + SEQ_MODULUS // 2) % SEQ_MODULUS - SEQ_MODULUS // 2: m
                   for m in self._run}
        first, last = offsets[min(offsets)], offsets[max(offsets)]
        width = (last - first) % SEQ_MODULUS + 1
        jump = (first - self._expected) % SEQ_MODULUS  # type: ignore[operator]
        skipped = jump if jump < SEQ_MODULUS // 2 else 0  # a forward jump: those were lost
        run = dict(self._run)
        self._missing.clear()
        self._seen.clear()
        self._expected = (last + 1) % SEQ_MODULUS
        for s, c in run.items():
            self._mark_seen(s, c)
        inside = 0  # numbers within the run not received yet: missing, may still come late
        for k in range(width):
            s = (first + k) % SEQ_MODULUS
            if s not in run:
                self._missing[s] = None
                inside += 1
        self._run.clear()
        self.stats.resyncs += 1
        self.stats.received += 1
        self.stats.lost += skipped + inside
        return Received("resync", seq, codes, lost_before=skipped + inside)
