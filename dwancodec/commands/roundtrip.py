"""``dwancodec roundtrip``: audio -> streaming encoder -> packets -> streaming decoder -> audio.

:func:`stream_roundtrip` runs the live link (:class:`~dwancodec.live.link.CodecLink`, the code
``dwancodec live`` runs between its audio devices) on a perfect network, in simulated time, and
measures it (:class:`RoundtripResult`); usable from Python.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import AudioError, AudioWriter, check_output_path, probe_audio, stream_audio
from ..bitstream import PACKET_OVERHEAD, Header
from ..engine import Engine, as_engine
from ..live.backends import EngineBackend
from ..live.link import CodecLink
from ..live.network import NetworkSimulator
from .common import (
    BLOCK_SECONDS,
    SCORES,
    Progress,
    choose_n_q,
    compute_scores,
    engine_from_args,
    engine_label,
    engine_line,
    engine_threads,
    fmt_score,
    missing_scores_note,
    notifier,
)
from .files import atomic_output, output_kind, same_file

if TYPE_CHECKING:
    from ..model import Codec

COMPARE_MAX_SECONDS = 600.0  # --compare keeps at most this much audio in memory


def _rechunk(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    """Re-cut a stream of arrays into pieces of exactly ``size`` (the last may be shorter)."""
    buf = np.zeros(0, np.float32)
    for b in blocks:
        buf = np.concatenate([buf, b]) if buf.size else b
        n = buf.size // size * size
        for s in range(0, n, size):
            yield buf[s: s + size]
        buf = buf[n:]
    if buf.size:
        yield buf


@dataclass
class RoundtripResult:
    """Figures from :func:`stream_roundtrip`. ``rtf`` = compute seconds / audio seconds."""

    n_q: int
    num_samples: int
    num_frames: int
    sample_rate: int
    bitrate_bps: float
    packed_bitrate_bps: float
    packet_bitrate_bps: float
    latency_ms: float
    compute_s: float
    cpu_s: float
    wall_s: float
    packets: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate

    @property
    def rtf(self) -> float:
        """Wall-clock compute time / audio time (< 1: faster than real time)."""
        return self.compute_s / max(self.duration, 1e-9)

    @property
    def cpu_rtf(self) -> float:
        """Process CPU time / audio time (less sensitive to a busy machine than :attr:`rtf`)."""
        return self.cpu_s / max(self.duration, 1e-9)


class _CountingNetwork(NetworkSimulator):
    """A perfect network that counts the bytes it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def send(self, packet: bytes, now: float) -> None:
        self.bytes += len(packet)
        super().send(packet, now)


class _TappedBackend(EngineBackend):
    """The link's backend, handing ``on_codes`` every code block the decoder receives."""

    def __init__(self, engine: Engine, n_q: int,
                 on_codes: Callable[[np.ndarray], None] | None) -> None:
        super().__init__(engine, n_q)
        self._on_codes = on_codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        if self._on_codes is not None:
            self._on_codes(np.asarray(codes))
        return super().decode(codes)


def stream_roundtrip(codec: Codec | Engine, blocks: Iterable[np.ndarray], n_q: int | None = None,
                     chunk_samples: int | None = None,
                     on_audio: Callable[[np.ndarray], None] | None = None,
                     on_codes: Callable[[np.ndarray], None] | None = None,
                     on_input: Callable[[np.ndarray], None] | None = None) -> RoundtripResult:
    """The live path on a perfect network: audio chunks -> the live link
    (:class:`~dwancodec.live.link.CodecLink`: StreamingEncoder -> bitstream packets, one per
    frame -> PacketReceiver -> jitter buffer -> StreamingDecoder) -> audio, in simulated time
    (the audio clock), so the CLI round trip and ``dwancodec live`` run the same code.

    ``codec``: a torch :class:`~dwancodec.model.Codec` or any :class:`~dwancodec.engine.Engine`
    (ONNX Runtime: the CLI default). ``blocks``: mono float32 arrays at ``codec.sample_rate``;
    ``chunk_samples``: size of the pieces pushed into the encoder (default one hop).
    ``on_audio`` receives the decoded audio (trimmed to the input length), ``on_codes`` the
    codes ``[n_q, f]`` as the decoder receives them, ``on_input`` the input chunks.
    """
    engine = as_engine(codec)
    n_q = choose_n_q(engine, n_q)
    chunk = chunk_samples or engine.hop_length
    if chunk < 1:
        raise ValueError(f"chunk size must be at least 1 sample, got {chunk}")
    network = _CountingNetwork()
    numpy_output = getattr(engine, "numpy_output", None)
    try:  # the link's backend switches the engine to numpy output; the caller's stays as it was
        link = CodecLink(_TappedBackend(engine, n_q, on_codes), network)
        return _run_link(link, network, engine, n_q, blocks, chunk, on_audio, on_input)
    finally:
        if numpy_output is not None:
            engine.numpy_output = numpy_output  # type: ignore[attr-defined]


