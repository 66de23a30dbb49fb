"""The ``.dwc`` file: :class:`Header`, :class:`DwcWriter` (incremental, bounded memory),
:class:`DwcFile` (parsed file; codes unpacked lazily in blocks), :func:`to_bytes` /
:func:`from_bytes`, :func:`write_dwc` / :func:`read_dwc` / :func:`read_dwc_from` (numpy only).

The payload is packed as in :mod:`~dwancodec.bitstream.bits` (formats 1 and 2, fixed rate) or
entropy-coded as in :mod:`~dwancodec.bitstream.entropy` (format 3); the byte layout is in
``docs/bitstream.md``. Every parse error is a :class:`~dwancodec.bitstream.bits.BitstreamError`
naming the problem; sizes are checked against the actual data before anything is allocated.
"""

from __future__ import annotations

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

from .bits import (
    MAX_CODEBOOK_SIZE,
    BitPacker,
    BitstreamError,
    check_codes,
    frame_bits,
    padding_is_zero,
    payload_bytes,
    unpack_codes,
)
from .entropy import PRECISION, EntropyTables, shipped_tables

MAGIC = b"\x89DWC"
VERSION = 2           # fixed rate, written when the codes identity is known (format 1 otherwise)
ENTROPY_VERSION = 3   # entropy-coded payload (format 2's header + tables, block size, bytes)
VERSIONS = (1, 2, 3)  # read; 2 adds the codes identity after the model identity
CODES_BYTES = 8       # the codes identity: 16 hex digits stored as 8 bytes
ENTROPY_BYTES = 8     # the entropy tables' identity, likewise
DEFAULT_ENTROPY_BLOCK = 50  # frames per entropy-coded block: 1 s of the default model
_ENTROPY = struct.Struct("<8sHI")  # tables identity, block_frames, payload bytes
QUANTIZER_KINDS = ("fsq", "lfq", "ema", "origin")

# Fixed part of the header: magic, version, flags, header_size, sample_rate, source_rate, hop,
# kind, num_codebooks, n_q, num_levels, codebook_size, num_frames, length, identity length.
_FIXED = struct.Struct("<4sBBHIIIBBBBIIQB")
_CRC = struct.Struct("<I")
MAX_IDENTITY = 255
MAX_COMPATIBLE = 64   # identities in a model's compatible list (safetensors or ONNX sidecar)
MAX_LEVELS = 32
MAX_HEADER = (_FIXED.size + MAX_IDENTITY + CODES_BYTES + 2 * MAX_LEVELS + _ENTROPY.size
              + _CRC.size)
MIN_HEADER = _FIXED.size + 1 + _CRC.size
MAX_SAMPLE_RATE = 1_000_000
MAX_HOP = 1 << 20
CHECK_BLOCK_FRAMES = 4096  # frames unpacked at a time when a whole file is verified


def _check_version(version: int) -> None:
    if version not in VERSIONS:
        raise BitstreamError(
            f"unsupported .dwc format version {version} (this dwancodec reads versions "
            f"{', '.join(map(str, VERSIONS))}); a newer dwancodec may read it"
        )


def _codes_size(version: int) -> int:
    return CODES_BYTES if version >= 2 else 0


def _entropy_size(version: int) -> int:
    return _ENTROPY.size if version >= ENTROPY_VERSION else 0


