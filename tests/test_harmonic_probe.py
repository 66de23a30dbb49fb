"""The measurement behind recipes/harmonic_probe.py (training-log round 12): the harmonic-to-
valley ratio sees a clean comb as clean, noise between the harmonics as smear, and does not
depend on a pitch track being exact."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes"))
from harmonic_probe import HOP, SR, harmonic_to_valley

BANDS = ((50.0, 1000.0), (1000.0, 2000.0))


def comb(f0: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return sum(torch.cos(2 * math.pi * k * f0 * t) / k for k in range(1, int(3900 / f0)))


def hvr(x: torch.Tensor, f0: float) -> np.ndarray:
    n = len(x) // HOP
    frames = np.arange(10, n - 10)
    return np.nanmedian(harmonic_to_valley(x, np.full(n, f0), frames, BANDS), 0)


def test_a_clean_comb_is_far_above_the_same_comb_in_noise() -> None:
    g = torch.Generator().manual_seed(0)
    x = comb(150.0)
    noisy = x + 0.3 * torch.randn(len(x), generator=g, dtype=torch.float64)
    clean, smeared = hvr(x, 150.0), hvr(noisy, 150.0)
    assert (clean > 40).all()
    assert (clean - smeared > 10).all()
    # white noise fills the valleys of every band: the ratio falls towards 0 dB, not below
    assert (smeared > 0).all()


def test_a_track_a_few_percent_off_measures_the_same_comb() -> None:
    x = comb(200.0)
    exact, off = hvr(x, 200.0), hvr(x, 200.0 * 1.02)
    assert (np.abs(exact - off) < 3).all()
