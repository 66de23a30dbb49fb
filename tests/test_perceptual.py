"""The PESQ-WB disturbance loss against the ``pesq`` package (ITU-T P.862 reference code).

The loss reimplements P.862's psychoacoustic model on aligned pairs, so on a real voice under
real degradations ``4.5 - loss`` must track the raw MOS the reference code computes. Its
constants are checked against the reference code's own tables where the package ships them.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from dwancodec.training import perceptual
from dwancodec.training.config import TrainConfig
from dwancodec.training.perceptual import PesqLoss

from .conftest import degradations

SR = 16000
pesq = pytest.importorskip("pesq")


@pytest.fixture(scope="module")
def loss() -> PesqLoss:
    return PesqLoss()


def _raw_mos(ref: np.ndarray, deg: np.ndarray) -> float:
    """The reference code's raw P.862 score (its WB MOS-LQO mapping inverted, P.862.2)."""
    lqo = pesq.pesq(SR, ref, deg, "wb")
    return (math.log(4.0 / (lqo - 0.999) - 1.0) - 3.8224) / -1.3669


def _proxy(loss: PesqLoss, ref: np.ndarray, deg: np.ndarray) -> float:
    with torch.no_grad():
        return 4.5 - float(loss.disturbance(torch.from_numpy(deg)[None],
                                            torch.from_numpy(ref)[None])[0])


def test_tracks_the_reference_codes_raw_mos(clean: np.ndarray, loss: PesqLoss) -> None:
    """Over noise, low-pass, clipping and phase jitter, the loss's score follows P.862's raw
    score: correlation above 0.97, and no pair more than 0.6 apart (measured on this clip:
    every pair within 0.07; on six val-16k voices, correlation 0.997, and the one pair 1.0
    apart a narrowband clip low-passed at 2 kHz). The differences come from what the loss
    leaves out (P.862's time alignment, the exact level-alignment filter)."""
    degs = degradations(clean)
    raw = np.array([_raw_mos(clean, d) for d in degs.values()])
    proxy = np.array([_proxy(loss, clean, d) for d in degs.values()])
    table = {k: (round(a, 2), round(b, 2)) for k, a, b in zip(degs, raw, proxy, strict=True)}
    assert np.ptp(raw) > 2.0  # the set spans most of the scale
    assert np.corrcoef(raw, proxy)[0, 1] > 0.97, table
    assert np.abs(raw - proxy).max() < 0.6, table


def test_zero_for_the_reference_and_blind_to_gain(clean: np.ndarray, loss: PesqLoss) -> None:
    """P.862 scales both signals to one level before comparing: a copy, or the same voice 12 dB
    quieter, has no disturbance; a noisy copy has."""
    assert _proxy(loss, clean, clean) == pytest.approx(4.5, abs=1e-4)
    assert _proxy(loss, clean, 0.25 * clean) == pytest.approx(4.5, abs=1e-3)
    assert _proxy(loss, clean, degradations(clean)["noise 25 dB"]) < 4.0


def test_more_noise_is_more_disturbance(clean: np.ndarray, loss: PesqLoss) -> None:
    degs = degradations(clean)
    scores = [_proxy(loss, clean, degs[f"noise {s} dB"]) for s in (5, 15, 25, 35)]
    assert scores == sorted(scores)


def test_gradients_are_finite_and_point_downhill(clean: np.ndarray, loss: PesqLoss) -> None:
    """On a noisy copy, a small step against the gradient lowers the loss; gradients stay
    finite for silent and all-zero decodes (square roots and powers at 0)."""
    ref = torch.from_numpy(clean[: SR])[None]
    deg = torch.from_numpy(degradations(clean)["noise 15 dB"][: SR])[None].requires_grad_(True)
    value = loss(deg, ref)
    value.backward()
    assert torch.isfinite(deg.grad).all() and deg.grad.abs().sum() > 0
    stepped = deg.detach() - 1e-3 * deg.grad / deg.grad.norm()
    assert float(loss(stepped, ref)) < float(value.detach())
    for bad in (torch.zeros_like(ref), 1e-9 * torch.randn_like(ref)):
        x = bad.clone().requires_grad_(True)
        loss(x, ref).backward()
        assert torch.isfinite(x.grad).all()


def test_a_silent_reference_scores_zero(loss: PesqLoss) -> None:
    silent = torch.zeros(2, 1, SR)
    out = loss.disturbance(torch.randn(2, 1, SR), silent)
    assert torch.equal(out, torch.zeros(2))


