"""recipes/latent_probe.py (training-log round 14): the loud-bin phase error measures what it
says, and the probe's two paths are what they claim (the encoder's output itself; the stages'
values unrounded)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dwancodec.model import Codec
from dwancodec.training.checkpoint import load_checkpoint
from dwancodec.training.config import build_train_config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes"))
from latent_probe import (
    ProbeTrainer,
    loud_phase_errors,
    phase_error_by_band,
    side_report,
    take_out_quantizer,
)

SR = 16000
DATA = str(Path(__file__).parent / "data")


def voice(seconds: float = 0.5, f0: float = 140.0) -> torch.Tensor:
    """A harmonic tone (harmonics to 4 kHz, falling 6 dB per octave), ``[1, T]``."""
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return sum(torch.cos(2 * math.pi * k * f0 * t + 0.3 * k) / k
               for k in range(1, int(4000 / f0)))[None]


def rotate(x: torch.Tensor, theta: float) -> torch.Tensor:
    """Every frequency's phase moved by ``theta`` (the analytic signal rotated)."""
    spec = torch.fft.rfft(x)
    return torch.fft.irfft(spec * complex(math.cos(theta), math.sin(theta)), n=x.shape[-1])


def test_the_same_signal_has_no_phase_error_and_noise_has_a_random_one() -> None:
    x = voice()
    assert all(v < 1e-9 for v in loud_phase_errors(x, x, SR).values())
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    ip = loud_phase_errors(x, noise, SR)["ip"]
    assert abs(ip - math.pi / 2) < 0.2  # a uniform phase error averages pi/2


@settings(max_examples=12, deadline=None)
@given(theta=st.floats(min_value=-3.0, max_value=3.0))
def test_a_constant_rotation_is_all_instantaneous_phase(theta: float) -> None:
    """A constant phase offset moves IP by |theta| and leaves the differences (GD, IAF) at 0;
    the error is insensitive to a gain (weights are the reference's magnitude). Not exactly 0:
    in the lowest bins the window's leakage from negative frequencies (which rotate the other
    way) mixes in; the DC bin, where it would dominate, is excluded."""
    x = voice()
    err = loud_phase_errors(x, 0.5 * rotate(x, theta), SR)
    assert abs(err["ip"] - abs(theta)) < 0.05
    assert err["gd"] < 0.1 and err["iaf"] < 0.1


def test_a_pulse_train_shifted_in_time_errs_in_proportion_to_frequency() -> None:
    """Shifting a voice by a quarter of a sample (a fractional delay) moves each harmonic's
    phase by 2 pi f d: the per-band error grows with the band's frequency, about as that."""
    x = voice(seconds=1.0, f0=100.0)
    spec = torch.fft.rfft(x)
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / SR)
    d = 0.25 / SR
    shifted = torch.fft.irfft(spec * torch.exp(-2j * math.pi * freqs * d), n=x.shape[-1])
    bands = phase_error_by_band(x, shifted, SR, edges=(100, 400, 1000, 2000))
    errs = list(bands.values())
    assert errs == sorted(errs) and errs[-1] > 5 * errs[0]
    for (lo, hi), err in zip([(100, 400), (400, 1000), (1000, 2000)], errs, strict=True):
        assert 2 * math.pi * lo * d * 0.8 < err < 2 * math.pi * hi * d * 1.1


def test_one_delay_in_every_frame_is_a_group_delay_error_not_a_phase_advance_error() -> None:
    """A voice moved by d samples (the same in every frame): the GD error per band is about
    2 pi d / n_fft (the same in every band), the IAF error about 0. (Bands from 400 Hz: the
    lowest band's few bins also see the circular shift's seam at the clip's ends.)"""
    x = voice(seconds=1.0, f0=100.0)
    freqs = torch.fft.rfftfreq(x.shape[-1], 1 / SR)
    d = 2.0
    shifted = torch.fft.irfft(torch.fft.rfft(x) * torch.exp(-2j * math.pi * freqs * d / SR),
                              n=x.shape[-1])
    edges = (400, 1000, 2000)
    gd = phase_error_by_band(x, shifted, SR, edges=edges, kind="gd")
    iaf = phase_error_by_band(x, shifted, SR, edges=edges, kind="iaf")
    for band in gd:
        assert gd[band] == pytest.approx(2 * math.pi * d / 160, rel=0.15)
        assert iaf[band] < 0.05


