"""Shared fixtures: tiny models of every quantizer kind, real speech from ../shared (copied)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

from dwancodec.config import QUANTIZER_KINDS, get_config
from dwancodec.model import Codec

settings.register_profile(
    "ci", max_examples=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "thorough", max_examples=200, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
torch.set_num_threads(1)

DATA = Path(__file__).parent / "data"


def make_codec(name: str = "tiny", kind: str = "fsq", seed: int = 0) -> Codec:
    torch.manual_seed(seed)
    cfg = get_config(name).replace(**{"quantizer.kind": kind})
    return Codec(cfg).eval()


@pytest.fixture(params=QUANTIZER_KINDS)
def tiny_codec(request: pytest.FixtureRequest) -> Codec:
    return make_codec("tiny", request.param)


@pytest.fixture(scope="session")
def speech() -> torch.Tensor:
    """A few seconds of real speech at 16 kHz, ``[1, 1, T]`` (see tests/data/README.md)."""
    from dwancodec.audio import load_audio

    audio, _ = load_audio(DATA / "speech_en.flac", 16000)
    return torch.from_numpy(audio)[None, None]


def degradations(x: np.ndarray, sr: int = 16000) -> dict[str, np.ndarray]:
    """Real degradations of a ``[T]`` float32 voice at ``sr``, by name: noise at four SNRs,
    three low-passes, clipping and a codec-like phase jitter (the perceptual-loss tests score
    them with our losses and with the reference metrics)."""
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {}
    for snr in (5, 15, 25, 35):
        n = rng.standard_normal(x.size)
        n *= np.sqrt(np.mean(x**2) / np.mean(n**2) / 10 ** (snr / 10))
        out[f"noise {snr} dB"] = (x + n).astype(np.float32)
    spec = np.fft.rfft(x)
    for cut in (1500, 3000, 5000):
        s = spec.copy()
        s[int(cut * x.size / sr):] = 0
        out[f"low-pass {cut} Hz"] = np.fft.irfft(s, x.size).astype(np.float32)
    out["clipped"] = np.clip(x, -0.3 * np.abs(x).max(), 0.3 * np.abs(x).max())
    # a codec-like error: the magnitude kept, the phase of every 32 ms frame jittered
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(x, (0, 512)), 512)[::256]
    win = np.hanning(514)[1:-1]
    spec = np.fft.rfft(frames * win, axis=-1)
    spec *= np.exp(1j * rng.uniform(-0.6, 0.6, spec.shape))
    y = np.zeros(x.size + 1024)
    for i, f in enumerate(np.fft.irfft(spec, 512, axis=-1)):
        y[i * 256:i * 256 + 512] += f * win
    out["phase jitter"] = y[: x.size].astype(np.float32)
    return out


@pytest.fixture(scope="session")
def clean() -> np.ndarray:
    """The test voice's first 4 s at 16 kHz, ``[T]`` float32 (the perceptual-loss tests)."""
    from dwancodec.audio import load_audio

    audio, _ = load_audio(DATA / "speech_en.flac", 16000)
    return audio[: 4 * 16000].astype(np.float32)
