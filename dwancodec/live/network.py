"""A simulated packet network between the live encoder and decoder (numpy only, no torch).

The packets are the bitstream's (:func:`dwancodec.bitstream.encode_packet`, one code frame
each, a 16-bit sequence number and a CRC-16; ``docs/bitstream.md``): the network carries their
bytes. It drops each packet with probability ``loss`` and delays the others by a random amount
(``jitter``: exponential with that mean, so packets can arrive out of order). The receiver's
:class:`JitterBuffer` plays frame ``s`` exactly ``playout_delay`` seconds after it was sent; a
packet that has not arrived by then is *late* and is concealed like a lost one.

Simplification, stated plainly: the receiver knows the sender's clock (as if clocks were
synchronised, or RTP timestamps were mapped perfectly), so it knows when every frame is due,
including frames whose packet never arrives. A real receiver estimates that schedule.

Every function takes the current time ``now`` (seconds, any monotonic clock) as an argument,
so the same code runs in real time (live) and in simulated time (tests).
"""

from __future__ import annotations

import heapq

import numpy as np

from ..bitstream import SEQ_MODULUS


class NetworkSimulator:
    """Drops packets with probability ``loss``; delays the rest by ``Exp(mean=jitter_ms)``.

    ``send(packet, now)`` (the packet's bytes) then ``receive(now)`` returns the packets that
    have arrived by ``now`` (in arrival order; packets due at the same instant in the order
    they were sent). With ``loss == 0`` and ``jitter_ms == 0`` every packet arrives the instant
    it is sent.
    """

    def __init__(self, loss: float = 0.0, jitter_ms: float = 0.0, seed: int | None = 0) -> None:
        if not 0.0 <= loss < 1.0:
            raise ValueError(f"packet loss must be in [0, 1), got {loss}")
        if jitter_ms < 0:
            raise ValueError(f"jitter must be >= 0 ms, got {jitter_ms}")
        self.loss = float(loss)
        self.jitter_s = float(jitter_ms) / 1000.0
        self._rng = np.random.default_rng(seed)
        self._in_flight: list[tuple[float, int, bytes]] = []  # (arrival, send order, bytes)
        self.sent = 0
        self.dropped = 0

    @property
    def active(self) -> bool:
        """True when the network changes anything (loss or jitter)."""
        return self.loss > 0 or self.jitter_s > 0

    def send(self, packet: bytes, now: float) -> None:
        self.sent += 1
        if self.loss > 0 and self._rng.random() < self.loss:
            self.dropped += 1
            return
        delay = self._rng.exponential(self.jitter_s) if self.jitter_s > 0 else 0.0
        heapq.heappush(self._in_flight, (now + delay, self.sent, packet))

    def receive(self, now: float) -> list[bytes]:
        """Packets whose arrival time is ``<= now``."""
        out = []
        while self._in_flight and self._in_flight[0][0] <= now:
            out.append(heapq.heappop(self._in_flight)[2])
        return out

    def next_arrival(self) -> float | None:
        return self._in_flight[0][0] if self._in_flight else None

    def drain(self) -> list[bytes]:
        """Everything still in flight (end of stream: deliver without waiting)."""
        out = [p for _, _, p in sorted(self._in_flight)]
        self._in_flight.clear()
        return out


class JitterBuffer:
    """Holds packets until their playout time ``sent + playout_delay``; reorders by sequence.

    The sender registers every frame with :meth:`expect` (the ideal receiver clock, see the
    module docstring); :meth:`pop_due` returns ``(seq, codes or None)`` for every frame whose
    time has come, in sequence order, ``None`` for a packet that is missing at its playout time.
    Frames are numbered 0, 1, 2, ... here; :meth:`insert` takes the packet's sequence number
    as on the wire (mod 2**16) and places it at the nearest frame to the next one to play.
    """

    def __init__(self, playout_delay_ms: float = 0.0) -> None:
        if playout_delay_ms < 0:
            raise ValueError(f"jitter buffer delay must be >= 0 ms, got {playout_delay_ms}")
        self.delay_s = float(playout_delay_ms) / 1000.0
        self._due: dict[int, float] = {}
        self._packets: dict[int, np.ndarray] = {}
        self._next = 0
        self.late = 0       # arrived after their playout time (discarded)
        self.missing = 0    # not there at playout time (lost or late)

    def expect(self, seq: int, sent: float) -> None:
        self._due[seq] = sent + self.delay_s

    def insert(self, seq: int, codes: np.ndarray) -> None:
        """The codes ``[n_q]`` of frame ``seq`` (only ``seq mod 2**16`` counts) have arrived."""
        ahead = (seq - self._next) % SEQ_MODULUS
        if ahead >= SEQ_MODULUS // 2:  # behind the next frame to play: too late
            self.late += 1
            return
        self._packets[self._next + ahead] = codes

    def next_due(self) -> float | None:
        return self._due.get(self._next)

    def pop_due(self, now: float) -> list[tuple[int, np.ndarray | None]]:
        out: list[tuple[int, np.ndarray | None]] = []
        while self._next in self._due and self._due[self._next] <= now:
            out.append(self._pop_next())
        return out

    def flush(self) -> list[tuple[int, np.ndarray | None]]:
        """Every registered frame that has not been played yet, due or not."""
        out = []
        while self._next in self._due:
            out.append(self._pop_next())
        return out

    def _pop_next(self) -> tuple[int, np.ndarray | None]:
        seq = self._next
        del self._due[seq]
        codes = self._packets.pop(seq, None)
        if codes is None:
            self.missing += 1
        self._next += 1
        return seq, codes
