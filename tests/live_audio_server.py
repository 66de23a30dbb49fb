"""A private PulseAudio server for tests: a virtual microphone and a virtual speaker.

The daemon runs with its own HOME and runtime folder under a temporary directory, listens on
its own unix socket only, loads no default modules (``-n``) and never exits by itself
(``--exit-idle-time=-1``). It has two sinks: ``speaker`` (what PortAudio plays to) and ``mic``
(play into it; its monitor is remapped to the source ``mic_in``, the default source, which
PortAudio records from). Both are remapped onto the two channels of a stereo null sink
``probe``: recording ``probe.monitor`` gives what went into the microphone (left) and what came
out of the speaker (right) on one clock, hence the true end-to-end delay. An ``.asoundrc`` in
the private HOME makes ALSA's ``default`` device the ``pulse`` plugin, so PortAudio sees the
server.

Use :meth:`PrivatePulseAudio.env` as the environment of every client process. The daemon is
stopped by its PID in :meth:`stop` (idempotent), which tests call from a finalizer.

Run this file to get a server for trying ``dwancodec live`` by hand::

    python tests/live_audio_server.py      # prints the environment to export; Ctrl-C stops it
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

TOOLS = ("pulseaudio", "pactl", "pacat")


def missing_tools() -> list[str]:
    """Executables this helper needs that are not on PATH."""
    return [t for t in TOOLS if shutil.which(t) is None]


class PrivatePulseAudio:
    """Start with :meth:`start` (or ``with``); :meth:`stop` kills the daemon by its PID."""

    def __init__(self, root: str | Path, rate: int = 48000) -> None:
        self.root = Path(root)
        self.rate = rate
        self.home = self.root / "home"
        self.runtime = self.root / "run"
        self.socket = self.runtime / "native"
        self.log = self.root / "pulseaudio.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._children: list[subprocess.Popen[bytes]] = []

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def env(self) -> dict[str, str]:
        """Environment for clients (PortAudio through ALSA's pulse plugin, pacat, pactl)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "ALSA_"))}
        env.update({
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(self.runtime),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_RUNTIME_PATH": str(self.runtime / "pulse"),
            "PULSE_CLIENTCONFIG": str(self.root / "client.conf"),
            "PULSE_SINK": "speaker",
            "PULSE_SOURCE": "mic_in",
        })
        return env

    def _write_config(self) -> Path:
        for d in (self.home / ".config" / "pulse", self.runtime / "pulse"):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.runtime, 0o700)
        (self.home / ".asoundrc").write_text(
            "pcm.!default { type pulse }\nctl.!default { type pulse }\n")
        (self.root / "client.conf").write_text("autospawn = no\n")
        script = self.root / "server.pa"
        # "probe" is a stereo null sink: left = what is played into the mic, right = what is
        # played to the speaker, both on one clock, so one recording of probe.monitor shows
        # the true delay between them. norewinds=1: without it a null sink renders up to 2 s
        # ahead of real time and its clients run in bursts.
        remap = "channels=1 channel_map=mono remix=no master=probe master_channel_map"
        script.write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}\n"
            f"load-module module-null-sink sink_name=probe norewinds=1 format=float32le "
            f"rate={self.rate} channels=2 channel_map=front-left,front-right\n"
            f"load-module module-remap-sink sink_name=mic {remap}=front-left\n"
            f"load-module module-remap-sink sink_name=speaker {remap}=front-right\n"
            "load-module module-remap-source source_name=mic_in master=mic.monitor\n"
            "set-default-sink speaker\n"
            "set-default-source mic_in\n"
        )
        return script

    def start(self, timeout: float = 15.0) -> PrivatePulseAudio:
        script = self._write_config()
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["pulseaudio", "-n", "-F", str(script), "--daemonize=no",
                 "--exit-idle-time=-1", "--use-pid-file=no", "--disable-shm=yes",
                 "--realtime=no", "--high-priority=no", "--system=no", "--log-target=stderr",
                 "--log-level=warning"],
                env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited with {self.proc.returncode}:\n"
                                   f"{self.log.read_text(errors='replace')}")
            if self.socket.exists():
                r = subprocess.run(["pactl", "info"], env=self.env(), capture_output=True,
                                   timeout=10)
                if r.returncode == 0:
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"pulseaudio did not come up in {timeout} s:\n"
                           f"{self.log.read_text(errors='replace')}")

    def pactl(self, *args: str) -> str:
        return subprocess.run(["pactl", *args], env=self.env(), capture_output=True, text=True,
                              check=True, timeout=10).stdout

    def play(self, audio: np.ndarray, rate: int, sink: str = "mic") -> subprocess.Popen[bytes]:
        """Start playing mono float ``audio`` into ``sink`` (returns the pacat process)."""
        raw = self.root / f"play-{len(self._children)}.f32"
        np.asarray(audio, dtype="<f4").tofile(raw)
        p = subprocess.Popen(["pacat", "--playback", f"--device={sink}", "--raw",
                              "--format=float32le", f"--rate={rate}", "--channels=1",
                              "--latency-msec=20", str(raw)],
                             env=self.env(), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._children.append(p)
        return p

    def record(self, rate: int, source: str = "speaker.monitor", channels: int = 1
               ) -> Recording:
        """Start recording ``source`` as float32 at ``rate``; ``source="probe.monitor"``
        with ``channels=2`` gives [mic, speaker] on one clock."""
        return Recording(self, rate, source, channels)

    def stop(self) -> None:
        for p in self._children:
            _kill(p)
        self._children.clear()
        if self.proc is not None:
            _kill(self.proc)
            self.proc = None

    def __enter__(self) -> PrivatePulseAudio:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Recording:
    """A ``pacat --record`` process writing raw float32 to a file until :meth:`stop`."""

    def __init__(self, server: PrivatePulseAudio, rate: int, source: str, channels: int = 1
                 ) -> None:
        self.rate, self.channels = rate, channels
        self.path = server.root / f"record-{len(server._children)}.f32"
        self._file = open(self.path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(["pacat", "--record", f"--device={source}", "--raw",
                                      "--format=float32le", f"--rate={rate}",
                                      f"--channels={channels}", "--latency-msec=20"],
                                     env=server.env(), stdout=self._file,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        server._children.append(self.proc)

    def stop(self) -> np.ndarray:
        """Stop recording; the samples, ``[T]`` (mono) or ``[T, channels]``."""
        _kill(self.proc)
        self._file.close()
        data = np.fromfile(self.path, dtype="<f4")
        if self.channels == 1:
            return data
        return data[: len(data) // self.channels * self.channels].reshape(-1, self.channels)


def _kill(p: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """Terminate one process by its PID (SIGTERM, then SIGKILL) and reap it."""
    if p.poll() is not None:
        return
    try:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout)


if __name__ == "__main__":
    missing = missing_tools()
    if missing:
        raise SystemExit(f"missing: {', '.join(missing)} (apt-get install pulseaudio "
                         "pulseaudio-utils libasound2-plugins)")
    root = Path(tempfile.mkdtemp(prefix="dwancodec-pulse-"))
    with PrivatePulseAudio(root) as server:
        print(f"PulseAudio running (pid {server.pid}); in another shell:\n")
        for k in ("HOME", "XDG_RUNTIME_DIR", "PULSE_SERVER", "PULSE_CLIENTCONFIG"):
            print(f"export {k}={server.env()[k]}")
        print("\nplay into the mic:  pacat --device=mic FILE.wav --file-format"
              "\nrecord the speaker: parecord --device=speaker.monitor out.wav\n(Ctrl-C stops)")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    shutil.rmtree(root, ignore_errors=True)