def test_bypass_feeds_the_decoder_the_encoders_output() -> None:
    model = take_out_quantizer(Codec.from_config("tiny", seed=0), "bypass").eval()
    x = torch.randn(1, 1, 4 * model.hop_length, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x).audio
        state = model.decoder.initial_state(1, x.device)
        want = model.decoder.run(model.encoder(x), state)[0]
        coded = model.decode(model.encode(x))
    assert torch.equal(out, want)
    assert not torch.allclose(out, coded, atol=1e-3)  # the quantizer really is out of the path


def test_the_side_path_starts_at_the_coded_function_and_learns() -> None:
    """``side`` starts as the model itself (bit for bit: its projection is 0), its projection
    gets gradient, and building it leaves the global random stream where it was."""
    model = Codec.from_config("tiny", seed=0).eval()
    x = torch.randn(1, 1, 4 * model.hop_length, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        coded = model.decode(model.encode(x))
    rng = torch.get_rng_state()
    take_out_quantizer(model, "side")
    assert torch.equal(torch.get_rng_state(), rng)
    out = model(x).audio
    assert torch.equal(out.detach(), coded)
    out.square().sum().backward()
    assert model.probe_side.weight.grad.abs().sum() > 0


def test_unrounded_stages_pass_values_between_the_levels() -> None:
    """Unrounded, a stage's value is not on its grid, is within half a level of the coded one,
    and carries gradient to the encoder."""
    model = Codec.from_config("tiny", seed=0)
    if model.config.quantizer.kind != "fsq":
        pytest.skip("tiny config is not FSQ")
    x = torch.randn(1, 1, 4 * model.hop_length, generator=torch.Generator().manual_seed(2))
    z = model.encoder(x)
    coded = model.quantizer(z.detach(), 1).z_q
    take_out_quantizer(model, "unrounded")
    loose = model.quantizer(z, 1)
    assert not torch.allclose(loose.z_q, coded)
    stage = model.quantizer.stages[0]
    levels = stage.quantizer(stage.project_in(z.detach())).z_q.transpose(1, 2) * (
        stage.quantizer.half_width)  # [B, T, d] in level units: integers when rounded
    assert (levels - torch.round(levels)).abs().max() > 1e-3
    loose.z_q.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())


@pytest.mark.parametrize("mode", ["bypass", "side", "coded"])
def test_the_probe_trains_scores_and_resumes_exactly(tmp_path: Path, mode: str) -> None:
    """Two steps, then two more after a restart, equal four steps in one go (the side path's
    weights and average included); validation through the path writes its scores, and no
    bundle is written."""
    base = {"model_config": "tiny", "train_data": [DATA], "val_data": [DATA], "batch_size": 2,
            "segment_seconds": 0.25, "num_workers": 0, "log": "csv", "val_every": 10**6,
            "save_every": 2, "warmup_steps": 1, "val_segments": 2, "val_segment_seconds": 1.0,
            "gan_start_step": 10**6}

    def trainer(folder: Path) -> ProbeTrainer:
        cfg = build_train_config({}, base | {"save_dir": str(folder), "max_steps": 4,
                                             "ema_decay": 0.9})
        t = ProbeTrainer(cfg, mode, progress=False)
        t.resume()
        return t

    first = trainer(tmp_path / "a")  # stopped after two steps, at a checkpoint
    for audio, _ in zip(first.make_loader(), range(2), strict=False):
        first.train_step(audio)
    first.save_checkpoint()
    a = trainer(tmp_path / "a")
    assert a.step == 2
    a.fit()
    b = trainer(tmp_path / "b")
    b.fit()
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert a.ema is not None and b.ema is not None and a.ema.keys() == b.ema.keys()
    for k, v in a.ema.items():
        assert torch.equal(v, b.ema[k]), k
    if mode == "side":
        assert b.model.probe_side.weight.abs().sum() > 0  # it trained
        assert "probe_side.weight" in b.ema
        # --report: every n_q, with the side path and without; they differ once it trained
        batch = b.val_batch()
        rows = side_report(load_checkpoint(b.save_checkpoint()), batch)
        assert [r["n_q"] for r in rows] == list(range(1, b.model.num_codebooks + 1))
        assert all(r["with side"]["mel"] != r["side zeroed"]["mel"] for r in rows)
    # Validation off above: it builds a model, which draws from the global random stream, so
    # a run is exact across restarts at its own checkpoints (saved after validation), not
    # against a first half that skipped a validation.
    b.logger = None  # fit closed it
    b.run_validation()
    rows = (tmp_path / "b" / "probe.jsonl").read_text().splitlines()
    assert len(rows) == 1 and '"phase_ip"' in rows[0] and f'"path": "{mode}"' in rows[0]
    assert not list((tmp_path / "b").glob("bundle-*"))
