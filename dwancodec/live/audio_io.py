"""Audio endpoints for the live engine: sounddevice streams, a real-time file source, a sink
that only keeps time (no output device).

Input and output are two separate sounddevice streams (a single duplex stream does not work
through every host API, e.g. ALSA's ``pulse`` plugin). Callbacks convert PortAudio timestamps
to the ``time.perf_counter`` clock and hand blocks to the engine, which never blocks them.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .engine import LiveEngine


class AudioUnavailable(ValueError):
    """No usable audio device (or no PortAudio): a user-facing condition, exit code 2."""


def import_sounddevice() -> ModuleType:
    """``sounddevice``, or :class:`AudioUnavailable` saying what to install."""
    try:
        import sounddevice
    except ImportError:
        raise AudioUnavailable("the live demo needs sounddevice: pip install "
                               "'dwancodec[live]'") from None
    except OSError as e:  # the PortAudio shared library is missing
        raise AudioUnavailable(f"PortAudio is not available ({e}); install it (Debian/Ubuntu: "
                               "apt-get install libportaudio2)") from None
    return sounddevice


def list_devices() -> str:
    sd = import_sounddevice()
    text = str(sd.query_devices())
    return text if text.strip() else "no audio devices found"


def _device_spec(spec: str | int | None) -> str | int | None:
    if isinstance(spec, str) and spec.strip().lstrip("-").isdigit():
        return int(spec)
    return spec


def find_device(spec: str | int | None, kind: str) -> dict[str, Any] | None:
    """The device dict for ``spec`` (index, name substring or None = default) of ``kind``
    ("input"/"output"); ``None`` when there is no such device at all (no default).

    An explicit ``spec`` that matches nothing raises ``ValueError``.
    """
    sd = import_sounddevice()
    spec = _device_spec(spec)
    try:
        info = sd.query_devices(spec, kind=kind)
    except sd.PortAudioError:
        if spec is None:
            return None
        raise ValueError(f"no {kind} device {spec!r} (see --list-devices)") from None
    except ValueError as e:
        raise ValueError(f"{kind} device {spec!r}: {e} (see --list-devices)") from None
    channels = info[f"max_{kind}_channels"]
    if channels < 1:
        if spec is None:
            return None
        raise ValueError(f"device {spec!r} ({info['name']}) has no {kind} channels")
    return dict(info)


def device_rate(device: dict[str, Any], kind: str, preferred: int | None) -> int:
    """``preferred`` (the model's rate: no resampler on our side) if the ``kind`` ("input" /
    "output") device accepts it, else the device's default rate."""
    default = int(device["default_samplerate"])
    if preferred is None or preferred == default:
        return default
    sd = import_sounddevice()
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    for channels in (1, min(2, int(device[f"max_{kind}_channels"]))):
        try:
            check(device["index"], channels=channels, dtype="float32", samplerate=preferred)
            return int(preferred)
        except (sd.PortAudioError, ValueError):
            continue
    return default


def suggested_latency(device: dict[str, Any], kind: str, block_s: float) -> float:
    """The buffer to ask PortAudio for, in seconds: two blocks (the least a double-buffered
    host API such as ALSA can run with; it rounds up to whole blocks), but never more than
    the device's own "low" latency. With ``latency="low"`` ALSA's ``default``/``pulse``
    device (8.7 ms) keeps 10 ms at 5 ms blocks and 10 ms at 2.5 ms blocks as well; two
    2.5 ms blocks are 5 ms."""
    low = float(device.get(f"default_low_{kind}_latency") or 0.0)
    return min(low, 2.0 * block_s) if low > 0 else 2.0 * block_s


class DeviceInput:
    """sounddevice ``InputStream`` feeding :meth:`LiveEngine.input_callback`."""

    def __init__(self, engine: LiveEngine, device: dict[str, Any]) -> None:
        sd = import_sounddevice()
        self.engine = engine
        self.channels = 1
        try:
            sd.check_input_settings(device["index"], channels=1, dtype="float32",
                                    samplerate=engine.in_rate)
        except sd.PortAudioError:
            self.channels = min(2, int(device["max_input_channels"]))
        self.stream = sd.InputStream(device=device["index"], channels=self.channels,
                                     samplerate=engine.in_rate, blocksize=engine.in_block,
                                     dtype="float32",
                                     latency=suggested_latency(device, "input", engine.in_block
                                                               / engine.in_rate),
                                     callback=self._callback)

    def _callback(self, indata: np.ndarray, frames: int, t: Any, status: Any) -> None:
        now = time.perf_counter()
        if status.input_overflow:
            self.engine.device_input_overflows += 1
        if t.inputBufferAdcTime > 0 and t.currentTime > 0:
            adc = now - (t.currentTime - t.inputBufferAdcTime)
        else:
            adc = now - frames / self.engine.in_rate - self.stream.latency
        block = indata[:, 0] if self.channels == 1 else indata.mean(axis=1)
        self.engine.input_callback(block, adc, now)

    def start(self) -> None:
        self.stream.start()

    def stop(self) -> None:
        self.stream.stop()
        self.stream.close()


