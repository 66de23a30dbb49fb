"""Quantizers: exact inverse from indices, indices in range, code use, straight-through."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dwancodec.config import QUANTIZER_KINDS, QuantizerConfig
from dwancodec.quantization import FSQ, LFQ, ResidualQuantizer, VectorQuantizer


@given(levels=st.lists(st.integers(2, 9), min_size=1, max_size=6), seed=st.integers(0, 999),
       scale=st.floats(0.01, 20))
def test_fsq_exact_inverse_and_range(levels: list[int], seed: int, scale: float) -> None:
    fsq = FSQ(tuple(levels))
    z = scale * torch.randn(3, len(levels), 50, generator=torch.Generator().manual_seed(seed))
    out = fsq(z)
    assert out.codes.min() >= 0 and out.codes.max() < fsq.codebook_size
    assert torch.equal(out.z_q, fsq.decode(out.codes))
    assert out.z_q.abs().max() <= 1.0


def test_fsq_grid_is_injective_and_fully_reachable() -> None:
    fsq = FSQ((3, 4, 5))
    grid = fsq.decode(torch.arange(fsq.codebook_size)[None])[0].t()  # [K, d]
    assert torch.unique(grid, dim=0).shape[0] == fsq.codebook_size
    codes = fsq.encode(4 * torch.randn(1, 3, 20000, generator=torch.Generator().manual_seed(0)))
    assert torch.unique(codes).numel() == fsq.codebook_size


def test_lfq_inverse_and_entropy_loss() -> None:
    lfq = LFQ(6)
    z = torch.randn(4, 6, 100)
    out = lfq(z)
    assert torch.equal(out.z_q, lfq.decode(out.codes))
    assert out.codes.max() < 64 and out.codes.min() >= 0
    assert set(out.losses) == {"commitment", "entropy"}
    # All bits stuck at one value: batch entropy collapses, so the loss is higher.
    stuck = lfq(torch.ones(4, 6, 100) * 3)
    assert stuck.losses["entropy"] > out.losses["entropy"]


@pytest.mark.parametrize("ema", [True, False])
def test_vq_inverse_losses_and_ema(ema: bool) -> None:
    torch.manual_seed(0)
    vq = VectorQuantizer(16, 4, ema=ema)
    z = torch.randn(2, 4, 64)
    vq.eval()
    out = vq(z)
    assert torch.equal(out.z_q, vq.decode(out.codes))
    assert torch.equal(vq.encode(vq.decode(out.codes)), out.codes)
    assert ("codebook" in out.losses) != ema
    if ema:
        vq.train()
        before = vq.codebook.clone()
        data = torch.randn(2, 4, 64) + 5.0  # far from the init: every code dies
        for _ in range(20):
            vq(data)
        assert not torch.equal(before, vq.codebook)
        # dead-code restart + EMA pull the codebook into the data
        assert (vq.codebook.mean() - 5.0).abs() < 1.0


@pytest.mark.parametrize("kind", QUANTIZER_KINDS)
def test_residual_stack_inverse_dropout_and_gradients(kind: str) -> None:
    torch.manual_seed(0)
    cfg = QuantizerConfig(kind=kind, num_quantizers=4, levels=(5, 4, 3), codebook_size=32,
                          codebook_dim=4, lfq_bits=5)
    rq = ResidualQuantizer(cfg, latent_dim=16).eval()
    z = torch.randn(3, 16, 40, requires_grad=True)
    out = rq(z)
    assert out.codes.shape == (3, 4, 40)
    assert out.codes.min() >= 0 and out.codes.max() < rq.codebook_size
    assert torch.equal(out.z_q, rq.decode(out.codes))
    assert torch.equal(rq.encode(z.detach()), out.codes)
    # Fewer stages: the first k stages of the same stack, codes a prefix of the full codes.
    for k in range(1, 4):
        part = rq(z.detach(), n_q=k)
        assert torch.equal(part.codes, out.codes[:, :k])
        assert torch.equal(part.z_q, rq.decode(out.codes[:, :k]))
    # Straight-through: the encoder side gets gradients.
    out.z_q.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    # Quantizer dropout in training: some items use fewer stages.
    rq.train()
    torch.manual_seed(1)
    dropped = rq(z.detach().repeat(8, 1, 1))
    full = rq.decode(dropped.codes)
    differs = (dropped.z_q - full).abs().flatten(1).amax(1) > 0
    assert differs.any()
    # n_active says how many stages each item was decoded from: exactly its codes' prefix
    assert dropped.n_active is not None and dropped.n_active.shape == (24,)
    assert (dropped.n_active < 4).any()
    prefix = [rq.decode(dropped.codes[:, :k]) for k in range(1, 5)]
    for i, k in enumerate(dropped.n_active.tolist()):
        assert 1 <= k <= 4
        err = [float((dropped.z_q[i] - p[i]).detach().abs().max()) for p in prefix]
        assert err[k - 1] < 1e-5 and min(e for j, e in enumerate(err) if j != k - 1) > 1e-3
    assert rq.eval()(z.detach(), n_q=2).n_active.tolist() == [2, 2, 2]


@pytest.mark.parametrize("kind", QUANTIZER_KINDS)
def test_codebook_use_is_measured(kind: str) -> None:
    """On varied input, a fresh quantizer spreads its first stage over many codes."""
    torch.manual_seed(0)
    cfg = QuantizerConfig(kind=kind, num_quantizers=1, levels=(5, 4, 3), codebook_size=32,
                          codebook_dim=4, lfq_bits=5)
    rq = ResidualQuantizer(cfg, latent_dim=8).eval()
    codes = rq.encode(3 * torch.randn(4, 8, 2000))
    used = torch.unique(codes).numel() / rq.codebook_size
    print(f"{kind}: {used:.0%} of {rq.codebook_size} codes used on Gaussian input")
    assert used > 0.2
