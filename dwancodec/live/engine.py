"""The live engine: audio callbacks <-> queues <-> one worker thread running the codec.

Data path (``r_in``/``r_out``: device rates, ``r_m``: the model's rate)::

    input callback --(block, ADC time)--> input queue --> worker thread:
        soxr ResampleStream r_in -> r_m  ->  CodecLink (encoder -> packets -> network ->
        jitter buffer -> decoder / concealment)  ->  soxr ResampleStream r_m -> r_out
    --> output FIFO --> output callback

The callbacks never wait: the input callback copies its block into a bounded queue (full: the
block is dropped and counted as an overrun); the output callback copies whatever the FIFO holds
(short: it plays silence for the rest and counts an underrun). Output starts ``prefill_ms``
after the first decoded audio came out (the slack every later frame has for scheduling and
compute); if the FIFO ever holds more than a frame + ``prefill_ms + max_extra_ms`` (clock drift
between the two devices) the excess is dropped and counted as an overrun.

End-to-end latency is measured, not assumed: each input block carries the ADC time of its
first sample and each output callback the DAC time of the first sample it plays; the resamplers
are time-aligned and the codec's decode of sample ``m`` is sample ``m``, so content sample ``c``
at ``r_out`` is input sample ``c * r_in / r_out``, and latency = DAC(c) - ADC(that sample).
Everything between (queues, resampler buffering, the frame the encoder waits for, compute,
jitter buffer, output FIFO, device buffers) is included, and :meth:`LiveEngine.latency_budget`
splits each measurement at the points of the path in between (:data:`BUDGET_PARTS`).
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from .backends import CodecBackend
from .link import CodecLink
from .network import NetworkSimulator

RESAMPLE_QUALITIES = ("QQ", "LQ", "MQ", "HQ", "VHQ")
# Playback starts this long after the first decoded audio (the slack every later frame has
# for scheduling and compute before the output callback needs it).
PREFILL_MARGIN_MS = 10.0
_EOF = object()


class _Resampler:
    """soxr streaming resampler (mono float32); a pass-through when the rates match."""

    def __init__(self, from_rate: int, to_rate: int, quality: str) -> None:
        self.passthrough = from_rate == to_rate
        if not self.passthrough:
            import soxr

            self._rs = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32",
                                           quality=quality)

    def __call__(self, x: np.ndarray, last: bool = False) -> np.ndarray:
        if self.passthrough:
            return x
        return self._rs.resample_chunk(np.ascontiguousarray(x, dtype=np.float32), last=last)


class _Marks:
    """When samples passed one point of the path: ``(count, time)`` records, ``count`` being
    how many samples had passed it by ``time``. :meth:`time_of` answers for increasing
    sample indices only (it forgets what lies behind)."""

    def __init__(self) -> None:
        self._recs: deque[tuple[float, float]] = deque()
        self.count = 0

    def add(self, n: int, t: float) -> None:
        if n > 0:
            self.count += n
            self._recs.append((self.count, t))

    def time_of(self, k: float) -> float | None:
        """When sample ``k`` (first sample 0; fractional: between two samples) had passed."""
        recs = self._recs
        while recs and recs[0][0] <= k:
            recs.popleft()
        return recs[0][1] if recs else None


# The parts of the end-to-end latency, in path order (see LiveEngine.latency_budget).
BUDGET_PARTS = {
    "input_block": "input block: waiting for the rest of the block to be captured",
    "input_device": "input device: captured -> input callback (PortAudio / host buffers)",
    "input_queue": "input queue: callback -> worker",
    "input_resampler": "input resampler (soxr) hold",
    "codec_frame": "codec: waiting for the frame to fill + encode",
    "network": "network + jitter buffer + decode",
    "output_resampler": "output resampler (soxr) hold",
    "output_fifo": "output FIFO: decoded -> output callback",
    "output_device": "output device: output callback -> played (PortAudio / host buffers)",
}


class LiveEngine:
    """Runs the codec between an input callback and an output callback (see module docs).

    ``in_rate`` / ``out_rate``: the device rates; ``keep_input`` / ``keep_output`` keep the
    model-rate signals the encoder received and the decoder produced (for ``--save-*``).
    """

    def __init__(self, backend: CodecBackend, in_rate: int, out_rate: int,
                 block_ms: float = 20.0, network: NetworkSimulator | None = None,
                 playout_delay_ms: float = 0.0, resample_quality: str = "LQ",
                 prefill_ms: float | None = None, max_extra_ms: float = 250.0,
                 keep_input: bool = False, keep_output: bool = False,
                 input_queue_ms: float = 1000.0) -> None:
        if resample_quality not in RESAMPLE_QUALITIES:
            raise ValueError(f"resample quality must be one of {RESAMPLE_QUALITIES}, "
                             f"got {resample_quality!r}")
        if not 1.0 <= block_ms <= 500.0:
            raise ValueError(f"--block-ms must be in [1, 500], got {block_ms}")
        for name, rate in (("input", in_rate), ("output", out_rate)):
            if rate <= 0:
                raise ValueError(f"{name} sample rate must be positive, got {rate}")
        self.backend = backend
        self.link = CodecLink(backend, network, playout_delay_ms)
        self.model_rate = backend.sample_rate
        self.in_rate, self.out_rate = int(in_rate), int(out_rate)
        self.block_ms = float(block_ms)
        self.in_block = max(1, round(self.in_rate * block_ms / 1000))
        self.out_block = max(1, round(self.out_rate * block_ms / 1000))
        self.resample_quality = resample_quality
        self._rs_in = _Resampler(self.in_rate, self.model_rate, resample_quality)
        self._rs_out = _Resampler(self.model_rate, self.out_rate, resample_quality)
        if prefill_ms is None:  # a margin for the worker's scheduling and compute, plus the
            # input resampler's bursts (soxr works in internal chunks above QQ)
            burst = 0.0 if self._rs_in.passthrough or resample_quality == "QQ" else 20.0
            prefill_ms = PREFILL_MARGIN_MS + burst
        if prefill_ms < 0:
            raise ValueError(f"prefill must be >= 0 ms, got {prefill_ms}")
        self.prefill_ms = float(prefill_ms)
        frame_ms = 1000.0 * backend.hop_length / backend.sample_rate
        # Clock drift between the devices: past max_level, drop back to a frame + prefill.
        self.prefill = round(self.out_rate * (frame_ms + prefill_ms) / 1000)
        self.max_level = self.prefill + round(self.out_rate * max_extra_ms / 1000)
        self._first_out_at: float | None = None  # worker: when the first decoded audio came
        self._eof_pending = False  # worker: end of input taken from the queue, not yet done
        self.keep_input, self.keep_output = keep_input, keep_output
        self.saved_input: list[np.ndarray] = []
        self.saved_output: list[np.ndarray] = []

        self._inq: queue.Queue[Any] = queue.Queue(
            maxsize=max(2, round(input_queue_ms / block_ms)))
        self._outq: deque[np.ndarray] = deque()
        self._cur = np.zeros(0, np.float32)
        self._cur_pos = 0
        # Counters. Each is written by one thread only (noted), read by any.
        self.produced = 0              # worker: samples put in the output FIFO
        self.consumed = 0              # output callback: samples played
        self.dropped = 0               # output callback: samples dropped (FIFO too full)
        self.underruns = 0             # output callback
        self.underrun_samples = 0      # output callback
        self.output_overruns = 0       # output callback
        self.input_overruns = 0        # input callback: blocks dropped (queue full)
        self.device_input_overflows = 0    # device-reported (PortAudio status flags)
        self.device_output_underflows = 0
        self.input_samples = 0         # input callback
        self._priming = True
        self._producing_done = False   # worker: end of input processed and emitted
        self._drained = False          # output callback: everything played
        self._in_count = 0             # worker
        self._in_records: deque[tuple[int, float]] = deque()   # worker only
        self._out_records: deque[tuple[int, float]] = deque(maxlen=4096)
        self.latencies: list[float] = []  # worker: seconds, one per output callback
        # Worker: when samples passed each point (see latency_budget); the input marks are
        # at the device input rate, the codec's at the model rate, the output's at out_rate.
        self._m_in_cb, self._m_in_deq = _Marks(), _Marks()
        self._m_enc_in, self._m_sent, self._m_dec_out, self._m_out = (
            _Marks(), _Marks(), _Marks(), _Marks())
        self._in_blocks: deque[tuple[int, int, float, float]] = deque()  # start, n, adc, cb
        self.parts: dict[str, list[float]] = {k: [] for k in BUDGET_PARTS}  # worker, seconds
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self.error: BaseException | None = None
        self.started_at: float | None = None

    # Audio callbacks (never block) ------------------------------------------------------------
    def input_callback(self, block: np.ndarray, adc_time: float, now: float | None = None
                       ) -> None:
        """A captured mono block ``[n]`` (copied) whose first sample was sampled at ``adc_time``
        (``time.perf_counter`` clock); ``now``: when the device called back (default: now)."""
        cb = time.perf_counter() if now is None else now
        try:
            self._inq.put_nowait((np.array(block, dtype=np.float32, copy=True), adc_time, cb))
            self.input_samples += len(block)
        except queue.Full:
            self.input_overruns += 1

    def end_of_input(self, timeout: float = 5.0) -> None:
        """No more input (file source; not for audio callbacks: it may wait for queue room)."""
        self._inq.put(_EOF, timeout=timeout)

    def output_callback(self, out: np.ndarray, dac_time: float, now: float | None = None
                        ) -> None:
        """Fill ``out`` (``[n]`` or ``[n, channels]``) with decoded audio; its first sample
        reaches the speaker at ``dac_time`` (``time.perf_counter`` clock); ``now``: when the
        device called back (default: now)."""
        cb = time.perf_counter() if now is None else now
        n = out.shape[0]
        level = self.produced - self.consumed - self.dropped
        if self._priming:
            first = self._first_out_at
            if not self._producing_done and (
                    first is None or cb < first + self.prefill_ms / 1000.0):
                out.fill(0)
                return
            self._priming = False
        if level > self.max_level:
            self._drop(level - self.prefill)
            self.output_overruns += 1
        filled = 0
        if level > 0:
            self._out_records.append((self.consumed + self.dropped, dac_time, cb))
        while filled < n:
            if self._cur_pos >= len(self._cur):
                try:
                    self._cur, self._cur_pos = self._outq.popleft(), 0
                except IndexError:
                    break
                continue
            take = min(n - filled, len(self._cur) - self._cur_pos)
            chunk = self._cur[self._cur_pos: self._cur_pos + take]
            out[filled: filled + take] = chunk[:, None] if out.ndim == 2 else chunk
            self._cur_pos += take
            filled += take
            self.consumed += take
        if filled < n:
            out[filled:] = 0
            if self._producing_done:
                self._drained = True
            else:
                self.underruns += 1
                self.underrun_samples += n - filled

    def _drop(self, k: int) -> None:
        while k > 0:
            if self._cur_pos >= len(self._cur):
                try:
                    self._cur, self._cur_pos = self._outq.popleft(), 0
                except IndexError:
                    return
                continue
            take = min(k, len(self._cur) - self._cur_pos)
            self._cur_pos += take
            self.dropped += take
            k -= take

    # Worker -----------------------------------------------------------------------------------
    def start(self) -> None:
        if self._worker is not None:
            raise RuntimeError("engine already started")
        self.started_at = time.perf_counter()
        self._worker = threading.Thread(target=self._run, name="dwancodec-live", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._worker is not None:
            self._worker.join(timeout)

    @property
    def finished(self) -> bool:
        """Input ended, everything was decoded and played (or the worker failed)."""
        return self.error is not None or (self._producing_done and self._drained)

    @property
    def producing_done(self) -> bool:
        return self._producing_done

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._step()
        except BaseException as e:  # surfaced by the caller through .error
            self.error = e

    def _step(self) -> None:
        now = time.perf_counter()
        nxt = self.link.next_event()
        timeout = 0.01 if nxt is None else min(0.01, max(0.0, nxt - now))
        if self._eof_pending:
            item: Any = _EOF
        else:
            try:
                item = self._inq.get(timeout=timeout) if not self._producing_done else None
            except queue.Empty:
                item = None
        if self._producing_done:
            self._stop.wait(0.01)
        pcm: list[np.ndarray] = []
        if item is _EOF:
            self._eof_pending = False
            x = self._rs_in(np.zeros(0, np.float32), last=True)
            enc_s = self._send(x)
            pcm.append(self.link.poll(time.perf_counter(), extra_compute=enc_s))
            sent = self.link.counters.frames_sent
            self.link.send_rest(time.perf_counter())
            self._m_sent.add((self.link.counters.frames_sent - sent) * self.link.hop,
                             time.perf_counter())
            pcm.append(self.link.drain())
            self._emit(pcm, last=True)
            self._producing_done = True
        else:
            enc_s = 0.0
            if item is not None:
                # Every block already waiting goes in the same encoder call: a worker that
                # fell behind catches up in fewer, larger calls (per-call overhead dominates
                # small frames), and blocks never wait behind a frame they could join.
                items = [item]
                while True:
                    try:
                        more = self._inq.get_nowait()
                    except queue.Empty:
                        break
                    if more is _EOF:
                        self._eof_pending = True
                        break
                    items.append(more)
                deq = time.perf_counter()
                for block, adc, cb in items:
                    self._in_records.append((self._in_count, adc))
                    self._in_blocks.append((self._in_count, len(block), adc, cb))
                    self._m_in_cb.add(len(block), cb)
                    self._m_in_deq.add(len(block), deq)
                    self._in_count += len(block)
                x = items[0][0] if len(items) == 1 else np.concatenate([b for b, _, _ in items])
                enc_s = self._send(self._rs_in(x))
            pcm.append(self.link.poll(time.perf_counter(), extra_compute=enc_s))
            self._emit(pcm)
        self._update_latency()

    def _send(self, x: np.ndarray) -> float:
        """Encode and send model-rate samples, marking when they entered the encoder and when
        their frames went out; the encoder's seconds."""
        self._keep_in(x)
        self._m_enc_in.add(len(x), time.perf_counter())
        sent = self.link.counters.frames_sent
        enc_s = self.link.send(x, time.perf_counter())
        self._m_sent.add((self.link.counters.frames_sent - sent) * self.link.hop,
                         time.perf_counter())
        return enc_s

    def _keep_in(self, x: np.ndarray) -> None:
        if self.keep_input and len(x):
            self.saved_input.append(x.copy())

    def _emit(self, pcm: list[np.ndarray], last: bool = False) -> None:
        y = np.concatenate(pcm) if pcm else np.zeros(0, np.float32)
        self._m_dec_out.add(len(y), time.perf_counter())
        if self.keep_output and len(y):
            self.saved_output.append(y)
        if len(y) or last:
            z = self._rs_out(y, last=last)
            if len(z):
                self._m_out.add(len(z), time.perf_counter())
                if self._first_out_at is None:
                    self._first_out_at = time.perf_counter()
                self._outq.append(z.astype(np.float32, copy=False))
                self.produced += len(z)

    def _update_latency(self) -> None:
        ratio = self.in_rate / self.out_rate
        recs = self._in_records
        while self._out_records:
            c, dac, cb_out = self._out_records.popleft()
            i = c * ratio
            if i >= self._in_count:  # past the input's end (the last frame's padding)
                continue
            while len(recs) >= 2 and recs[1][0] <= i:
                recs.popleft()
            if recs and recs[0][0] <= i:
                adc = recs[0][1] + (i - recs[0][0]) / self.in_rate
                self.latencies.append(dac - adc)
                self._budget(i, c * self.model_rate / self.out_rate, c, adc, cb_out, dac)

    def _budget(self, i: float, m: float, c: int, adc: float, cb_out: float, dac: float
                ) -> None:
        """Split one end-to-end measurement (input sample ``i``, model sample ``m``, output
        sample ``c``: the same instant of content) at each point of the path it passed."""
        blocks = self._in_blocks
        while len(blocks) >= 2 and blocks[1][0] <= i:
            blocks.popleft()
        if not blocks:
            return
        _, n, adc0, _ = blocks[0]
        block_end = adc0 + n / self.in_rate  # when the block's last sample was captured
        times = [self._m_in_cb.time_of(i), self._m_in_deq.time_of(i),
                 self._m_enc_in.time_of(m), self._m_sent.time_of(m),
                 self._m_dec_out.time_of(m), self._m_out.time_of(c), cb_out, dac]
        if any(t is None for t in times):
            return
        edges = [adc, block_end, *times]
        for k, name in enumerate(BUDGET_PARTS):
            self.parts[name].append(edges[k + 1] - edges[k])  # type: ignore[operator]

    def latency_budget(self) -> dict[str, dict[str, float | int] | None]:
        """Each part of the end-to-end latency (:data:`BUDGET_PARTS`, in path order) in ms:
        ``{"median", "mean", "count"}`` (None: not measured). Measured per output callback
        like the end-to-end figure: a part is the time between two points of the path that the
        same instant of audio passed (PortAudio's capture and playback times at the ends,
        ``time.perf_counter`` in between), so the parts of one measurement add up to it
        exactly and their means to the end-to-end mean; medians add up only about. The two
        device parts are what PortAudio reports (host API and audio server buffers); the
        input one can come out slightly negative where the host's capture timestamps are
        coarse (ALSA's ``pulse`` plugin)."""
        out: dict[str, dict[str, float | int] | None] = {}
        for k, v in self.parts.items():
            a = 1000.0 * np.asarray(v)
            out[k] = ({"median": float(np.median(a)), "mean": float(a.mean()),
                       "count": len(a)} if v else None)
        return out

    # Figures ----------------------------------------------------------------------------------
    def latency_summary(self, recent: int | None = None) -> dict[str, float | int | None]:
        """Measured end-to-end latency in ms: median/p95/min/max (all or the last ``recent``)."""
        lat = self.latencies[-recent:] if recent else self.latencies
        if not lat:
            return {"median": None, "mean": None, "p95": None, "min": None, "max": None,
                    "count": 0}
        a = 1000.0 * np.asarray(lat)
        return {"median": float(np.median(a)), "mean": float(a.mean()),
                "p95": float(np.percentile(a, 95)),
                "min": float(a.min()), "max": float(a.max()), "count": len(a)}

    def stats(self) -> dict[str, Any]:
        """Every figure of the run so far, JSON-ready."""
        b, c = self.backend, self.link.counters
        net = self.link.network
        elapsed = time.perf_counter() - self.started_at if self.started_at else 0.0
        audio_s = self.link.frames_processed * b.hop_length / b.sample_rate
        compute_s = c.encode_s + c.decode_s
        return {
            "backend": b.name, "model": b.describe(),
            "sample_rate": b.sample_rate, "input_rate": self.in_rate,
            "output_rate": self.out_rate, "n_q": b.n_q, "bitrate_kbps": b.bitrate_kbps,
            "algorithmic_latency_ms": b.latency_ms, "block_ms": self.block_ms,
            "prefill_ms": self.prefill_ms, "resample_quality": self.resample_quality,
            "latency_ms": self.latency_summary(),
            "latency_budget_ms": self.latency_budget(),
            "compute_ms_per_frame": self.link.compute_ms_per_frame(),
            "compute_max_ms": 1000.0 * c.compute_max_s,
            "real_time_factor": compute_s / audio_s if audio_s else None,
            "frames_sent": c.frames_sent, "frames_played": c.frames_played,
            "frames_concealed": c.frames_concealed,
            "underruns": self.underruns,
            "underrun_ms": 1000.0 * self.underrun_samples / self.out_rate,
            "overruns": self.input_overruns + self.output_overruns,
            "input_blocks_dropped": self.input_overruns,
            "output_ms_dropped": 1000.0 * self.dropped / self.out_rate,
            "device_input_overflows": self.device_input_overflows,
            "device_output_underflows": self.device_output_underflows,
            "network": {"loss": net.loss, "jitter_ms": 1000.0 * net.jitter_s,
                        "playout_delay_ms": 1000.0 * self.link.jitter.delay_s,
                        "sent": net.sent, "dropped": net.dropped,
                        "late": self.link.jitter.late, "concealed": c.frames_concealed},
            "elapsed_s": elapsed,
        }

    def status_line(self) -> str:
        """One line for the terminal: rate, latencies, compute, under/overruns, network."""
        b = self.backend
        recent = self.latency_summary(recent=50)["median"]
        e2e = "--" if recent is None else f"{recent:.0f}"
        frame_ms = 1000.0 * b.hop_length / b.sample_rate
        cpf = self.link.compute_ms_per_frame()
        s = (f"{b.bitrate_kbps:.2f} kbps n_q {b.n_q} | latency algo {b.latency_ms:.1f} ms, "
             f"e2e {e2e} ms | compute {cpf:.2f} ms/frame ({100 * cpf / frame_ms:.0f}% RT) | "
             f"underruns {self.underruns} | overruns {self.input_overruns + self.output_overruns}")
        net = self.link.network
        if net.active:
            s += (f" | lost {net.dropped} late {self.link.jitter.late} "
                  f"concealed {self.link.counters.frames_concealed}")
        return s