def _run_link(link: CodecLink, network: _CountingNetwork, engine: Engine, n_q: int,
              blocks: Iterable[np.ndarray], chunk: int,
              on_audio: Callable[[np.ndarray], None] | None,
              on_input: Callable[[np.ndarray], None] | None) -> RoundtripResult:
    sr = engine.sample_rate
    length = emitted = 0
    compute = cpu = 0.0
    t_wall = time.perf_counter()

    def emit(pcm: np.ndarray) -> None:
        nonlocal emitted
        pcm = pcm[: max(0, length - emitted)]
        emitted += pcm.size
        if on_audio is not None and pcm.size:
            on_audio(pcm)

    def timed(step: Callable[..., np.ndarray], *args: Any) -> np.ndarray:
        nonlocal compute, cpu
        t0, c0 = time.perf_counter(), time.process_time()
        out = step(*args)
        compute += time.perf_counter() - t0
        cpu += time.process_time() - c0
        return out

    for piece in _rechunk(blocks, chunk):
        length += piece.size
        if on_input is not None:
            on_input(piece)
        now = length / sr  # the audio clock: the piece has just been captured
        emit(timed(link.push, np.ascontiguousarray(piece), now))
    if length == 0:
        raise AudioError("the input contains no audio samples")
    emit(timed(link.finish, length / sr))
    if link.counters.frames_concealed:  # cannot happen on a lossless link
        raise RuntimeError(f"{link.counters.frames_concealed} frames were concealed on a "
                           "lossless link")
    duration = length / sr
    h = Header.for_engine(engine, n_q)
    s = link.receiver.stats
    return RoundtripResult(
        n_q=n_q, num_samples=length, num_frames=link.counters.frames_played,
        sample_rate=sr, bitrate_bps=h.bitrate, packed_bitrate_bps=h.packed_bitrate,
        packet_bitrate_bps=network.bytes * 8 / duration, latency_ms=engine.latency_ms,
        compute_s=compute, cpu_s=cpu, wall_s=time.perf_counter() - t_wall,
        packets={"sent": network.sent, "received": s.received,
                 "lost": s.lost, "reordered": s.reordered, "corrupt": s.corrupt},
    )


def run_roundtrip(args: argparse.Namespace) -> int:
    note = notifier(args)
    codec = engine_from_args(args, note)
    n_q = choose_n_q(codec, args.n_q, args.bitrate)
    if not math.isfinite(args.chunk_ms) or args.chunk_ms <= 0:
        raise ValueError(f"--chunk-ms must be positive, got {args.chunk_ms}")
    chunk = max(1, round(args.chunk_ms * codec.sample_rate / 1000))
    info = probe_audio(args.input)
    if same_file(args.input, args.output):
        raise ValueError(f"output {args.output} would overwrite the input")
    if output_kind(args.output) != "file":
        raise ValueError(f"cannot write {args.output}: roundtrip writes a regular file (use "
                         "decode for a pipe or device)")
    check_output_path(args.output)
    keep = int(COMPARE_MAX_SECONDS * codec.sample_rate) if args.compare else 0
    ref: list[np.ndarray] = []
    est: list[np.ndarray] = []
    held = [0, 0]

    def keep_ref(x: np.ndarray) -> None:
        if held[0] < keep:
            ref.append(x[: keep - held[0]].copy())
            held[0] += ref[-1].size

    bar = Progress(info.duration, "roundtrip", not args.quiet)
    done = False
    with atomic_output(args.output) as tmp, AudioWriter(tmp, codec.sample_rate) as w:
        def on_audio(y: np.ndarray) -> None:
            w.write(y)
            bar.update(y.size / codec.sample_rate)
            if held[1] < keep:
                est.append(y[: keep - held[1]].copy())
                held[1] += est[-1].size

        blocks = (b for b, _ in stream_audio(args.input, codec.sample_rate, BLOCK_SECONDS,
                                             note))
        try:
            r = stream_roundtrip(codec, blocks, n_q, chunk, on_audio=on_audio,
                                 on_input=keep_ref if keep else None)
            done = True
        finally:
            bar.close(done)
    lines = {
        "input": f"{args.input} ({r.duration:.2f} s, {info.sample_rate} Hz, "
                 f"{info.channels} ch)",
        "model": f"{codec.identity} ({codec.sample_rate} Hz, hop {codec.hop_length})",
        "engine": engine_line(codec, args),
        "bitrate": f"{r.bitrate_bps / 1000:.3f} kbps (n_q {n_q} of {codec.num_codebooks}); "
                   f"packed {r.packed_bitrate_bps / 1000:.3f} kbps; "
                   f"{r.packet_bitrate_bps / 1000:.3f} kbps as 1-frame packets "
                   f"(+{PACKET_OVERHEAD} bytes each)",
        "latency": f"{r.latency_ms:.1f} ms algorithmic (one {codec.hop_length}-sample frame); "
                   f"chunks of {chunk} samples ({1000 * chunk / codec.sample_rate:.1f} ms)",
        "speed": f"real-time factor {r.rtf:.4f} ({_speed(r.rtf)}); CPU-time RTF "
                 f"{r.cpu_rtf:.4f}; {r.compute_s:.2f} s compute, {r.wall_s:.2f} s wall, "
                 f"{engine_threads(codec, args)} {engine_label(codec)} thread(s)",
        "output": str(args.output),
    }
    if args.compare:
        if held[0] < r.num_samples:
            note(f"--compare scores the first {COMPARE_MAX_SECONDS:.0f} s only")
        scores = compute_scores(np.concatenate(ref), np.concatenate(est), codec.sample_rate, note)
        missing_scores_note(note)
        parts = [f"{label} {fmt_score(scores[name], '.3f')}" for name, _, label in SCORES
                 if name in scores]
        lines["scores"] = ", ".join([*parts, f"SI-SDR {fmt_score(scores['si_sdr'], '.2f')} dB",
                                     f"mel distance {fmt_score(scores['mel_distance'], '.3f')}"])
    if not args.quiet or args.compare:
        for k, v in lines.items():
            print(f"{k + ':':9s} {v}")
    return 0


def _speed(rtf: float) -> str:
    if rtf <= 0:
        return "instant"
    return f"{1 / rtf:.1f}x faster than real time" if rtf < 1 else \
        f"{rtf:.1f}x slower than real time"


__all__ = ["RoundtripResult", "run_roundtrip", "stream_roundtrip"]