def entropy_payload_bounds(num_frames: int, n_q: int, num_digits: int,
                           block_frames: int) -> tuple[int, int]:
    """The fewest and most bytes an entropy-coded payload of ``num_frames`` frames can take:
    4 bytes of state per block, and at most ``PRECISION`` bits per digit (the rarest symbol)
    plus one byte per block for the rounding. 100 frames of 8 stages of 5 digits in blocks of
    50 take 8 to 7510 bytes:

    >>> entropy_payload_bounds(100, 8, 5, 50)
    (8, 7510)
    """
    blocks = -(-num_frames // block_frames) if block_frames else 0
    most = 4 * blocks + blocks + (num_frames * n_q * num_digits * PRECISION + 7) // 8
    return 4 * blocks, most



# Header ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Header:
    """What a decoder needs besides the codes. ``length`` is in samples at ``sample_rate``.

    ``model`` is the encoding model's ``Codec.identity()`` (``name@hash`` of config + weights);
    ``codes`` its ``Codec.codes_identity()`` (16 hex digits naming what the codes mean), or
    ``""`` where unknown: the header is then written in format 1, which has no such field;
    ``source_rate`` is the rate of the file that was encoded (informational, 0 if unknown);
    ``levels`` are the FSQ levels (empty for other quantizer kinds).

    Entropy-coded streams (format 3) add ``entropy``, the identity of the tables that coded
    them (:meth:`EntropyTables.identity`), ``block_frames`` (frames per coded block) and
    ``entropy_bytes`` (the payload's size, which the codes alone do not fix); all three are
    ``""`` / 0 for the fixed-rate formats.
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
    codes: str = ""
    entropy: str = ""
    block_frames: int = 0
    entropy_bytes: int = 0

    @property
    def version(self) -> int:
        """Format version of this header: 3 entropy-coded, else 2 with a codes identity, 1
        without."""
        if self.entropy:
            return ENTROPY_VERSION
        return VERSION if self.codes else 1

    def entropy_coded(self, tables: EntropyTables,
                      block_frames: int = DEFAULT_ENTROPY_BLOCK) -> Header:
        """This header (a template) for a stream entropy-coded with ``tables`` (format 3)."""
        return replace(self, entropy=tables.identity(), block_frames=int(block_frames),
                       entropy_bytes=0)

    @property
    def num_blocks(self) -> int:
        """Entropy-coded blocks in the payload (0 for the fixed-rate formats)."""
        return -(-self.num_frames // self.block_frames) if self.entropy else 0

    @classmethod
    def for_engine(cls, engine: Any, n_q: int | None = None, source_rate: int = 0) -> Header:
        """A header template (0 frames) for the streams ``engine`` writes: the one rule for the
        torch and the ONNX Runtime engine alike, so both write the same header for one model.

        ``engine``: an :class:`~dwancodec.engine.Engine`, or anything
        :func:`~dwancodec.engine.as_engine` takes (a torch ``Codec``, an ``OnnxCodec``, an
        exported folder). The header names the model (``engine.identity``) and what its codes
        mean (``engine.codes_identity``): format 2, or format 1 where the codes identity is
        ``""`` (graphs exported before it existed). ``n_q``: stages used (default all).
        """
        from ..engine import as_engine  # on use: reading .dwc files needs no engine module

        e = as_engine(engine)
        q = getattr(e, "quantizer", None) or {}
        kind = str(q.get("kind", "fsq"))
        return cls(
            model=str(e.identity), sample_rate=int(e.sample_rate), hop_length=int(e.hop_length),
            n_q=int(e.num_codebooks if n_q is None else n_q),
            num_codebooks=int(e.num_codebooks), codebook_size=int(e.codebook_size),
            kind=kind, levels=tuple(int(v) for v in q.get("levels") or ()) if kind == "fsq"
            else (), source_rate=int(source_rate), codes=str(e.codes_identity),
        )

    # Derived quantities
    @property
    def frame_bits(self) -> int:
        return frame_bits(self.n_q, self.codebook_size)

    @property
    def payload_bytes(self) -> int:
        if self.entropy:
            return self.entropy_bytes
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
        """Payload rate as stored: ``frame_rate * frame_bits`` bits per second (fixed rate);
        for an entropy-coded stream, its payload bits over its duration in frames."""
        if self.entropy:
            return 8 * self.entropy_bytes * self.frame_rate / max(1, self.num_frames)
        return self.frame_rate * self.frame_bits

    @property
    def header_size(self) -> int:
        return (_FIXED.size + len(self.model.encode()) + _codes_size(self.version)
                + 2 * len(self.levels) + _entropy_size(self.version) + _CRC.size)

    @property
    def file_size(self) -> int:
        """Total bytes of the ``.dwc`` file: header + payload + payload CRC."""
        return self.header_size + self.payload_bytes + _CRC.size

    def validate(self) -> None:
        """Raise :class:`BitstreamError` if any field is out of range or inconsistent."""
        def bad(msg: str) -> BitstreamError:
            return BitstreamError(f"invalid .dwc header: {msg}")

        _check_version(self.version)
        try:
            self.model.encode("ascii")
        except UnicodeEncodeError:
            raise bad("model identity is not ASCII") from None
        if not is_model_identity(self.model):
            raise bad(f"model identity must be 1-{MAX_IDENTITY} printable characters")
        if self.codes and not is_codes_identity(self.codes):
            raise bad(f"codes identity {self.codes!r:.40} is not {2 * CODES_BYTES} lower-case "
                      "hex digits")
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
        if self.entropy:
            if not is_codes_identity(self.entropy):
                raise bad(f"entropy tables identity {self.entropy!r:.40} is not "
                          f"{2 * ENTROPY_BYTES} lower-case hex digits")
            if not self.codes:
                raise bad("an entropy-coded stream needs a codes identity")
            if self.kind != "fsq":
                raise bad(f"entropy coding is for FSQ codes, not {self.kind!r}")
            if not 1 <= self.block_frames <= 65535:
                raise bad(f"entropy block of {self.block_frames} frames (1..65535)")
            lo_b, hi_b = entropy_payload_bounds(self.num_frames, self.n_q, len(self.levels),
                                                self.block_frames)
            if not lo_b <= self.entropy_bytes <= hi_b:
                raise bad(f"entropy-coded payload of {self.entropy_bytes} bytes cannot hold "
                          f"{self.num_frames} frames (expected {lo_b}..{hi_b})")
        elif self.block_frames or self.entropy_bytes:
            raise bad("entropy block size or payload size without entropy tables")

    def pack(self) -> bytes:
        """Header bytes, ending with the CRC32 of everything before it."""
        self.validate()
        ident = self.model.encode("ascii")
        body = _FIXED.pack(
            MAGIC, self.version, 0, self.header_size, self.sample_rate, self.source_rate,
            self.hop_length, QUANTIZER_KINDS.index(self.kind), self.num_codebooks, self.n_q,
            len(self.levels), self.codebook_size, self.num_frames, self.length, len(ident),
        ) + ident + bytes.fromhex(self.codes) + struct.pack(f"<{len(self.levels)}H",
                                                             *self.levels)
        if self.entropy:
            body += _ENTROPY.pack(bytes.fromhex(self.entropy), self.block_frames,
                                  self.entropy_bytes)
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
        _check_version(version)
        n_codes = _codes_size(version)
        expected = (_FIXED.size + n_ident + n_codes + 2 * n_levels + _entropy_size(version)
                    + _CRC.size)
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
        at = _FIXED.size + n_ident
        codes = bytes(data[at: at + n_codes]).hex()
        levels = struct.unpack_from(f"<{n_levels}H", data, at + n_codes)
        entropy, block_frames, entropy_bytes = "", 0, 0
        if version >= ENTROPY_VERSION:
            raw, block_frames, entropy_bytes = _ENTROPY.unpack_from(
                data, at + n_codes + 2 * n_levels)
            entropy = raw.hex()
        header = cls(model=ident, sample_rate=rate, hop_length=hop, n_q=n_q,
                     num_codebooks=n_cb, codebook_size=k, kind=QUANTIZER_KINDS[kind],
                     levels=tuple(levels), num_frames=frames, length=length,
                     source_rate=src_rate, codes=codes, entropy=entropy,
                     block_frames=block_frames, entropy_bytes=entropy_bytes)
        header.validate()
        return header

    @classmethod
    def for_file(cls, engine: Any, n_q: int | None = None, source_rate: int = 0,
                 entropy: bool = True) -> tuple[Header, EntropyTables | None]:
        """The header template and entropy tables of a ``.dwc`` file ``engine`` writes, the one
        rule of ``encode``, ``demo`` and the quality benchmark: :meth:`for_engine`'s header,
        entropy-coded (format 3) with the engine's ``entropy_tables`` where it has them, it
        names its codes identity and ``entropy`` is set; else fixed-rate, with ``None``."""
        from ..engine import as_engine

        e = as_engine(engine)
        header = cls.for_engine(e, n_q, source_rate)
        tables = getattr(e, "entropy_tables", None) if entropy and header.codes else None
        return (header if tables is None else header.entropy_coded(tables)), tables

    def check_model(self, engine: Any) -> bool:
        """Raise :class:`BitstreamError` unless ``engine`` decodes this stream; return ``True``
        if it is the model that wrote it, ``False`` if it is another model with the same codes
        (a newer decoder; see :func:`decodes`).

        ``engine``: as in :meth:`for_engine` (an engine, a torch ``Codec``, an ``OnnxCodec``);
        its ``compatible_identities`` (the bundle's or the sidecar's ``compatible`` list; none
        where it has no such attribute) admit format-1 streams of earlier models.
        """
        from ..engine import as_engine

        e = as_engine(engine)  # identities hashed once, here (a torch engine hashes weights)
        mine = Header.for_engine(e, min(self.n_q, int(e.num_codebooks)))
        diffs = [f"{name} {getattr(self, name)} (model: {getattr(mine, name)})"
                 for name in ("sample_rate", "hop_length", "num_codebooks", "codebook_size",
                              "kind", "levels")
                 if getattr(self, name) != getattr(mine, name)]
        compatible = tuple(getattr(e, "compatible_identities", ()) or ())
        same = decodes(self, mine.model, mine.codes, compatible)
        if diffs or same is None:
            detail = f"; differences: {', '.join(diffs)}" if diffs else ""
            codes = (f" (codes {self.codes}; the model's codes are {mine.codes or 'unknown'})"
                     if self.codes else "")
            raise BitstreamError(
                f"the stream was encoded with model {self.model}{codes}, but the loaded model "
                f"is {mine.model}{detail}; decode with the same model bundle (--model)"
            )
        return same

    def describe(self) -> dict[str, Any]:
        return {
            "format_version": self.version, "model": self.model, "codes": self.codes or None,
            "sample_rate": self.sample_rate, "source_rate": self.source_rate,
            "hop_length": self.hop_length, "frame_rate": self.frame_rate,
            "quantizer": self.kind, "levels": list(self.levels),
            "codebook_size": self.codebook_size, "n_q": self.n_q,
            "num_codebooks": self.num_codebooks, "num_frames": self.num_frames,
            "length_samples": self.length, "duration_s": self.duration,
            "frame_bits": self.frame_bits, "bitrate_bps": self.bitrate,
            "packed_bitrate_bps": self.packed_bitrate, "header_bytes": self.header_size,
            "payload_bytes": self.payload_bytes, "file_bytes": self.file_size,
            "entropy_tables": self.entropy or None,
            "entropy_block_frames": self.block_frames or None,
        }


def is_model_identity(text: object) -> bool:
    """Whether ``text`` can name a model in a header: 1-255 printable ASCII characters
    (``Codec.identity()`` writes ``name@`` + 16 hex digits)."""
    return (isinstance(text, str) and 1 <= len(text) <= MAX_IDENTITY and text.isascii()
            and text.isprintable())


def check_compatible(items: object, what: str) -> tuple[str, ...]:
    """``items`` as a ``compatible`` list (identities of earlier models whose format-1 streams a
    model decodes): a list of at most :data:`MAX_COMPATIBLE` model identities
    (:func:`is_model_identity`). The one check for the safetensors metadata and the ONNX
    sidecar; ``ValueError`` starting with ``what`` (the file and field) otherwise."""
    if (not isinstance(items, list) or len(items) > MAX_COMPATIBLE
            or not all(is_model_identity(i) for i in items)):
        raise ValueError(f"{what} must be a JSON list of at most {MAX_COMPATIBLE} model "
                         f"identities (1-{MAX_IDENTITY} printable ASCII characters each), got "
                         f"{items!r:.80}")
    return tuple(items)


def is_codes_identity(text: str) -> bool:
    """Whether ``text`` is a codes identity as ``Codec.codes_identity()`` writes it: 16
    lower-case hex digits (the header stores them as 8 bytes)."""
    return len(text) == 2 * CODES_BYTES and all(c in "0123456789abcdef" for c in text)


def decodes(header: Header, identity: str, codes: str,
            compatible: tuple[str, ...] = ()) -> bool | None:
    """Whether a model decodes the stream ``header`` describes (geometry aside): ``True`` if it
    wrote it (same ``identity``), ``False`` if it reads the same codes, ``None`` if it does not.

    Same codes: a format-2 stream whose codes identity equals the model's ``codes``, or a
    format-1 stream (no codes identity) written by one of the earlier models the model lists
    as ``compatible`` (``compatible_identities`` of a ``Codec``, an ``OnnxCodec`` or an
    engine: the bundle's safetensors metadata or the ONNX sidecar). Example: the default
    ``dwancodec-16k@5543c1de...`` lists ``dwancodec-16k@78628eb3...`` and
    ``dwancodec-16k@2f8e8507...``, whose encoder it shares, so it decodes their format-1 files.
    """
    if header.model == identity:
        return True
    if header.codes:
        return False if codes and header.codes == codes else None
    return False if header.model in compatible else None


# Files ----------------------------------------------------------------------------------------
def _check_size(header: Header, size: int, name: str = "", extra_known: bool = True) -> None:
    """A stream of ``size`` bytes must be exactly the file ``header`` announces (``name``, if
    given, goes into the message; ``extra_known=False``: only one byte past the end was read)."""
    where = f" {name}" if name else ""
    if size < header.file_size:
        raise BitstreamError(f"truncated .dwc file{where}: {size} bytes, the header announces "
                             f"{header.file_size} ({header.num_frames} frames)")
    if size > header.file_size:
        extra = f"{size - header.file_size} " if extra_known else ""
        raise BitstreamError(f"corrupt .dwc file{where}: {extra}unexpected bytes after the end "
                             f"of the stream ({header.num_frames} frames)")


class DwcWriter:
    """Write a ``.dwc`` stream incrementally to a seekable binary file.

    ``header`` is a template (``num_frames``/``length`` are filled in by :meth:`finish`)::

        with open(path, "wb") as f:
            w = DwcWriter(f, Header.for_engine(codec, n_q))
            for codes in blocks:            # [n_q, f] each
                w.write(codes)
            w.finish(length=num_samples)    # rewrites the header in place

    An entropy-coded stream (``header.entropy``, :meth:`Header.entropy_coded`) needs the
    ``tables`` it names; frames are then held until a block of ``header.block_frames`` is full.
    """

    def __init__(self, file: BinaryIO, header: Header,
                 tables: EntropyTables | None = None) -> None:
        if not file.seekable():
            raise ValueError("DwcWriter needs a seekable file (the header is rewritten at the "
                             "end)")
        self.file = file
        self.header = replace(header, num_frames=0, length=0, entropy_bytes=0)
        self.header.validate()
        if header.entropy:
            if tables is None or tables.identity() != header.entropy:
                got = "none" if tables is None else tables.identity()
                raise ValueError(f"the header names entropy tables {header.entropy}, given "
                                 f"{got}")
            tables.check(header.n_q, header.levels)
        self._tables = tables if header.entropy else None
        self._held: list[np.ndarray] = []  # entropy-coded: frames of the unfinished block
        self._held_frames = 0
        self._coded_frames = 0
        self._coded_bytes = 0
        self._start = file.tell()
        self._packer = BitPacker(header.n_q, header.codebook_size)
        self._crc = 0
        self._finished = False
        file.write(self.header.pack())

    @property
    def num_frames(self) -> int:
        if self._tables is not None:
            return self._coded_frames + self._held_frames
        return self._packer.num_frames

    def _code_blocks(self, final: bool) -> None:
        """Entropy-code every full block held (and the partial last one when ``final``)."""
        n = self.header.block_frames
        if not self._held or (self._held_frames < n and not final):
            return
        held = np.concatenate(self._held, axis=1)
        cut = held.shape[1] if final else held.shape[1] // n * n
        for i in range(0, cut, n):
            data = self._tables.encode_block(held[:, i:i + n])  # type: ignore[union-attr]
            self._coded_bytes += len(data)
            self._emit(data)
        self._coded_frames += cut
        rest = held[:, cut:]
        self._held = [rest] if rest.shape[1] else []
        self._held_frames = rest.shape[1]

    def _emit(self, data: bytes) -> None:
        self._crc = zlib.crc32(data, self._crc)
        self.file.write(data)

    def write(self, codes: np.ndarray) -> None:
        """Append frames ``[n_q, f]``."""
        if self._finished:
            raise ValueError("DwcWriter is finished")
        if self._tables is None:
            self._emit(self._packer.push(codes))
            return
        c = check_codes(codes, self.header.n_q, self.header.codebook_size)
        if c.shape[1]:
            self._held.append(c)
            self._held_frames += c.shape[1]
            self._code_blocks(final=False)

    def finish(self, length: int | None = None) -> Header:
        """Write the trailer and the final header; ``length`` defaults to ``frames * hop``."""
        n = self.num_frames
        length = n * self.header.hop_length if length is None else int(length)
        final = replace(self.header, num_frames=n, length=length)
        if self._tables is None:
            final.validate()
            self._emit(self._packer.flush())
        else:
            self._code_blocks(final=True)
            final = replace(final, entropy_bytes=self._coded_bytes)
            final.validate()
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
    (:meth:`parse`). Codes are unpacked on demand.

    An entropy-coded file (format 3) is verified down to its codes only with the tables it
    names: ``parse(data, tables)``, :meth:`with_tables`, or, found by their identity, the
    tables shipped with the default model. Without them its header and checksums are, and
    asking for its codes is a :class:`BitstreamError` naming the tables.
    """

    header: Header
    payload: bytes
    tables: EntropyTables | None = None
    # format 3: the codes, decoded once when the blocks were verified (``[n_q, F]``, int16
    # where the codebook fits: about 1.6x the payload's bytes), so reading them costs no
    # second decode
    decoded: np.ndarray | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview,
              tables: EntropyTables | None = None) -> DwcFile:
        """Validate ``data`` completely (header, sizes, both checksums, padding bits, every
        frame a valid code combination; for format 3 with ``tables``, every block decoding to
        its end state and the last one to the payload's end) before returning."""
        data = bytes(data)
        header = Header.unpack(data)
        _check_size(header, len(data))
        expected = header.file_size
        payload = data[header.header_size: expected - _CRC.size]
        (crc,) = _CRC.unpack_from(data, expected - _CRC.size)
        if zlib.crc32(payload) != crc:
            raise BitstreamError("corrupt .dwc file: payload checksum mismatch")
        if header.entropy:
            f = cls(header, payload)
            tables = tables if tables is not None else shipped_tables(header.entropy)
            return f.with_tables(tables) if tables is not None else f
        if not padding_is_zero(payload, header.num_frames, header.n_q, header.codebook_size):
            raise BitstreamError("corrupt .dwc file: non-zero padding bits")
        for start in range(0, header.num_frames, CHECK_BLOCK_FRAMES):  # every frame value
            unpack_codes(payload, header.n_q, header.codebook_size,
                         min(CHECK_BLOCK_FRAMES, header.num_frames - start), start)
        return cls(header, payload)

    def with_tables(self, tables: EntropyTables | None) -> DwcFile:
        """This file with the entropy tables it names, every block verified (a fixed-rate
        file is returned as it is). :class:`BitstreamError` if ``tables`` are not the ones
        that coded it, or a block does not decode."""
        h = self.header
        if not h.entropy or self.decoded is not None:  # fixed rate, or verified already
            return self
        if tables is None or tables.identity() != h.entropy:
            got = ("has none" if tables is None
                   else f"has tables {tables.identity()}")
            raise BitstreamError(f"the stream is entropy-coded with tables {h.entropy}; the "
                                 f"model {got} (decode with the model that wrote it)")
        tables.check(h.n_q, h.levels)
        f = replace(self, tables=tables)
        blocks = list(f._entropy_blocks())  # every block decodes, the last one ends the payload
        dtype = np.int16 if h.codebook_size <= 1 << 15 else np.int32
        codes = (np.concatenate(blocks, axis=1) if blocks
                 else np.zeros((h.n_q, 0), dtype=np.int64)).astype(dtype)
        return replace(f, decoded=codes)

    def _entropy_blocks(self) -> Iterator[np.ndarray]:
        h, tables = self.header, self.tables
        if tables is None:
            raise BitstreamError(f"the stream is entropy-coded with tables {h.entropy}; its "
                                 "codes need the model's tables (DwcFile.with_tables)")
        view, at = memoryview(self.payload), 0
        for start in range(0, h.num_frames, h.block_frames):
            n = min(h.block_frames, h.num_frames - start)
            codes, at = tables.decode_block(view, at, h.n_q, n)
            yield codes
        if at != len(self.payload):
            raise BitstreamError(f"corrupt .dwc payload: {len(self.payload) - at} bytes after "
                                 "the last entropy-coded block")

    def codes(self) -> np.ndarray:
        """All codes ``[n_q, num_frames]`` int64."""
        h = self.header
        if h.entropy:
            return self._decoded().astype(np.int64)
        return unpack_codes(self.payload, h.n_q, h.codebook_size, h.num_frames)

    def _decoded(self) -> np.ndarray:
        if self.decoded is not None:
            return self.decoded
        if self.tables is None:  # raises, naming the tables it needs
            list(self._entropy_blocks())
        return self.with_tables(self.tables).decoded  # type: ignore[return-value]

    def iter_codes(self, block_frames: int = 500) -> Iterator[np.ndarray]:
        """Codes in blocks of ``block_frames`` frames, ``[n_q, f]`` each."""
        if block_frames < 1:
            raise ValueError("block_frames must be >= 1")
        h = self.header
        if h.entropy:
            codes = self._decoded()
            for start in range(0, h.num_frames, block_frames):
                yield codes[:, start:start + block_frames].astype(np.int64)
            return
        for start in range(0, h.num_frames, block_frames):
            n = min(block_frames, h.num_frames - start)
            yield unpack_codes(self.payload, h.n_q, h.codebook_size, n, start)


def to_bytes(header: Header, codes: np.ndarray, length: int | None = None,
             tables: EntropyTables | None = None) -> bytes:
    """A complete ``.dwc`` file in memory for codes ``[n_q, F]`` (``header`` is a template;
    ``tables`` for an entropy-coded one)."""
    buf = io.BytesIO()
    w = DwcWriter(buf, header, tables)
    w.write(codes)
    w.finish(length)
    return buf.getvalue()


def from_bytes(data: bytes | bytearray | memoryview,
               tables: EntropyTables | None = None) -> tuple[Header, np.ndarray]:
    """Parse a complete ``.dwc`` file: ``(header, codes [n_q, F])`` (``tables``: those of an
    entropy-coded file)."""
    f = DwcFile.parse(data, tables)
    return f.header, f.codes()


def write_dwc(path: str | Path, header: Header, codes: np.ndarray,
              length: int | None = None, tables: EntropyTables | None = None) -> Header:
    """Write codes ``[n_q, F]`` to ``path``; returns the final header."""
    with open(path, "wb") as f:
        w = DwcWriter(f, header, tables)
        w.write(codes)
        return w.finish(length)


def read_dwc(path: str | Path, tables: EntropyTables | None = None) -> DwcFile:
    """Read and verify a ``.dwc`` file (``tables``: as in :meth:`DwcFile.parse`). The size
    announced by the header is checked against the file size before the payload is read, so a
    corrupt header never causes a big allocation."""
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
        _check_size(header, size, str(p))
        f.seek(0)
        data = f.read()
    try:
        return DwcFile.parse(data, tables)
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


def read_dwc_from(f: BinaryIO, name: str = "stdin",
                  tables: EntropyTables | None = None) -> DwcFile:
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
    _check_size(header, len(data), name, extra_known=False)
    try:
        return DwcFile.parse(data, tables)
    except BitstreamError as e:
        raise BitstreamError(f"{name}: {e}") from None
