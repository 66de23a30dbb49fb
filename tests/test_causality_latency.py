"""Causality (by perturbation and by gradient) and measured algorithmic latency."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dwancodec.config import QUANTIZER_KINDS
from dwancodec.streaming import StreamingDecoder, StreamingEncoder

from .conftest import make_codec

CODECS = {kind: make_codec("tiny", kind) for kind in QUANTIZER_KINDS}


@pytest.mark.parametrize("kind", QUANTIZER_KINDS)
@given(t=st.integers(1, 3999), seed=st.integers(0, 2**16))
def test_future_input_never_changes_past_output(kind: str, t: int, seed: int) -> None:
    """Changing x[t:] leaves y[n] untouched for every n with n + latency <= t."""
    codec = CODECS[kind]
    g = torch.Generator().manual_seed(seed)
    x = 0.3 * torch.randn(1, 1, 4000, generator=g)
    x2 = x.clone()
    x2[..., t:] = 0.3 * torch.randn(1, 1, 4000 - t, generator=g)
    with torch.inference_mode():
        y1 = codec.decode(codec.encode(x))
        y2 = codec.decode(codec.encode(x2))
    keep = max(0, t - codec.latency_samples + 1)
    assert torch.equal(y1[..., :keep], y2[..., :keep])


@pytest.mark.parametrize("name", ["tiny", "default"])
def test_gradient_causality(name: str) -> None:
    """dy[n]/dx[m] == 0 for m >= n + latency, through the training path (straight-through)."""
    codec = make_codec(name)
    hop, lat = codec.hop_length, codec.latency_samples
    x = (0.3 * torch.randn(1, 1, 12 * hop)).requires_grad_(True)
    y = codec(x, n_q=codec.num_codebooks).audio
    last_dep = []
    for n in [5 * hop, 5 * hop + 1, 5 * hop + hop // 2, 6 * hop - 1]:
        (grad,) = torch.autograd.grad(y[0, 0, n], x, retain_graph=True)
        nz = torch.nonzero(grad[0, 0]).flatten()
        assert nz.numel() > 0
        assert int(nz.max()) < n + lat, f"y[{n}] depends on x[{int(nz.max())}]"
        last_dep.append(int(nz.max()))
    # Every output of frame 5 depends on the last input sample of frame 5 (one frame of delay).
    assert all(m == 6 * hop - 1 for m in last_dep[1:])


@pytest.mark.parametrize("name", ["tiny", "lowlatency", "default"])
def test_impulse_measures_declared_latency(name: str) -> None:
    """Push sample by sample; record when each output sample appears; the worst delay between
    an input sample and the emission of its decoded sample equals ``latency_samples``."""
    codec = make_codec(name)
    hop = codec.hop_length
    n = 4 * hop
    x = _impulse_that_changes_its_frame(codec, n, frame=2)
    enc, dec = StreamingEncoder(codec), StreamingDecoder(codec)
    emitted_at: list[int] = []  # emitted_at[p] = input samples pushed when output p appeared
    outputs = []
    for count in range(1, n + 1):
        y = dec.push(enc.push(x[:, count - 1:count]))
        emitted_at += [count] * y.shape[-1]
        outputs.append(y)
    measured = max(c - p for p, c in enumerate(emitted_at))
    assert measured == codec.latency_samples
    print(f"{name}: measured algorithmic latency {measured} samples = "
          f"{1000 * measured / codec.sample_rate:.1f} ms")
    # The response is time-aligned: output before the impulse's frame is untouched by it,
    # the impulse's own frame responds.
    y = torch.cat(outputs, -1)
    with torch.inference_mode():
        silent = codec.decode(codec.encode(torch.zeros(1, 1, n)))[:, 0]
    torch.testing.assert_close(y[:, : 2 * hop], silent[:, : 2 * hop], atol=1e-6, rtol=0)
    assert (y[:, 2 * hop: 3 * hop] - silent[:, 2 * hop: 3 * hop]).abs().max() > 1e-4


def _impulse_that_changes_its_frame(codec, n: int, frame: int) -> torch.Tensor:
    """``[1, n]`` zeros with one impulse in ``frame`` that changes that frame's codes
    (a random-weight model quantizes some small impulses to the silence code)."""
    hop = codec.hop_length
    with torch.inference_mode():
        silent_codes = codec.encode(torch.zeros(1, 1, n))
        for pos in range(frame * hop, (frame + 1) * hop):
            for amplitude in (0.9, -0.9, 0.5, -0.5):
                x = torch.zeros(1, n)
                x[0, pos] = amplitude
                if not torch.equal(codec.encode(x[:, None])[..., frame],
                                   silent_codes[..., frame]):
                    return x
    pytest.fail("no impulse changes the codes of its frame")


def test_default_latency_is_20ms_and_lowlatency_10ms() -> None:
    assert make_codec("default").latency_ms == 20.0
    assert make_codec("lowlatency").latency_ms == 10.0
