"""The harmonic excitation of the head and the pitch track that trains its f0.

Streaming == offline, causality and ONNX parity of a codec with the excitation are in
test_heads.py (variant "harmonic"); these test the parts against their definitions."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dwancodec.config import get_config
from dwancodec.model import Codec
from dwancodec.nn.excitation import EXCITATION_RMS, F0_STEPS, harmonic_sum, rfft_basis
from dwancodec.nn.istft import ISTFTHead
from dwancodec.nn.pitch import pitch_track

SR = 16000


@given(n_fft=st.integers(2, 200).map(lambda n: 2 * n), seed=st.integers(0, 2**16))
@settings(max_examples=20, deadline=None)
def test_rfft_basis_is_rfft(n_fft: int, seed: int) -> None:
    x = torch.randn(3, n_fft, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    spec = torch.fft.rfft(x)
    got = x @ rfft_basis(n_fft).double()
    torch.testing.assert_close(got, torch.cat([spec.real, spec.imag], -1), atol=1e-4, rtol=1e-5)


@given(theta=st.lists(st.floats(-math.pi, math.pi), min_size=1, max_size=50),
       k=st.integers(1, 160))
@settings(max_examples=50, deadline=None)
def test_harmonic_sum_is_the_sum_of_cosines(theta: list[float], k: int) -> None:
    t = torch.tensor(theta, dtype=torch.float32)
    expected = sum(torch.cos(j * t.double()) for j in range(1, k + 1))
    got = harmonic_sum(t, torch.tensor(float(k)))
    # float32 sin of arguments up to (k + 1/2) pi; near 0, the Taylor branch
    torch.testing.assert_close(got.double(), expected, atol=1e-2 * k / 160 + 1e-4, rtol=0)


def sawtooth(f0: float, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(SR * seconds), dtype=torch.float64) / SR
    return (0.3 * ((t * f0) % 1.0 - 0.5)).float()[None]


@given(f0=st.floats(60.0, 450.0))
@settings(max_examples=25, deadline=None)
def test_pitch_track_finds_the_period(f0: float) -> None:
    """A periodic signal: the right f0 (within 1 %) with full confidence, no octave errors."""
    log_f0, conf = pitch_track(sawtooth(f0), SR, 80, 160)
    inner = slice(8, -8)  # frames whose analysis window lies inside the signal
    err = (log_f0[0, inner] - math.log2(f0)).abs()
    assert err.max() < math.log2(1.01)
    assert conf[0, inner].min() > 0.95
    assert log_f0.shape == conf.shape == (1, SR // 80)


def test_pitch_track_is_not_confident_on_noise_or_silence() -> None:
    noise = 0.1 * torch.randn(2, SR, generator=torch.Generator().manual_seed(0))
    _, conf = pitch_track(noise, SR, 80, 160)
    assert conf.mean() < 0.05
    _, conf = pitch_track(torch.zeros(1, SR), SR, 80, 160)
    assert conf.max() == 0


def pulse_head(f0_logit: float) -> ISTFTHead:
    """A head whose own frames are silent and whose excitation filter is 1 everywhere."""
    head = ISTFTHead(4, 320, 160, 80, excitation="harmonic", sample_rate=SR)
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.fill_(-40.0)  # log-magnitude: exp(-40) ~ 0
        ex = head.excitation
        ex.f0[-1].weight.zero_()
        ex.f0[-1].bias.fill_(f0_logit)
        ex.filter.bias.view(4, 2, -1)[:, 0] = 1.0  # H = 1 + 0i
    return head


@pytest.mark.parametrize("f0_logit", [-2.0, 0.0, 1.5])
def test_frames_join_into_one_continuous_pulse_train(f0_logit: float) -> None:
    """With H = 1 and a constant f0, the overlap-added frames are the band-limited pulse train
    at the grid f0 with one running phase: neighbouring windows agree where they overlap."""
    head = pulse_head(f0_logit)
    ex = head.excitation
    with torch.no_grad():
        y = head(torch.zeros(1, 4, 30))[0].double()  # 30 code frames = 9600 samples
        idx = (torch.round(ex.log2_f0(torch.zeros(1, 4, 1))[0, 0] * F0_STEPS)
               - ex.grid_start).long()
        rate, k = ex.rate[idx].double(), ex.harmonics[idx].double()
    n = torch.arange(y.shape[-1], dtype=torch.float64)
    theta = 2 * math.pi * torch.frac(n * rate)
    expected = sum(torch.cos(j * theta) for j in range(1, int(k) + 1)) / math.sqrt(k / 2)
    expected = EXCITATION_RMS * expected
    start = 80  # before it, the window of the (silent) frame before the first is missing
    err = (y[start:] - expected[start:]).abs().max()
    assert err < 1e-3 * expected.abs().max()


def test_a_teacher_f0_drives_the_pulse_train() -> None:
    """Where the teacher is not NaN its f0 drives the excitation (the prediction is ignored);
    where it is NaN the prediction does."""
    head = pulse_head(0.0)  # predicts ~158 Hz
    x = torch.zeros(1, 4, 40)
    n = 40 * 4
    teacher = torch.full((1, n), math.log2(200.0))
    teacher[:, n // 2:] = math.nan
    with torch.no_grad():
        y, _, log_f0 = head.run(x, head.initial_state(1), teacher)
    assert torch.allclose(log_f0, torch.full_like(log_f0, log_f0[0, 0].item()))
    half = y.shape[-1] // 2
    track, _ = pitch_track(y, SR, 80, 160)
    hz = 2 ** track[0]
    frames = track.shape[-1]
    assert (hz[10: frames // 2 - 10] - 200.0).abs().max() < 2
    assert (hz[frames // 2 + 10: -10] - 2 ** log_f0[0, 0]).abs().max() < 2
    assert half == n * 80 // 2


def test_the_excitation_state_carries_the_phase() -> None:
    """Two steps from the carried phase == one step; a zeroed phase gives other samples."""
    head = pulse_head(0.3)
    x = torch.zeros(1, 4, 6)
    with torch.no_grad():
        whole, _ = head.step(x, head.initial_state(1))
        a, s = head.step(x[..., :2], head.initial_state(1))
        b, _ = head.step(x[..., 2:], s)
        torch.testing.assert_close(torch.cat([a, b], -1), whole, atol=1e-5, rtol=0)
        s_reset = dict(s, **{"excitation.phase": torch.zeros_like(s["excitation.phase"])})
        b2, _ = head.step(x[..., 2:], s_reset)
    assert (b2 - b).abs().max() > 0.1


def test_f0_is_trained_from_the_pitch_track_and_the_filter_from_the_audio() -> None:
    """The training forward reports loss "f0"; it reaches the f0 layer, and the audio reaches
    the filter but not the f0 layer (no gradient through the sinusoids)."""
    torch.manual_seed(0)
    codec = Codec(get_config("tiny").replace(**{"decoder.excitation": "harmonic"}))
    ex = codec.decoder.head.excitation
    with torch.no_grad():
        ex.filter.weight.normal_(0, 0.1)
    x = sawtooth(150.0, 0.5)[None]
    out = codec(x)
    assert set(out.losses) >= {"f0"} and out.metrics["voiced"] > 0.5
    out.losses["f0"].backward(retain_graph=True)
    assert ex.f0[-1].weight.grad.abs().sum() > 0 and ex.filter.weight.grad is None
    codec.zero_grad()
    out.audio.pow(2).mean().backward()
    assert ex.filter.weight.grad.abs().sum() > 0
    assert ex.f0[-1].weight.grad is None or ex.f0[-1].weight.grad.abs().sum() == 0


def test_a_warm_start_without_the_excitation_decodes_as_before() -> None:
    """The filter starts at 0: a codec given another's weights decodes the same audio."""
    torch.manual_seed(0)
    cfg = get_config("tiny")
    plain = Codec(cfg).eval()
    harm = Codec(cfg.replace(**{"decoder.excitation": "harmonic"})).eval()
    missing = harm.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert all(k.startswith("decoder.head.excitation.") for k in missing)
    codes = plain.encode(0.3 * torch.randn(1, 1, 4000))
    with torch.no_grad():
        torch.testing.assert_close(harm.decode(codes), plain.decode(codes), atol=0, rtol=0)


def test_config_rules() -> None:
    cfg = get_config("tiny")
    assert '"excitation"' not in cfg.identity_json()
    harm = cfg.replace(**{"decoder.excitation": "harmonic"})
    assert '"excitation": "harmonic"' in harm.identity_json()
    with pytest.raises(ValueError, match=r"decoder\.excitation must be one of"):
        cfg.replace(**{"decoder.excitation": "pulse"})
    with pytest.raises(ValueError, match="needs a DFT head"):
        cfg.replace(**{"decoder.excitation": "harmonic", "decoder.head": "mdct",
                       "decoder.n_fft": 20})