class DeviceOutput:
    """sounddevice ``OutputStream`` pulling from :meth:`LiveEngine.output_callback`."""

    def __init__(self, engine: LiveEngine, device: dict[str, Any]) -> None:
        sd = import_sounddevice()
        self.engine = engine
        self.channels = 1
        try:
            sd.check_output_settings(device["index"], channels=1, dtype="float32",
                                     samplerate=engine.out_rate)
        except sd.PortAudioError:
            self.channels = min(2, int(device["max_output_channels"]))
        self.stream = sd.OutputStream(device=device["index"], channels=self.channels,
                                      samplerate=engine.out_rate, blocksize=engine.out_block,
                                      dtype="float32",
                                      latency=suggested_latency(device, "output",
                                                                engine.out_block
                                                                / engine.out_rate),
                                      callback=self._callback)

    def _callback(self, outdata: np.ndarray, frames: int, t: Any, status: Any) -> None:
        now = time.perf_counter()
        if status.output_underflow:
            self.engine.device_output_underflows += 1
        if t.outputBufferDacTime > 0 and t.currentTime > 0:
            dac = now + (t.outputBufferDacTime - t.currentTime)
        else:
            dac = now + self.stream.latency
        self.engine.output_callback(outdata, dac, now)

    def start(self) -> None:
        self.stream.start()

    def stop(self) -> None:
        self.stream.stop()
        self.stream.close()


class _Clocked:
    """A thread that calls ``tick(k)`` every ``period`` seconds on an absolute schedule."""

    def __init__(self, period: float, name: str) -> None:
        self.period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        t0 = time.perf_counter()
        k = 0
        try:
            while not self._stop.is_set():
                delay = t0 + (k + 1) * self.period - time.perf_counter()
                if delay > 0 and self._stop.wait(delay):
                    return
                if not self.tick(k):
                    return
                k += 1
        except BaseException as e:
            self.error = e

    def tick(self, k: int) -> bool:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(2.0)


class FileInput(_Clocked):
    """Plays ``audio`` ``[T]`` (at the engine's input rate) into the engine in real time, one
    block per block period, as a microphone would deliver it; then signals end of input."""

    def __init__(self, engine: LiveEngine, audio: np.ndarray) -> None:
        super().__init__(engine.in_block / engine.in_rate, "dwancodec-live-file")
        self.engine = engine
        self.audio = np.asarray(audio, dtype=np.float32)
        self.done = False

    def tick(self, k: int) -> bool:
        b = self.engine.in_block
        block = self.audio[k * b: (k + 1) * b]
        if len(block):
            now = time.perf_counter()  # the block's last sample was just captured
            self.engine.input_callback(block, now - len(block) / self.engine.in_rate, now)
        if (k + 1) * b >= len(self.audio):
            self.engine.end_of_input()
            self.done = True
            return False
        return True


class NullOutput(_Clocked):
    """No output device: consumes decoded audio in real time (and drops it)."""

    def __init__(self, engine: LiveEngine) -> None:
        super().__init__(engine.out_block / engine.out_rate, "dwancodec-live-null-output")
        self.engine = engine
        self._buf = np.zeros(engine.out_block, np.float32)

    def tick(self, k: int) -> bool:
        now = time.perf_counter()  # "played" as soon as it is taken
        self.engine.output_callback(self._buf, now, now)
        return True


def load_input_file(path: str | Path) -> tuple[np.ndarray, int]:
    """A file as mono float32 at its own rate (the engine's input resampler converts it)."""
    from ..audio import load_audio

    audio, rate = load_audio(path)
    if audio.size == 0:
        raise ValueError(f"{path} contains no audio")
    return audio, rate

