"""Objective scores: known properties on real speech (identity, noise, scale, trimming)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dwancodec import metrics
from dwancodec.audio import load_audio

from .conftest import DATA

SR = 16000


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    audio, _ = load_audio(DATA / "speech_en.flac", SR)
    return audio[: 3 * SR]


def _noisy(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(x.size)
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return (x + noise).astype(np.float32)


def test_identical_signals(clean: np.ndarray) -> None:
    assert metrics.si_sdr(clean, clean) > 60
    assert metrics.mel_distance(clean, clean, SR) == 0.0
    assert metrics.pesq_wb(clean, clean, SR) > 4.5
    assert metrics.stoi(clean, clean, SR) > 0.99


def test_noise_lowers_every_score(clean: np.ndarray) -> None:
    light, heavy = _noisy(clean, 20), _noisy(clean, 0)
    s_light, s_heavy = metrics.score_all(clean, light, SR), metrics.score_all(clean, heavy, SR)
    assert set(s_light) == {"pesq_wb", "stoi", "si_sdr", "mel_distance"}
    assert s_light["si_sdr"] == pytest.approx(20, abs=0.5)
    assert s_heavy["si_sdr"] == pytest.approx(0, abs=0.5)
    assert s_heavy["pesq_wb"] < s_light["pesq_wb"] < 4.5
    assert s_heavy["stoi"] < s_light["stoi"] < 1.0
    assert 0 < s_light["mel_distance"] < s_heavy["mel_distance"]


def test_si_sdr_is_scale_invariant(clean: np.ndarray) -> None:
    est = _noisy(clean, 10)
    assert metrics.si_sdr(clean, 0.1 * est) == pytest.approx(metrics.si_sdr(clean, est), abs=1e-6)


def test_length_mismatch_is_trimmed(clean: np.ndarray) -> None:
    padded = np.concatenate([clean, np.zeros(777, np.float32)])
    assert metrics.mel_distance(clean, padded, SR) == 0.0
    assert metrics.si_sdr(padded, clean) > 60


def test_other_sample_rate_is_resampled_for_pesq(clean: np.ndarray) -> None:
    import soxr

    x24 = soxr.resample(clean, SR, 24000).astype(np.float32)
    assert metrics.pesq_wb(x24, x24, 24000) > 4.4
    assert metrics.mel_distance(x24, x24, 24000) == 0.0


def test_silence_gives_nan_pesq_with_warning() -> None:
    z = np.zeros(SR, np.float32)
    with pytest.warns(UserWarning, match="PESQ"):
        assert math.isnan(metrics.pesq_wb(z, z, SR))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = metrics.score_all(z, z, SR)
    assert scores["mel_distance"] == 0.0


@pytest.mark.parametrize("bad", [np.zeros((2, 100)), np.zeros(0), np.array([np.nan, 1.0])])
def test_bad_inputs_raise_value_error(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        metrics.si_sdr(bad, bad)
    with pytest.raises(ValueError):
        metrics.mel_distance(bad, bad, SR)


@given(st.integers(1, 4000), st.integers(0, 2**31 - 1))
def test_mel_distance_symmetric_and_nonnegative(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n).astype(np.float32) * 0.1
    b = rng.standard_normal(n).astype(np.float32) * 0.1
    d = metrics.mel_distance(a, b, SR)
    assert d >= 0 and math.isfinite(d)
    assert d == pytest.approx(metrics.mel_distance(b, a, SR))
    assert metrics.mel_distance(a, a, SR) == 0.0


def test_mel_filterbank_covers_spectrum() -> None:
    fb = metrics.mel_filterbank(SR, 512, 80)
    assert fb.shape == (80, 257)
    assert (fb >= 0).all()
    assert (fb.sum(axis=1) > 0).all()  # no empty filter
