"""The streaming packet format of the live path (numpy only, no torch).

:func:`encode_packet` / :func:`decode_packet` (one packet: a few frames, a sequence number and
a CRC-16), :class:`PacketSender` (groups frames into numbered packets) and
:class:`PacketReceiver` (detects loss, reordering, duplicates; resynchronises after a sender
restart or a long outage). The frames are packed as in :mod:`~dwancodec.bitstream.bits`; the
byte layout and the receiver's rule are in ``docs/bitstream.md``.
"""

from __future__ import annotations

import binascii
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .bits import (
    MAX_CODEBOOK_SIZE,
    BitstreamError,
    check_codes,
    pack_codes,
    padding_is_zero,
    payload_bytes,
    unpack_codes,
)

PACKET_MAGIC = 0xD7
PACKET_VERSION = 1
_PACKET_HEAD = struct.Struct("<BBBBH")
_PACKET_CRC = struct.Struct("<H")
PACKET_OVERHEAD = _PACKET_HEAD.size + _PACKET_CRC.size
SEQ_MODULUS = 1 << 16
MAX_PACKET_FRAMES = 255
RESYNC_SPAN = 4  # PacketReceiver: stale packets in a row may skip up to 3 numbers


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
    c = check_codes(codes, None, codebook_size)
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
    if not padding_is_zero(payload, f, n_q, codebook_size):
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
        c = check_codes(codes, None, self.codebook_size)
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
