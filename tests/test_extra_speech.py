"""recipes/build_extra_speech.py: speed perturbation from the original sample rates."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))
import build_extra_speech as bes  # noqa: E402

RATES = (16000, 22050, 32000, 44100, 48000)


@settings(max_examples=200, deadline=None)
@given(st.text("0123456789abcdef", min_size=32, max_size=32), st.sampled_from(RATES),
       st.floats(0.7, 1.0), st.floats(1.0, 1.3))
def test_speed_factor_keeps_the_band_and_stays_in_range(md5: str, sr0: int, lo: float,
                                                        hi: float) -> None:
    f = bes.speed_factor(md5, sr0, lo, hi)
    # the original, read at f * sr0, still reaches 8 kHz: no band is lost by slowing down
    assert f * sr0 >= bes.SR * (1 - 1e-12)
    assert max(lo, bes.SR / sr0) - 1e-12 <= f <= max(hi, bes.SR / sr0) + 1e-12
    assert f == bes.speed_factor(md5, sr0, lo, hi)  # a file's factor is reproducible


def test_speed_factor_off_and_16k_originals() -> None:
    assert bes.speed_factor("f" * 32, 44100, 1.0, 1.0) == 1.0
    # a 16 kHz original (G.722) can only speed up
    assert all(bes.speed_factor(h * 32, 16000, 0.9, 1.1) >= 1.0 for h in "0123456789abcdef")
    lows = [bes.speed_factor(h * 32, 44100, 0.9, 1.1) for h in "0123456789abcdef"]
    assert min(lows) < 0.95 and max(lows) > 1.05  # the draw spans the range


def _band_db(x: np.ndarray, sr: int, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / sr)
    ref = spec[(freqs > 1000) & (freqs < 4000)].mean()
    return float(10 * np.log10(spec[(freqs > lo) & (freqs < hi)].mean() / ref))


def test_slowed_down_44k_original_keeps_the_top_band(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 44100 * 2
    noise = (0.1 * rng.standard_normal(n)).astype(np.float32)  # flat spectrum
    path = tmp_path / "noise.wav"
    sf.write(path, noise, 44100)
    x, sr0 = bes.decode(str(path), "sf", (0.9, 0.9), "0" * 32)
    assert sr0 == 44100
    # played 0.9x as fast: longer by 1 / 0.9, at 16 kHz
    assert abs(x.size - n * bes.SR / (44100 * 0.9)) <= 2
    y = x.astype(np.float64) / 32768.0
    # 7-7.5 kHz as loud as 1-4 kHz (white noise), where slowing down 16 kHz audio by 0.9
    # would leave it 50+ dB down (round 18)
    assert abs(_band_db(y, bes.SR, 7000, 7500)) < 1.5


def test_unperturbed_decode_is_the_plain_resample(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    noise = (0.1 * rng.standard_normal(22050)).astype(np.float32)
    path = tmp_path / "noise.wav"
    sf.write(path, noise, 22050)
    plain, _ = bes.decode(str(path), "sf")
    off, _ = bes.decode(str(path), "sf", (1.0, 1.0), "a" * 32)
    np.testing.assert_array_equal(plain, off)
