"""The rule torch streaming obeys: its codes equal offline's except at rounding ties.

Chunked and whole float32 convolutions agree only to ~1e-5, so a latent that sits on a
quantizer's rounding boundary can round either way (10 min of speech in 20 ms pushes: 4 of
240 000 codes, all in one frame). The rule: a frame's codes may differ only where the offline
latents' ``tie_margin`` is below ``TIE``; everywhere else they are equal.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dwancodec.bundled import default_model_dir
from dwancodec.model import Codec
from dwancodec.quantization.fsq import FSQ
from dwancodec.quantization.residual import TIE_MARGIN
from dwancodec.streaming import StreamingEncoder

TIE = TIE_MARGIN  # a hundred times the float32 disagreement of chunked vs whole convolutions


@pytest.fixture(scope="module")
def shipped() -> Codec:
    return Codec.from_pretrained(default_model_dir()).eval()


@pytest.fixture(scope="module")
def long_speech(speech: torch.Tensor) -> torch.Tensor:
    """``[1, T]``: the test clip at three gains and offsets (different latents)."""
    pieces = [g * torch.roll(speech[0, 0], s) for g, s in [(1.0, 0), (0.4, 37), (1.7, 101)]]
    return torch.cat(pieces)[None]


def offline_margins(codec: Codec, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[1, T]`` -> offline codes ``[1, n_q, F]`` and tie margins ``[1, F]``."""
    with torch.inference_mode():
        codes = codec.encode(audio[:, None])
        x = torch.nn.functional.pad(audio[:, None], (0, codes.shape[-1] * codec.hop_length
                                                     - audio.shape[-1]))
        margins = codec.quantizer.tie_margin(codec.encoder(x))
    return codes, margins


@settings(max_examples=4)  # each example streams ~12 s through the shipped model
@given(chunk_ms=st.lists(st.sampled_from([1, 7, 20, 33, 100, 500]), min_size=1, max_size=5),
       seed=st.integers(0, 1000))
def test_streaming_codes_differ_from_offline_only_at_ties(
        shipped: Codec, long_speech: torch.Tensor, chunk_ms: list[int], seed: int) -> None:
    offline, margins = offline_margins(shipped, long_speech)
    g = torch.Generator().manual_seed(seed)
    enc = StreamingEncoder(shipped, batch_size=1)
    pieces, pos, t = [], 0, long_speech.shape[-1]
    while pos < t:
        ms = chunk_ms[int(torch.randint(len(chunk_ms), (1,), generator=g))]
        n = ms * 16
        pieces.append(enc.push(long_speech[:, pos:pos + n]))
        pos += n
    pieces.append(enc.flush())
    codes = torch.cat(pieces, dim=-1)
    assert codes.shape == offline.shape
    differ = (codes != offline).any(1)[0]  # [F]
    assert torch.all(margins[0, differ] < TIE), (
        f"codes differ at frames {differ.nonzero().flatten().tolist()} whose margins "
        f"{margins[0, differ].tolist()} are not ties")
    # Ties are rare (val-16k: 2 of 5427 frames), so almost every frame must match.
    assert differ.float().mean() < 0.01


@given(z=st.lists(st.floats(-4, 4), min_size=5, max_size=5),
       direction=st.lists(st.floats(-1, 1), min_size=5, max_size=5))
def test_fsq_codes_do_not_move_inside_the_margin(z: list[float], direction: list[float]
                                                 ) -> None:
    """A perturbation smaller than the margin (over the bound's steepest slope) never changes
    a code; the margin is in [0, 0.5]."""
    q = FSQ((8, 8, 8, 6, 5))
    x = torch.tensor(z, dtype=torch.float64)[None, :, None]
    m = float(q.margin(x))
    assert 0.0 <= m <= 0.5
    slope = float(((q.levels.double() - 1) * (1 + 1e-3) / 2).max())  # max of d bound / dz
    step = 0.99 * m / slope * torch.tensor(direction, dtype=torch.float64)[None, :, None]
    assert torch.equal(q.encode(x), q.encode(x + step))


@pytest.mark.parametrize("levels", [(8,), (5,), (8, 8, 8, 6, 5)])
def test_a_tie_has_zero_margin_and_a_centre_half(levels: tuple[int, ...]) -> None:
    """Latents that bound to x.5 in one channel are ties (margin 0); ones that bound to
    integers in every channel are bin centres (margin 0.5)."""
    q = FSQ(levels)
    lv = q.levels.double()
    half_l = (lv - 1) * (1 + 1e-3) / 2
    offset = torch.where(q.levels % 2 == 0, 0.5, 0.0).double()
    shift = torch.atanh(offset / half_l)

    def latent_for(bounded: torch.Tensor) -> torch.Tensor:  # the inverse of FSQ.bound
        return (torch.atanh((bounded + offset) / half_l) - shift)[None, :, None]

    centre = torch.zeros(len(levels), dtype=torch.float64)
    assert float(q.margin(latent_for(centre))) == pytest.approx(0.5, abs=1e-6)
    tie = centre.clone()
    tie[0] = 0.5
    assert float(q.margin(latent_for(tie))) == pytest.approx(0.0, abs=1e-6)
