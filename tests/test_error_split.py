"""recipes/error_split.py's measurements (training-log rounds 8-14): the hybrids are what
they say, and the best-delay oracle finds a known delay."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes"))
from error_split import best_delay, griffin_lim, hybrids, resynth

SR, N_FFT, HOP = 16000, 160, 80


def stft(x: torch.Tensor) -> torch.Tensor:
    return torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT, dtype=torch.float64),
                      return_complex=True)


def freqs() -> torch.Tensor:
    return torch.arange(N_FFT // 2 + 1, dtype=torch.float64)[:, None] * SR / N_FFT


@pytest.mark.parametrize("delay", [-5.0, -1.5, 0.0, 2.25, 3.0])
def test_best_delay_finds_a_known_delay(delay: float) -> None:
    """A decode that is the input moved by ``delay`` samples (a fractional delay, done in the
    frequency domain) gets tau = -delay in the frames away from the edges: to the grid step in
    most frames, within 0.15 sample in all (a window of noise moved by a fraction of a sample
    is not exactly the moved window)."""
    x = torch.randn(8000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = torch.fft.rfftfreq(len(x), 1 / SR, dtype=torch.float64)
    y = torch.fft.irfft(torch.fft.rfft(x) * torch.exp(-2j * torch.pi * f * delay / SR),
                        n=len(x))
    tau = best_delay(stft(x), stft(y), freqs(), SR)[0, 2:-2] * SR
    err = (tau + delay).abs()
    assert err.median() <= 0.05 + 1e-9 and err.max() <= 0.15 + 1e-9


def test_the_hybrids_take_the_parts_they_name() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4000, generator=g, dtype=torch.float64)
    y = 0.5 * torch.randn(4000, generator=g, dtype=torch.float64)
    sx, sy = stft(x), stft(y)
    h = hybrids(sx, sy, SR, N_FFT, detail=True)
    assert torch.equal(h["decode"][0], sy.abs()) and torch.equal(h["decode"][1], sy.angle())
    assert torch.equal(h["decode magnitude + true phase"][1], sx.angle())
    assert torch.equal(h["true magnitude + decode phase"][0], sx.abs())
    # the decode resynthesised through the same round trip is the decode
    window = torch.hann_window(N_FFT, dtype=torch.float64)
    back = resynth(*h["decode"], window, HOP, len(y))
    assert torch.allclose(torch.from_numpy(back)[N_FFT:-N_FFT], y[N_FFT:-N_FFT], atol=1e-9)
    # the oracle moves the decode's phase by a linear ramp per frame: magnitudes untouched
    mag, phase = h["decode phase + the best delay per frame (oracle)"]
    assert torch.equal(mag, sy.abs()) and not torch.allclose(phase, sy.angle())


def test_griffin_lim_moves_a_random_phase_towards_consistency() -> None:
    """From a random phase, the STFT of the resynthesis gets closer to the target magnitude
    with more iterations (spectral convergence falls)."""
    g = torch.Generator().manual_seed(2)
    t = torch.arange(8000, dtype=torch.float64) / SR
    x = sum(torch.cos(2 * torch.pi * 150 * k * t) / k for k in range(1, 20))
    mag = stft(x).abs()
    start = (torch.rand(mag.shape, generator=g, dtype=mag.dtype) * 2 - 1) * torch.pi
    window = torch.hann_window(N_FFT, dtype=torch.float64)

    def convergence(phase: torch.Tensor) -> float:
        y = torch.from_numpy(resynth(mag, phase, window, HOP, len(x)))
        return float((stft(y).abs() - mag).norm() / mag.norm())
    errs = [convergence(griffin_lim(mag, start, N_FFT, n, HOP)) for n in (0, 5, 50)]
    assert errs[0] > errs[1] > errs[2]


def test_the_drifting_delay_peaks_at_k_and_changes_slowly_unlike_the_jitter() -> None:
    """The drift hybrids move the true phase by a linear ramp 2 pi f tau per frame whose tau
    peaks at k samples and changes little between neighbouring frames; the jitter rows'
    tau jumps."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(16000, generator=g, dtype=torch.float64)
    sx = stft(x)
    h = hybrids(sx, stft(0.5 * x), SR, N_FFT, detail=True)
    f = freqs()

    def tau(name: str) -> torch.Tensor:  # samples per frame, read off bin 1's phase shift
        phase = h[name][1]
        shift = torch.angle(torch.polar(torch.ones_like(phase), sx.angle() - phase))
        return (shift[1] / (2 * torch.pi * f[1, 0]) * SR)
    for k in (4, 16):
        t = tau(f"true phase, pulses moved by a delay drifting up to {k} samples")
        assert t.abs().max() == pytest.approx(k, rel=1e-6)
        assert (t.diff().abs().max() / k) < 0.25
    jitter = tau("true phase, pulses moved by up to 4 samples per frame")
    assert jitter.abs().max() <= 4 + 1e-9 and (jitter.diff().abs().max() / 4) > 0.5
