"""``dwancodec live``: the codec link, the real-time engine, the CLI, and an end-to-end round trip
through a private PulseAudio server (virtual microphone -> dwancodec live -> virtual speaker).

The model used for the audio checks is the tiny config with random weights and every bias set
to zero: a freshly initialised codec emits nearly the same codes and audio whatever its input
(its biases dominate), which would make "the output is the decode of the input" a vacuous
check. Without biases its decode depends on the input (verified in ``test_model_is_input_
sensitive``), and it is deterministic, so comparing against the offline decode of the exact same
input is meaningful even though it sounds like noise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given
from hypothesis import strategies as st

from dwancodec.audio import load_audio, resample
from dwancodec.live import CodecLink, LiveEngine, NetworkSimulator, TorchBackend
from dwancodec.live.audio_io import FileInput, NullOutput, suggested_latency
from dwancodec.live.engine import BUDGET_PARTS
from dwancodec.model import Codec

from .live_audio_server import PrivatePulseAudio, missing_tools

DATA = Path(__file__).parent / "data"
SR = 16000


def sensitive_tiny_codec(seed: int = 0) -> Codec:
    """The tiny config, random weights, all biases zero (see the module docstring)."""
    codec = Codec.from_config("tiny", seed=seed).eval()
    with torch.no_grad():
        for name, p in codec.named_parameters():
            if name.endswith(".bias"):
                p.zero_()
    return codec


@pytest.fixture(scope="module")
def codec() -> Codec:
    return sensitive_tiny_codec()


@pytest.fixture(scope="module")
def bundle(codec: Codec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return codec.save_pretrained(tmp_path_factory.mktemp("bundle") / "tiny")


@pytest.fixture(scope="module")
def speech16() -> np.ndarray:
    audio, _ = load_audio(DATA / "speech_en.flac", SR)
    return audio


@torch.inference_mode()
def offline(codec: Codec, x: np.ndarray, n_q: int | None = None) -> np.ndarray:
    """``codec.decode(codec.encode(x))`` as a flat array."""
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
    return codec.decode(codec.encode(t, n_q))[0, 0].numpy()


def assert_same_decode(y: np.ndarray, ref: np.ndarray, max_mismatch: float = 0.03) -> None:
    """``y`` is ``ref`` (the offline decode) up to float error, except near rounding ties.

    Chunked (streaming) and whole-signal convolutions differ by ~1e-7; a latent that lies that
    close to a quantizer boundary rounds differently, and the decoder output then differs for
    its receptive field (~16 frames of the tiny model). Seen about once per 1000 frames of
    live input; anything more than ``max_mismatch`` of the samples is a real difference.
    """
    assert len(y) <= len(ref) and len(y) > 0.9 * len(ref)
    bad = np.abs(y - ref[: len(y)]) > 1e-4
    assert bad.mean() <= max_mismatch, f"{bad.mean():.1%} of the samples differ"


def ncc(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation of two equal-length signals."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def best_alignment(haystack: np.ndarray, needle: np.ndarray) -> tuple[int, float]:
    """Offset of ``needle`` in ``haystack`` maximising the normalised correlation, and it."""
    n, m = len(haystack), len(needle)
    size = 1 << (n + m - 1).bit_length()
    cc = np.fft.irfft(np.fft.rfft(haystack, size) * np.conj(np.fft.rfft(needle, size)), size)
    cc = cc[: n - m + 1]
    energy = np.sqrt(np.maximum(np.convolve(haystack ** 2, np.ones(m), "valid"), 0.0))
    score = cc / (energy * np.linalg.norm(needle) + 1e-9)
    score[energy < 1e-3 * np.sqrt(m)] = 0.0  # silence cannot match
    k = int(np.argmax(score))
    return k, float(score[k])


def fine_alignment(haystack: np.ndarray, needle: np.ndarray, lo: int = 0,
                   hi: int | None = None) -> tuple[float, float]:
    """Like :func:`best_alignment` within ``haystack[lo:hi]``, refined to a tenth of a sample.

    A gap of silence (an underrun) at the 44.1 kHz device rate moves what follows by a
    fraction of a 16 kHz sample, which costs a broadband signal much of its correlation.
    """
    hi = len(haystack) if hi is None else min(hi, len(haystack))
    lo = max(0, lo)
    k, score = best_alignment(haystack[lo:hi], needle)
    k += lo
    m = len(needle)
    if k < 1 or k + m + 1 > len(haystack):
        return float(k), score
    spec, f = np.fft.rfft(needle), np.fft.rfftfreq(m)
    best = (float(k), score)
    for d in np.arange(-0.5, 0.51, 0.1):  # needle delayed by d samples
        shifted = np.fft.irfft(spec * np.exp(-2j * np.pi * f * d), m)[2:-2]
        c = ncc(haystack[k + 2: k + m - 2], shifted)
        if c > best[1]:
            best = (k + float(d), c)
    return best


def lowpass(x: np.ndarray, rate: int, cutoff: float) -> np.ndarray:
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(len(x), 1 / rate) > cutoff] = 0
    return np.fft.irfft(spec, len(x)).astype(np.float32)


# The codec link (no devices, simulated time) ----------------------------------------------------
def run_link(link: CodecLink, x: np.ndarray, chunks: list[int], dt: float = 0.0) -> np.ndarray:
    """Push ``x`` in ``chunks`` (cycled), advancing the clock by ``dt`` per chunk."""
    out, pos, now, k = [], 0, 0.0, 0
    while pos < len(x):
        n = chunks[k % len(chunks)]
        out.append(link.push(x[pos: pos + n], now))
        pos, now, k = pos + n, now + dt, k + 1
    out.append(link.finish(now))
    return np.concatenate(out)


def test_model_is_input_sensitive(codec: Codec, speech16: np.ndarray) -> None:
    ref = offline(codec, speech16)
    assert abs(ncc(ref, offline(codec, np.zeros_like(speech16)))) < 0.3
    assert abs(ncc(ref, offline(codec, np.roll(speech16, SR // 2)))) < 0.3


def test_lossless_link_equals_offline(codec: Codec, speech16: np.ndarray) -> None:
    link = CodecLink(TorchBackend(codec, n_q=2))
    y = run_link(link, speech16[:12345], [1, 7, 333, 40, 1000])
    ref = offline(codec, speech16[:12345], n_q=2)
    assert y.shape == ref.shape
    np.testing.assert_allclose(y, ref, atol=1e-5)
    assert link.counters.frames_concealed == 0


def test_jitter_within_the_buffer_only_delays(codec: Codec, speech16: np.ndarray) -> None:
    """Packets reorder under jitter, but all arrive before their playout time: same audio."""
    x = speech16[:8000]
    link = CodecLink(TorchBackend(codec), NetworkSimulator(0.0, jitter_ms=3.0, seed=1),
                     playout_delay_ms=150.0)
    out, now = [], 0.0
    first_out = None
    for i in range(0, len(x), 320):  # 20 ms chunks, 20 ms apart
        y = link.push(x[i: i + 320], now)
        if len(y) and first_out is None:
            first_out = now
        out.append(y)
        now += 0.02
    while link.next_event() is not None:  # let the clock run until the buffer is empty
        now = max(now, link.next_event())  # type: ignore[type-var]
        out.append(link.poll(now))
    out.append(link.finish(now))
    np.testing.assert_allclose(np.concatenate(out), offline(codec, x), atol=1e-5)
    assert link.jitter.late == 0 and link.counters.frames_concealed == 0
    assert first_out is not None and first_out >= 0.15 - 1e-9  # held for the playout delay


@given(loss=st.floats(0.0, 0.9), seed=st.integers(0, 2**16),
       chunks=st.lists(st.integers(16, 800), min_size=1, max_size=5))
def test_loss_keeps_timing_and_conceals(codec: Codec, speech16: np.ndarray, loss: float,
                                        seed: int, chunks: list[int]) -> None:
    x = speech16[8000:11000]
    link = CodecLink(TorchBackend(codec), NetworkSimulator(loss, 0.0, seed=seed),
                     fade_ms=10.0)
    y = run_link(link, x, chunks)
    hop = codec.hop_length
    frames = -(-len(x) // hop)
    assert len(y) == frames * hop and np.isfinite(y).all()
    c = link.counters
    assert c.frames_sent == frames == c.frames_played + c.frames_concealed
    assert c.frames_concealed == link.network.dropped == len(link.concealed_seqs)
    # Frames deep in a run of losses (past the 10 ms = 4-frame fade) are silent.
    lost = set(link.concealed_seqs)
    for s in lost:
        if all(s - k in lost for k in range(5)):
            assert not y[s * hop: (s + 1) * hop].any()


def test_bad_network_settings() -> None:
    with pytest.raises(ValueError, match="loss"):
        NetworkSimulator(1.0)
    with pytest.raises(ValueError, match="jitter"):
        NetworkSimulator(0.1, -1)


# The real-time engine with a file source and a null sink ---------------------------------------
def test_engine_real_time_file_to_null_sink(codec: Codec, speech16: np.ndarray) -> None:
    """1 s of speech at 44.1 kHz played in real time through resamplers and the codec."""
    x44 = resample(speech16[: SR], SR, 44100)
    engine = LiveEngine(TorchBackend(codec), 44100, 48000, block_ms=20.0,
                        keep_input=True, keep_output=True)
    source, sink = FileInput(engine, x44), NullOutput(engine)
    engine.start()
    sink.start()
    source.start()
    deadline = time.monotonic() + 20
    while not engine.finished and time.monotonic() < deadline:
        time.sleep(0.02)
    source.stop()
    sink.stop()
    engine.stop()
    assert engine.error is None and engine.finished
    x_in = np.concatenate(engine.saved_input)
    y_out = np.concatenate(engine.saved_output)
    # The encoder got the file (resampled back to 16 kHz) and the output is its decode.
    assert abs(len(x_in) - SR) <= 2
    assert ncc(x_in[200:-200], speech16[200: len(x_in) - 200]) > 0.99
    assert_same_decode(y_out, offline(codec, x_in))
    # Everything was played at 48 kHz; latency was measured and is plausible.
    assert engine.consumed == engine.produced
    s = engine.stats()
    assert s["overruns"] == 0
    lat = s["latency_ms"]
    print(f"\nfile -> null sink: end-to-end latency median {lat['median']:.1f} ms, "
          f"underruns {s['underruns']}, compute {s['compute_ms_per_frame']:.3f} ms/frame")
    assert lat["count"] > 10
    assert codec.latency_ms < lat["median"] < 1000
    # The budget: every part measured for every latency measurement, none negative (no device
    # timestamps here: each point of the path is a perf_counter reading, in path order), and
    # the means add up to the end-to-end mean.
    check_budget(s, nonnegative=True)
    budget = s["latency_budget_ms"]
    assert budget["input_device"]["mean"] == 0.0 and budget["output_device"]["mean"] == 0.0
    assert budget["input_resampler"]["mean"] > 0.0 < budget["output_resampler"]["mean"]


def check_budget(stats: dict, nonnegative: bool, tol_ms: float = 0.05) -> None:
    """``stats["latency_budget_ms"]``: all of BUDGET_PARTS, in path order, each measured as
    often as the end-to-end latency, means summing to its mean."""
    lat, budget = stats["latency_ms"], stats["latency_budget_ms"]
    assert list(budget) == list(BUDGET_PARTS)
    missing = [k for k, v in budget.items() if v is None or v["count"] != lat["count"]]
    assert not missing, f"parts not measured for every latency measurement: {missing}"
    if nonnegative:
        negative = {k: v["mean"] for k, v in budget.items() if v["mean"] < -tol_ms}
        assert not negative, f"negative parts: {negative}"
    total = sum(v["mean"] for v in budget.values())
    assert abs(total - lat["mean"]) < tol_ms, (total, lat["mean"])


def test_budget_in_simulated_time(codec: Codec, speech16: np.ndarray,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine driven by hand on a fake clock (no threads, compute takes no time): the
    parts come out as the steps this schedule takes, and add up to the end-to-end figure."""
    import dwancodec.live.engine as engine_mod

    clock = [0.0]
    monkeypatch.setattr(engine_mod.time, "perf_counter", lambda: clock[0])
    engine = LiveEngine(TorchBackend(codec), SR, SR, block_ms=5.0, prefill_ms=6.0)
    engine.started_at = 0.0
    block, out = engine.in_block, np.zeros(engine.in_block, np.float32)  # 80 samples, 5 ms
    for k in range(64):  # block k: captured from 5k ms to 5k + 5 ms
        t = 0.005 * k
        clock[0] = t + 0.006  # the input callback: 1 ms after the block's last sample
        engine.input_callback(speech16[k * block: (k + 1) * block], t)
        clock[0] = t + 0.0065  # the worker takes it 0.5 ms later, encodes and decodes
        engine._step()
        clock[0] = t + 0.0085  # the output callback; its first sample is played 3 ms later
        engine.output_callback(out, t + 0.0115)
    engine._update_latency()
    s = engine.stats()
    assert s["underruns"] == 0
    check_budget(s, nonnegative=True, tol_ms=1e-6)
    # Frame 0 is decoded when the block holding its last sample is (at 5j + 6.5 ms);
    # playback starts at the first output callback (5k + 8.5 ms) at least 6 ms (prefill)
    # later, and its DAC time (5k + 11.5 ms) is every sample's latency.
    j = -(-engine.link.hop // block) - 1
    k0 = int(np.ceil((5 * j + 6.5 + 6.0 - 8.5) / 5))
    e2e = 5 * k0 + 11.5
    lat, b = s["latency_ms"], s["latency_budget_ms"]
    assert lat["min"] == pytest.approx(e2e) and lat["max"] == pytest.approx(e2e)
    expected = {"input_block": 5.0, "input_device": 1.0, "input_queue": 0.5,
                "input_resampler": 0.0, "network": 0.0, "output_resampler": 0.0,
                "output_device": 3.0}
    for k, v in expected.items():
        assert b[k]["median"] == pytest.approx(v, abs=1e-6), k
    # Callbacks start on block boundaries: the frame's wait and the FIFO share the rest.
    assert b["codec_frame"]["mean"] + b["output_fifo"]["mean"] == pytest.approx(e2e - 9.5)


# The command line (in subprocesses, with no audio device visible) ------------------------------
def no_device_env(tmp: Path) -> dict[str, str]:
    """An environment in which ALSA/PortAudio finds no device (no server, default config)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "ALSA_"))}
    (tmp / "home").mkdir(exist_ok=True)
    env.update(HOME=str(tmp / "home"), PULSE_SERVER="unix:/nonexistent/pulse",
               XDG_RUNTIME_DIR=str(tmp / "home"), JACK_NO_START_SERVER="1")
    return env


def live(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dwancodec.cli", "live", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def _devices_visible(env: dict[str, str]) -> bool:
    r = subprocess.run([sys.executable, "-c", "import sounddevice as sd; "
                        "print(len(sd.query_devices()))"], env=env, capture_output=True,
                       text=True, timeout=60)
    return r.returncode == 0 and r.stdout.strip() not in ("", "0")


def test_cli_without_devices(tmp_path: Path, bundle: Path, codec: Codec,
                             speech16: np.ndarray) -> None:
    env = no_device_env(tmp_path)
    if _devices_visible(env):
        pytest.skip("this machine has audio devices visible to PortAudio without a server")
    r = live("--model", str(bundle), "--duration", "1", env=env)
    assert r.returncode == 2, r.stderr
    assert "no audio input device" in r.stderr and "--input-file" in r.stderr
    assert "Traceback" not in r.stderr

    # --input-file plays the file in real time through the same path (no output device).
    clip = tmp_path / "clip.wav"
    sf.write(clip, speech16[: SR // 2], SR)
    out = tmp_path / "out.wav"
    stats = tmp_path / "stats.json"
    r = live("--model", str(bundle), "--input-file", str(clip), "--save-output", str(out),
             "--stats-json", str(stats), "--n-q", "2", env=env)
    assert r.returncode == 0, r.stderr
    assert "no output device" in r.stderr and "end-to-end latency" in r.stdout
    y, rate = sf.read(out, dtype="float32")
    assert rate == SR
    assert_same_decode(y, offline(codec, speech16[: SR // 2], n_q=2))
    s = json.loads(stats.read_text())
    assert s["n_q"] == 2 and s["frames_concealed"] == 0 and s["latency_ms"]["count"] > 0


def test_cli_bad_arguments(tmp_path: Path, bundle: Path) -> None:
    env = no_device_env(tmp_path)
    for args, msg in [(["--loss", "1.5"], "--loss"), (["--jitter-ms", "-3"], "--jitter-ms"),
                      (["--input-file", str(tmp_path / "missing.wav")], "missing.wav"),
                      (["--backend", "onnx"], "--onnx-dir")]:
        clip = [] if "--input-file" in args else ["--input-file", str(DATA / "speech_en.flac")]
        r = live("--model", str(bundle), *clip, *args, env=env)
        assert r.returncode == 2, (args, r.stderr)
        assert msg in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args, msg", [
    (["--device-rate", "fast"], "--device-rate must be 'model', 'default' or a rate in Hz"),
    (["--device-rate", "0"], "--device-rate must be in [1000, 768000] Hz"),
    (["--device-rate", "16000.5"], "--device-rate must be"),
    (["--prefill-ms", "-1"], "--prefill-ms must be in [0, 1000]"),
    (["--prefill-ms", "5000"], "--prefill-ms must be in [0, 1000]"),
    (["--block-ms", "0.5"], "--block-ms must be in [1, 500]"),
])
def test_cli_bad_latency_settings(tmp_path: Path, bundle: Path, args: list[str], msg: str
                                  ) -> None:
    """Refused before any model or device is opened: exit 2 and one line saying why."""
    r = live("--model", str(bundle), *args, env=no_device_env(tmp_path))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0], r.stderr


def test_suggested_latency() -> None:
    """Two blocks, capped at the device's low latency (PortAudio rounds up to whole blocks)."""
    dev = {"default_low_output_latency": 0.0087, "default_low_input_latency": 0.0}
    assert suggested_latency(dev, "output", 0.0025) == pytest.approx(0.005)
    assert suggested_latency(dev, "output", 0.020) == pytest.approx(0.0087)
    assert suggested_latency(dev, "input", 0.0025) == pytest.approx(0.005)  # unknown: 2 blocks


# End to end through a real audio server --------------------------------------------------------
@pytest.fixture
def pulse(tmp_path: Path) -> Iterator[PrivatePulseAudio]:
    missing = missing_tools()
    if missing:
        reason = (f"{', '.join(missing)} not installed (apt-get install pulseaudio "
                  "pulseaudio-utils libportaudio2 libasound2-plugins; .ci/run does)")
        if os.environ.get("DWANCODEC_REQUIRE_AUDIO_SERVER"):
            pytest.fail(reason)
        pytest.skip(reason)
    server = PrivatePulseAudio(tmp_path / "pulse")
    try:
        server.start()
        yield server
    finally:
        server.stop()  # by PID, whatever happened


def test_live_round_trip_through_pulseaudio(pulse: PrivatePulseAudio, bundle: Path,
                                            codec: Codec, speech16: np.ndarray,
                                            tmp_path: Path) -> None:
    """Speech into the virtual microphone -> ``dwancodec live`` -> the virtual speaker."""
    probe = pulse.record(SR, "probe.monitor", channels=2)  # [mic, speaker] on one clock
    pulse.play(np.tile(speech16, 12), SR, sink="mic")  # 48 s: covers any startup time
    saved_in, saved_out = tmp_path / "in.wav", tmp_path / "out.wav"
    stats_path = tmp_path / "stats.json"
    duration = 3.0
    # 10 ms blocks, not the 2.5 ms default: the tiny model's 2.5 ms frames on torch, one per
    # encoder call, run near real time on a loaded machine (what is checked here is the audio
    # path; the default block's latency is the benchmark's, benchmarks/latency.py).
    r = live("--model", str(bundle), "--duration", str(duration), "--save-input", str(saved_in),
             "--save-output", str(saved_out), "--stats-json", str(stats_path),
             "--block-ms", "10", env=pulse.env(), timeout=120)
    time.sleep(0.3)  # let the last output reach the sink
    rec = probe.stop()
    assert r.returncode == 0, r.stdout + r.stderr
    stats = json.loads(stats_path.read_text())
    print("\n" + r.stdout)
    mic, speaker = lowpass(rec[:, 0], SR, 6000), lowpass(rec[:, 1], SR, 6000)

    x, rate = sf.read(saved_in, dtype="float32")
    y, _ = sf.read(saved_out, dtype="float32")
    assert rate == SR and len(x) > 0.8 * duration * SR
    # 1. The decoder produced the codec's decode of what the encoder received.
    ref = offline(codec, x)
    assert_same_decode(y, ref)
    # 2. The speaker played it: quarter-second pieces of the reference, found in the
    #    recording (each aligned on its own: an underrun shifts what follows), band-limited
    #    to 6 kHz (what the server's and our resamplers pass intact). The last 0.5 s may
    #    still have been buffered when live stopped.
    ref_lp = lowpass(ref, SR, 6000)
    other_lp = lowpass(offline(codec, np.roll(x, SR // 3)), SR, 6000)
    piece = SR // 4
    scores, others, delays = [], [], []
    for start in range(0, len(ref) - SR // 2 - piece + 1, piece):
        at, score = fine_alignment(speaker, ref_lp[start: start + piece])
        scores.append(score)
        delays.append(at - start)
        others.append(best_alignment(speaker, other_lp[start: start + piece])[1])
    good = np.asarray(scores) > 0.95
    assert good.mean() >= 0.6, f"the speaker did not play the decode of the mic: {scores}"
    assert np.median(others) < 0.5  # the check can tell the right decode from another one
    # 3. The microphone carried the speech: the piece of input whose decode came out first
    #    (at ``out_at``) is in the mic channel, less than a second earlier (the speech is
    #    looped, so it is also there every 4 s).
    k0 = int(np.argmax(good)) * piece
    out_at = int(delays[int(np.argmax(good))]) + k0
    in_at, c_in = fine_alignment(mic, lowpass(x[k0: k0 + piece], SR, 6000),
                                 out_at - SR, out_at + piece)
    assert c_in > 0.95, f"captured input does not match the speech played ({c_in:.3f})"
    true_ms = 1000 * (out_at - in_at) / SR
    lat = stats["latency_ms"]
    print(f"pieces: correlation with the decode {np.round(scores, 3).tolist()}, with the decode "
          f"of another input {np.round(others, 3).tolist()}")
    print(f"end-to-end latency: measured by dwancodec live {lat['median']:.1f} ms (p95 "
          f"{lat['p95']:.1f}), seen at the server (mic -> speaker, first piece) {true_ms:.1f} "
          f"ms; algorithmic {stats['algorithmic_latency_ms']:.1f} ms; underruns "
          f"{stats['underruns']} ({stats['underrun_ms']:.0f} ms), overruns {stats['overruns']}")
    assert lat["count"] > 0 and stats["algorithmic_latency_ms"] < lat["median"] < 1000
    # The budget: every part measured each time, adding up to the end-to-end mean (the input
    # device part comes from PortAudio's timestamps, which can be off by a little: no sign
    # check here), and printed.
    check_budget(stats, nonnegative=False)
    assert "latency budget" in r.stdout and "output device" in r.stdout
    # Underruns add delay as the run goes on: the server's figure for one piece must lie
    # within the range the live command measured.
    assert lat["min"] - 40 < true_ms < lat["max"] + 40, "reported latency is not what happened"


def test_helper_stops_the_daemon(tmp_path: Path) -> None:
    if missing_tools():
        pytest.skip("pulseaudio not installed")
    server = PrivatePulseAudio(tmp_path / "pulse").start()
    pid = server.pid
    assert pid is not None and Path(f"/proc/{pid}").exists()
    server.stop()
    server.stop()  # idempotent
    with pytest.raises(ProcessLookupError):  # killed and reaped
        os.kill(pid, 0)


# The plain-API demos ---------------------------------------------------------------------------
DEMOS = Path(__file__).parent.parent / "demos"


def test_demo_file_roundtrip(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "decoded.wav"
    r = subprocess.run([sys.executable, str(DEMOS / "file_roundtrip.py"),
                        str(DATA / "speech_en.flac"), str(out), "--model", str(bundle),
                        "--bitrate", "5"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert "same codes as offline: True" in r.stdout
    y, rate = sf.read(out)
    assert rate == SR and len(y) == len(load_audio(DATA / "speech_en.flac", SR)[0])


def test_demo_live_mic_through_pulseaudio(pulse: PrivatePulseAudio, bundle: Path,
                                          speech16: np.ndarray) -> None:
    recording = pulse.record(SR)
    pulse.play(np.tile(speech16, 12), SR, sink="mic")
    r = subprocess.run([sys.executable, str(DEMOS / "live_mic.py"), "--model", str(bundle),
                        "--seconds", "1.5"], env=pulse.env(), capture_output=True, text=True,
                       timeout=120)
    time.sleep(0.2)
    played = recording.stop()
    assert r.returncode == 0, r.stderr
    assert "done:" in r.stdout
    assert np.sqrt(np.mean(played ** 2)) > 0.005  # the speaker played something


# The ONNX Runtime backend ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def onnx_dir(codec: Codec, tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        from dwancodec.export.onnx_export import export_onnx
    except ImportError as e:
        pytest.skip(f"ONNX export not available: {e}")
    out = tmp_path_factory.mktemp("onnx") / "tiny"
    export_onnx(codec, out, exporter="torchscript", optimize=False)  # the fast exporter
    return out


def test_onnx_backend_matches_torch(onnx_dir: Path, codec: Codec, speech16: np.ndarray) -> None:
    from dwancodec.live import OnnxBackend

    backend = OnnxBackend(onnx_dir, bitrate=5.0)
    assert backend.n_q == 2 and backend.sample_rate == SR
    y = run_link(CodecLink(backend), speech16[:9000], [320, 77])
    assert_same_decode(y, offline(codec, speech16[:9000], n_q=2), max_mismatch=0.0)


def test_cli_onnx_backend_without_torch(onnx_dir: Path, codec: Codec, speech16: np.ndarray,
                                        tmp_path: Path) -> None:
    """``--backend onnx`` runs the whole live path without importing torch."""
    clip, out = tmp_path / "clip.wav", tmp_path / "out.wav"
    sf.write(clip, speech16[: SR // 2], SR)
    args = ["live", "--backend", "onnx", "--onnx-dir", str(onnx_dir), "--input-file",
            str(clip), "--save-output", str(out), "-q"]
    code = ("import sys; from dwancodec.cli import main; rc = main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'torch was imported'; sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, *args], env=no_device_env(tmp_path),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "onnx backend" in r.stdout
    y, _ = sf.read(out, dtype="float32")
    assert_same_decode(y, offline(codec, speech16[: SR // 2]))
