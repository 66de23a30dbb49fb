"""Phase-aware losses, the cheap discriminator and fine-tuning initialisation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dwancodec.config import get_config
from dwancodec.model import Codec
from dwancodec.training.discriminators import Adversary
from dwancodec.training.losses import (
    HARMONIC_RESOLUTIONS,
    BandMelLoss,
    ComplexSTFTLoss,
    LowBandHarmonicLoss,
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    PhaseLoss,
    Spectra,
    anti_wrap,
)
from dwancodec.training.trainer import init_weights


@given(x=st.floats(-50, 50), k=st.integers(-5, 5))
def test_anti_wrap_is_periodic_and_bounded(x: float, k: int) -> None:
    a = float(anti_wrap(torch.tensor(x, dtype=torch.float64)))
    b = float(anti_wrap(torch.tensor(x + 2 * math.pi * k, dtype=torch.float64)))
    assert 0 <= a <= math.pi + 1e-9
    assert a == pytest.approx(b, abs=1e-6)


def test_phase_losses_see_a_delay_that_magnitude_losses_miss() -> None:
    """A 1 ms delay leaves STFT magnitudes almost unchanged but moves every phase: the
    complex and phase losses must grow by far more than for the identical signal."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 8000, generator=g) * 0.1
    delayed = torch.roll(x, 16, dims=-1)
    cplx, phase = ComplexSTFTLoss(), PhaseLoss()
    assert float(cplx(x, x)) < 1e-6
    assert all(float(v) < 1e-4 for v in phase(x, x).values())
    assert float(cplx(delayed, x)) > 0.05
    losses = phase(delayed, x)
    # IP: every bin's phase moves (~pi/2 on average for noise); GD: the delay is a slope of
    # 2 pi * 16 / 320 = 0.31 rad per bin; IAF changes where the noise is not stationary.
    assert float(losses["phase_ip"]) > 1.0
    assert float(losses["phase_gd"]) > 0.25
    assert float(losses["phase_iaf"]) > 0.1


@pytest.mark.parametrize("vibrato", [0.01, 0.02, 0.04])
def test_harmonic_resolution_loss_sees_smeared_harmonics_the_mr_stft_loss_blurs(
        vibrato: float) -> None:
    """A 125 Hz harmonic comb against the same comb with a 5 Hz vibrato of 1-4 % of its pitch
    (its harmonics wander over a long window, the envelope does not move): the 1024/2048-point
    loss must grow by at least 1.5x what the 128-512-point loss sees (measured: 2.0-2.2x)."""
    t = torch.arange(16000) / 16000
    floor = torch.randn(1, 1, 16000, generator=torch.Generator().manual_seed(0)) * 1e-3

    def comb(depth: float) -> torch.Tensor:
        phase = 2 * math.pi * torch.cumsum(125 * (1 + depth * torch.sin(2 * math.pi * 5 * t)),
                                           0) / 16000
        return sum(torch.cos(k * phase) / k for k in range(1, 32)).view(1, 1, -1) * 0.1 + floor

    x, y = comb(0.0), comb(vibrato)
    low, high = MultiResolutionSTFTLoss(), MultiResolutionSTFTLoss(HARMONIC_RESOLUTIONS)
    assert float(high(x, x)) < 1e-6
    assert float(high(y, x)) > 1.5 * float(low(y, x))


