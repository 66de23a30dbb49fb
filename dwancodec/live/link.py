"""Encoder -> packets -> (simulated network) -> jitter buffer -> decoder, with concealment.

The packets are the bitstream's (:class:`~dwancodec.bitstream.PacketSender`, one frame per
packet; :class:`~dwancodec.bitstream.PacketReceiver` parses them and counts loss, reordering
and duplicates in :attr:`CodecLink.receiver`). What is played when is the jitter buffer's
decision: it knows the sender's clock (see :mod:`~dwancodec.live.network`), so every packet
that parses goes to it, except a byte-identical duplicate; a corrupt one is dropped.

:class:`CodecLink` is the codec half of the live path, at the model's sample rate and free of
any audio device or thread, so it runs the same in real time and in simulated time (tests pass
their own ``now``). Without loss or jitter its output is exactly the streaming decode of its
input, which equals ``codec.decode(codec.encode(input))``.

Concealment (for a frame whose packet is missing at its playout time): decode the last received
frame's codes again (the decoder state moves on as if that frame had been repeated) and fade
the result linearly to silence over ``fade_ms``; the first good frame after a gap fades back in
from the gain reached. Nothing cleverer: it is there to show what loss does, honestly.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from ..bitstream import PacketReceiver, PacketSender
from .backends import CodecBackend
from .network import JitterBuffer, NetworkSimulator

CONCEAL_FADE_MS = 60.0


@dataclass
class LinkCounters:
    frames_sent: int = 0
    frames_played: int = 0
    frames_concealed: int = 0
    encode_s: float = 0.0
    decode_s: float = 0.0
    compute_max_s: float = 0.0


class CodecLink:
    """Push model-rate PCM in, get model-rate PCM out (frames play when they are due).

    ``network``: a :class:`NetworkSimulator` (``None``: a perfect one); ``playout_delay_ms``:
    how long the jitter buffer holds each frame after it was sent.
    """

    def __init__(self, backend: CodecBackend, network: NetworkSimulator | None = None,
                 playout_delay_ms: float = 0.0, fade_ms: float = CONCEAL_FADE_MS) -> None:
        self.backend = backend
        self.network = network if network is not None else NetworkSimulator()
        self.jitter = JitterBuffer(playout_delay_ms)
        self.sender = PacketSender(backend.codebook_size, frames_per_packet=1)
        self.receiver = PacketReceiver(backend.codebook_size, backend.num_codebooks)
        self.hop = backend.hop_length
        self.frame_s = backend.hop_length / backend.sample_rate
        self.fade_frames = max(1.0, fade_ms / 1000.0 / self.frame_s)
        self.counters = LinkCounters()
        self._seq = 0
        self._last_codes: np.ndarray | None = None
        self._gain = 1.0
        self._lost_run = 0
        self.concealed_seqs: deque[int] = deque(maxlen=100_000)  # recent concealed frames

    # Sender ----------------------------------------------------------------------------------
    def push(self, pcm: np.ndarray, now: float) -> np.ndarray:
        """Encode ``[n]`` model-rate samples, send the frames; return what is due by ``now``."""
        dt = self.send(pcm, now)
        return self.poll(now, extra_compute=dt)

    def send(self, pcm: np.ndarray, now: float) -> float:
        """The sending half of :meth:`push` (encode, send; nothing decoded): the seconds the
        encoder took. ``push(pcm, now)`` is ``poll(now)`` after ``send(pcm, now)``."""
        t0 = time.perf_counter()
        codes = self.backend.encode(pcm)
        dt = time.perf_counter() - t0
        self.counters.encode_s += dt
        self._send(codes, now)
        return dt

    def _send(self, codes: np.ndarray, now: float) -> None:
        for packet in self.sender.push(codes):  # one per frame
            self.jitter.expect(self._seq, now)
            self.network.send(packet, now)
            self._seq += 1
        self.counters.frames_sent += codes.shape[-1]

    # Receiver --------------------------------------------------------------------------------
    def poll(self, now: float, extra_compute: float = 0.0) -> np.ndarray:
        """Deliver arrived packets; decode (or conceal) every frame due by ``now``."""
        self._deliver(self.network.receive(now))
        return self._play(self.jitter.pop_due(now), extra_compute)

    def next_event(self) -> float | None:
        """The earliest time at which :meth:`poll` may have something new to do."""
        times = [t for t in (self.network.next_arrival(), self.jitter.next_due()) if t is not None]
        return min(times) if times else None

    def finish(self, now: float) -> np.ndarray:
        """End of input: encode the partial frame, deliver everything, play every frame."""
        self.send_rest(now)
        return self.drain()

    def send_rest(self, now: float) -> float:
        """The sending half of :meth:`finish`: encode the partial frame and send it (the
        seconds the encoder took). ``finish(now)`` is ``drain()`` after ``send_rest(now)``."""
        t0 = time.perf_counter()
        codes = self.backend.flush()
        dt = time.perf_counter() - t0
        self.counters.encode_s += dt
        self._send(codes, now)
        return dt

    def drain(self) -> np.ndarray:
        """Deliver everything in flight and play every frame left (after :meth:`send_rest`)."""
        self._deliver(self.network.drain())
        return self._play(self.jitter.flush())

    def _deliver(self, packets: list[bytes]) -> None:
        """Parse arrived packets (the bitstream's receiver) into the jitter buffer."""
        for data in packets:
            got = self.receiver.receive(data)
            if got.codes is not None and got.status != "duplicate":
                self.jitter.insert(got.seq, got.codes[:, 0])  # type: ignore[arg-type]

    def _play(self, frames: list[tuple[int, np.ndarray | None]], extra_compute: float = 0.0
              ) -> np.ndarray:
        if not frames:
            return np.zeros(0, np.float32)
        t0 = time.perf_counter()
        out: list[np.ndarray] = []
        i = 0
        while i < len(frames):
            if frames[i][1] is not None:
                j = i
                while j < len(frames) and frames[j][1] is not None:
                    j += 1
                codes = np.stack([c for _, c in frames[i:j]], axis=-1)  # [n_q, k]
                pcm = self.backend.decode(codes)
                if self._gain < 1.0:  # fade back in over the first good frame
                    pcm = pcm.copy()
                    pcm[: self.hop] *= np.linspace(self._gain, 1.0, self.hop, dtype=np.float32)
                self._gain, self._lost_run = 1.0, 0
                self._last_codes = codes[:, -1:]
                self.counters.frames_played += j - i
                out.append(pcm)
                i = j
            else:
                self.concealed_seqs.append(frames[i][0])
                out.append(self._conceal())
                i += 1
        dt = time.perf_counter() - t0
        self.counters.decode_s += dt
        self.counters.compute_max_s = max(self.counters.compute_max_s, dt + extra_compute)
        return np.concatenate(out).astype(np.float32, copy=False)

    def _conceal(self) -> np.ndarray:
        self.counters.frames_concealed += 1
        self._lost_run += 1
        if self._last_codes is None:
            return np.zeros(self.hop, np.float32)
        pcm = self.backend.decode(self._last_codes).copy()
        target = max(0.0, 1.0 - self._lost_run / self.fade_frames)
        pcm *= np.linspace(self._gain, target, self.hop, dtype=np.float32)
        self._gain = target
        return pcm

    # Figures ---------------------------------------------------------------------------------
    @property
    def frames_processed(self) -> int:
        return self.counters.frames_played + self.counters.frames_concealed

    def compute_ms_per_frame(self) -> float:
        """Encoder + decoder wall time per code frame so far (ms)."""
        c = self.counters
        return 1000.0 * (c.encode_s / max(c.frames_sent, 1)
                         + c.decode_s / max(self.frames_processed, 1))