def test_batch_items_are_scored_alone(clean: np.ndarray, loss: PesqLoss) -> None:
    """Level and equalisation are per item: an item's score does not depend on its batch."""
    degs = degradations(clean)
    ref = torch.from_numpy(np.stack([clean[:SR], clean[SR:2 * SR]]))
    deg = torch.from_numpy(np.stack([degs["noise 15 dB"][:SR], 0.01 * clean[SR:2 * SR]]))
    both = loss.disturbance(deg, ref)
    alone = loss.disturbance(deg[:1], ref[:1])
    assert both[0] == pytest.approx(float(alone[0]), rel=1e-5)


def test_bad_input_is_named(loss: PesqLoss) -> None:
    with pytest.raises(ValueError, match="one shape"):
        loss(torch.zeros(1, 1, SR), torch.zeros(1, 1, SR + 1))
    with pytest.raises(ValueError, match="at least 512"):
        loss(torch.zeros(1, 1, 500), torch.zeros(1, 1, 500))
    with pytest.raises(ValueError, match="16000"):
        PesqLoss(24000)
    with pytest.raises(ValueError, match="pesq loss models PESQ-WB at 16000"):
        TrainConfig(train_data=["x"], sample_rate=24000, loss_weights={"pesq": 1.0})


def _c_array(text: str, name: str) -> list[float]:
    body = re.search(rf"{name}\s*\[\w+\]\s*=\s*\{{([^}}]*)\}}", text)
    assert body, name
    return [float(v) for v in re.findall(r"-?[0-9.]+(?:e-?\d+)?", body.group(1))]


def test_constants_are_the_reference_codes() -> None:
    """The tables are P.862's (pesqpar.h / pesqmain.h of the reference code, which the
    ``pesq`` package ships beside its binary)."""
    src = Path(pesq.__file__).parent
    if not (src / "pesqpar.h").exists():
        pytest.skip("this pesq build ships no C sources")
    par = (src / "pesqpar.h").read_text(encoding="latin-1")
    main = (src / "pesqmain.h").read_text(encoding="latin-1")
    head = (src / "pesq.h").read_text(encoding="latin-1")
    for name, ours in [("nr_of_hz_bands_per_bark_band_16k", perceptual.BANDS_PER_BARK_16K),
                       ("centre_of_band_bark_16k", perceptual.CENTRE_BARK_16K),
                       ("width_of_band_bark_16k", perceptual.WIDTH_BARK_16K),
                       ("pow_dens_correction_factor_16k", perceptual.POW_DENS_CORRECTION_16K),
                       ("abs_thresh_power_16k", perceptual.ABS_THRESH_POWER_16K)]:
        assert np.allclose(_c_array(par, name), ours, rtol=1e-6), name
    assert np.allclose(_c_array(main, "WB_InIIR_Hsos_16k"), perceptual.WB_INPUT_FILTER_16K,
                       rtol=1e-6)
    assert float(re.search(r"#define Sp_16k\s+(\S+)", head).group(1)) == perceptual.SP_16K
    assert float(re.search(r"#define Sl_16k\s+(\S+)", head).group(1)) == perceptual.SL_16K
    assert sum(perceptual.BANDS_PER_BARK_16K) == perceptual.N_FFT // 2


def test_zwicker_power_follows_p862() -> None:
    """0.23 from 4 Bark up; below, 0.23 x min(6 / (c + 2), 2) ** 0.15 (0.2552 at the bottom,
    the value PMSQE tabulates)."""
    z = perceptual.modified_zwicker_power()
    assert z[0] == pytest.approx(0.25520097857560436, rel=1e-9)
    c = torch.tensor(perceptual.CENTRE_BARK_16K)
    assert torch.allclose(z[c >= 4].float(), torch.full_like(z[c >= 4].float(), 0.23))


def test_the_asymmetry_weight_scales_the_asymmetric_term_alone(clean: np.ndarray) -> None:
    """The asymmetric term is never negative, so without it no pair scores worse; noise adds
    energy, which that term charges, so there it is a large part of the disturbance."""
    ref = torch.from_numpy(clean[: 2 * SR])[None]
    full, symmetric = PesqLoss(), PesqLoss(asymmetry_weight=0.0)
    doubled = PesqLoss(asymmetry_weight=2 * perceptual.A_WEIGHT)
    with torch.no_grad():
        for name, deg in degradations(clean).items():
            d = torch.from_numpy(deg[: 2 * SR])[None]
            f, s, dbl = float(full(d, ref)), float(symmetric(d, ref)), float(doubled(d, ref))
            assert s <= f + 1e-6, name
            assert dbl - f == pytest.approx(f - s, rel=1e-4, abs=1e-6), name  # linear in it
            if name.startswith("noise"):
                assert f - s > 0.05, name