def test_phase_losses_over_resolutions_are_the_mean_of_each_and_share_the_spectra() -> None:
    """Each term over (320/80, 1024/256) is the mean of the two single-resolution terms, also
    when the STFTs come from a ``Spectra`` cache another loss filled first; one resolution
    gives what the default gives."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 8000, generator=g) * 0.1
    y = torch.roll(x, 5, dims=-1) + 0.01 * torch.randn(2, 1, 8000, generator=g)
    a, b = PhaseLoss(((320, 80),))(y, x), PhaseLoss(((1024, 256),))(y, x)
    spectra = Spectra(y, x)
    LowBandHarmonicLoss(16000)(y, x, spectra)  # fills the 1024/256 entry
    both = PhaseLoss(((320, 80), (1024, 256)))(y, x, spectra)
    assert PhaseLoss()(y, x) == a
    for k in both:
        assert float(both[k]) == pytest.approx((float(a[k]) + float(b[k])) / 2, rel=1e-5)
    # the resolutions disagree somewhere, so the mean is not either one alone
    assert any(abs(float(a[k]) - float(b[k])) > 0.02 * float(b[k]) for k in a)


def test_phase_losses_have_finite_gradients_on_silence() -> None:
    y = torch.zeros(1, 1, 4000, requires_grad=True)
    x = torch.randn(1, 1, 4000) * 0.1
    total = ComplexSTFTLoss()(y, x) + sum(PhaseLoss()(y, x).values())
    total.backward()
    assert torch.isfinite(y.grad).all()


@settings(max_examples=5, deadline=None)
@given(crop=st.sampled_from([800, 4000]))
def test_cheap_discriminator_trains_on_crops(crop: int) -> None:
    torch.manual_seed(0)
    adv = Adversary(("stft1d",), 16000, 2e-4, (0.8, 0.99), channels=8)
    real, fake = torch.randn(2, 1, crop) * 0.1, torch.randn(2, 1, crop) * 0.3
    logs = adv.discriminator_step(real, fake, 10.0)
    g = adv.generator_losses(real, fake.requires_grad_())
    assert torch.isfinite(logs["discriminator"]) and set(g) == {"adversarial",
                                                                "feature_matching"}


def test_init_from_copies_matching_tensors_and_keeps_a_new_head(tmp_path) -> None:
    torch.manual_seed(0)
    src = Codec(get_config("tiny"))
    src.save_pretrained(tmp_path / "src")
    torch.manual_seed(1)
    dst = Codec(get_config("tiny").replace(**{"decoder.head": "mdct", "decoder.n_fft": 20}))
    fresh_head = dst.decoder.head.out.weight.clone()
    report = init_weights(dst, str(tmp_path / "src"))
    assert "fresh: decoder.head.out.bias, decoder.head.out.weight" in report
    assert torch.equal(dst.encoder.layers[0].conv.weight, src.encoder.layers[0].conv.weight)
    assert torch.equal(dst.decoder.head.out.weight, fresh_head)
    with pytest.raises(FileNotFoundError):
        init_weights(dst, str(tmp_path / "missing"))


@pytest.mark.parametrize("grow", ["trunk+1", "trunk+3", "subframe+2"])
def test_init_from_a_shallower_decoder_keeps_its_function(tmp_path, grow: str) -> None:
    """Warm-starting a deeper decoder (trunk blocks, or sub-frame blocks in the head): the
    source's blocks are copied, the new ones start as the identity (last projection 0), so the
    new model decodes exactly as the source does; one optimizer step then moves the new blocks'
    weights (they can grow in)."""
    torch.manual_seed(0)
    cfg = get_config("tiny")
    src = Codec(cfg)
    src.save_pretrained(tmp_path / "src")
    where, extra = grow.split("+")
    if where == "trunk":
        deep = Codec(cfg.replace(**{"decoder.depth": cfg.decoder.depth + int(extra)}))
        new = [f"decoder.blocks.{cfg.decoder.depth + i}" for i in range(int(extra))]
    else:
        deep = Codec(cfg.replace(**{"decoder.subframe_depth": int(extra)}))
        new = [f"decoder.head.refine.{i}" for i in range(int(extra))]
    report = init_weights(deep, str(tmp_path / "src"))
    assert report.endswith("new residual blocks start as the identity: " + ", ".join(new))
    x = torch.randn(2, 1, 4 * src.hop_length) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(deep.eval()(x).audio, src.eval()(x).audio, rtol=0, atol=0)
    deep.train()
    opt = torch.optim.SGD(deep.parameters(), lr=0.1)
    (deep(x).audio - x).abs().mean().backward()
    # the new blocks' weights learn from the first step (their last projection starts at 0,
    # their scale does not; a zero scale would leave every weight in the block without gradient)
    assert all(float(deep.get_parameter(f"{b}.pw2.weight").grad.abs().sum()) > 0 for b in new)
    assert all(float(deep.get_parameter(f"{b}.gamma").detach().abs().min()) > 0 for b in new)
    opt.step()
    assert all(float(deep.get_parameter(f"{b}.pw2.weight").detach().abs().sum()) > 0
               for b in new)


def test_frame_modulation_loss_sees_a_frame_rate_dip_that_a_delay_does_not_cause() -> None:
    """A 6 dB dip in the first quarter of every code frame is penalised; the same signal
    shifted by a few samples (no frame-locked gain) is not; the gradient reaches the input."""
    from dwancodec.training.losses import FrameModulationLoss

    hop = 320
    loss = FrameModulationLoss(hop)
    torch.manual_seed(0)
    y = torch.randn(8, 1, 16000)
    gain = torch.ones(hop)
    gain[: hop // 4] = 0.5
    dipped = (y.reshape(8, 1, -1, hop) * gain).reshape(8, 1, -1)
    shifted = torch.roll(y, 7, dims=-1)
    assert float(loss(dipped, y)) > 0.2
    assert float(loss(shifted, y)) < 0.05
    x = dipped.clone().requires_grad_(True)
    loss(x, y).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert FrameModulationLoss(40).bins == 8  # bins divide the hop


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**16), length=st.integers(1100, 4000))
def test_shared_spectra_give_the_same_losses_and_gradients_with_half_the_stfts(
        seed: int, length: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trainer computes each STFT once for the mel, MR-STFT and complex losses
    (:class:`Spectra`): the losses and their gradients equal those of each loss on its own
    (gradients to float32 rounding: shared nodes sum their parts in another order),
    and torch.stft runs once per distinct (n_fft, hop) and signal (12 instead of 24)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randn(2, 1, length, generator=g) * 0.1
    base = torch.randn(2, 1, length, generator=g) * 0.1
    losses = (MultiScaleMelLoss(16000), MultiResolutionSTFTLoss(), ComplexSTFTLoss())
    calls = []
    real_stft = torch.stft

    def counting_stft(*args, **kwargs):  # counts the library call, computes it for real
        calls.append(args[1])
        return real_stft(*args, **kwargs)

    monkeypatch.setattr(torch, "stft", counting_stft)
    results = []
    for shared in (False, True):
        calls.clear()
        y_hat = base.clone().requires_grad_()
        spectra = Spectra(y_hat, y) if shared else None
        values = [f(y_hat, y, spectra) for f in losses]
        sum(values).backward()
        results.append(([float(v.detach()) for v in values], y_hat.grad, len(calls)))
    (v0, g0, n0), (v1, g1, n1) = results
    assert v1 == pytest.approx(v0, rel=1e-6)
    # the same sums in another order: equal to float32 rounding of the largest gradient
    torch.testing.assert_close(g1, g0, rtol=1e-5, atol=1e-5 * float(g0.abs().max()))
    assert (n0, n1) == (24, 12)


def test_lowband_loss_sees_only_the_band_below_its_cutoff_and_not_the_level() -> None:
    """Zero for a perfect output; the same for the same signals at another level; a tone
    above the cutoff added to the output changes it by leakage only, the same tone below it
    by far more."""
    from dwancodec.training.losses import LowBandHarmonicLoss

    loss = LowBandHarmonicLoss(16000)
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(2, 1, 16000, generator=g)
    y = x + 0.02 * torch.randn(2, 1, 16000, generator=g)
    assert loss(x, x) == 0
    assert loss(4 * y, 4 * x) == pytest.approx(float(loss(y, x)), rel=1e-3)
    t = torch.arange(16000) / 16000
    high = y + 0.05 * torch.sin(2 * torch.pi * 5000 * t)
    low = y + 0.05 * torch.sin(2 * torch.pi * 500 * t)
    base = float(loss(y, x))
    assert abs(float(loss(high, x)) - base) < 0.05 * base
    assert float(loss(low, x)) > 2 * base
    # the cut-off moves the band: up to 8 kHz the same 5 kHz tone counts (against 4 kHz of
    # noise, so by less than the 500 Hz tone against 2 kHz)
    wide = LowBandHarmonicLoss(16000, cutoff=8000.0)
    assert float(wide(high, x)) > 1.3 * float(wide(y, x))



def test_band_mel_loss_scores_its_bands_alone_and_equals_the_mel_distance_there() -> None:
    """The guard for the bands PESQ-WB and STOI do not hear: zero for a perfect output; a tone
    added at 1 kHz (outside its bands) moves it by leakage only, the same tone at 100 Hz or
    7.5 kHz by far more; it is the log-mel L1 of the kept bands of the full 512 / 80 filterbank
    (the mel distance's geometry), and a band list that keeps no band is refused by name."""
    g = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(2, 1, 16000, generator=g)
    y = x + 0.01 * torch.randn(2, 1, 16000, generator=g)
    guard = BandMelLoss(16000, ((0.0, 150.0), (7000.0, 8000.0)))
    assert guard.n_bands == 9  # the docstring's worked example: 6 below 150 Hz, 3 above 7 kHz
    assert guard(x, x) == 0
    t = torch.arange(16000) / 16000
    base = float(guard(y, x))

    def tone(f: float) -> float:
        return float(guard(y + 0.3 * torch.sin(2 * torch.pi * f * t), x))

    low, high = tone(100.0) - base, tone(7500.0) - base
    assert low > 3 * base and high > 3 * base
    assert abs(tone(1000.0) - base) < 0.05 * min(low, high)
    # the same number as the full mel loss's 512-point scale restricted to the kept bands
    from dwancodec.training.losses import mel_filterbank

    fb = mel_filterbank(512, 80, 16000)
    spectra = Spectra(y, x)
    m_hat, m = spectra.magnitude(512, 128, torch.hann_window(512))
    per_band = (torch.log10((fb @ m_hat).clamp(min=1e-5))
                - torch.log10((fb @ m).clamp(min=1e-5))).abs().mean(dim=(0, 2))
    centre = (fb * torch.linspace(0, 8000, 257)).sum(1) / fb.sum(1)
    keep = (centre < 150) | (centre >= 7000)
    assert float(guard(y, x, spectra)) == pytest.approx(float(per_band[keep].mean()), rel=1e-5)
    with pytest.raises(ValueError, match="no mel band"):
        BandMelLoss(16000, ((3000.0, 3001.0),))
    # items: the chosen batch items scored alone; none chosen gives 0 with a graph
    pick = torch.tensor([False, True])
    assert float(guard(y, x, items=pick)) == pytest.approx(float(guard(y[1:], x[1:])), rel=1e-6)
    y_grad = y.clone().requires_grad_(True)
    none = guard(y_grad, x, items=torch.tensor([False, False]))
    assert float(none.detach()) == 0 and none.requires_grad


def test_phase_weight_power_moves_the_loss_onto_the_loud_bins() -> None:
    """A loud 500 Hz tone over a quiet noise floor, decoded with the tone exact and the floor
    replaced by other noise of the same level: every phase error sits in the quiet bins, so
    weighting by |S| (power 1) must report far less of it than the nearly flat 0.3, and a
    phase error on the tone itself far more, relative to the quiet-bin error."""
    g = torch.Generator().manual_seed(2)
    t = torch.arange(16000) / 16000
    tone = 0.3 * torch.sin(2 * math.pi * 500 * t).view(1, 1, -1)
    x = tone + 1e-3 * torch.randn(1, 1, 16000, generator=g)
    other_floor = tone + 1e-3 * torch.randn(1, 1, 16000, generator=g)
    shifted_tone = 0.3 * torch.sin(2 * math.pi * 500 * t + 1.0).view(1, 1, -1) + (x - tone)
    flat, loud = PhaseLoss(power=0.3), PhaseLoss(power=1.0)
    assert float(loud(other_floor, x)["phase_ip"]) < 0.5 * float(flat(other_floor, x)["phase_ip"])
    ratio_flat = float(flat(shifted_tone, x)["phase_ip"]) / float(flat(other_floor, x)["phase_ip"])
    ratio_loud = float(loud(shifted_tone, x)["phase_ip"]) / float(loud(other_floor, x)["phase_ip"])
    assert ratio_loud > 2 * ratio_flat


def test_phase_weight_power_is_checked() -> None:
    from dwancodec.training.config import TrainConfig

    with pytest.raises(ValueError, match="phase_weight_power"):
        TrainConfig(phase_weight_power=-1.0)
