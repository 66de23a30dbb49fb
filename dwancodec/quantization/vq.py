"""Vector quantization with a learned codebook: EMA updates ("ema") or losses ("origin")."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F

from .base import QuantizerOutput, straight_through


def _all_reduce(t: Tensor) -> Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


class VectorQuantizer(nn.Module):
    """Nearest-neighbour VQ on ``[B, dim, T]``: ``encode -> [B, T]``, ``decode -> [B, dim, T]``.

    ema=True: the codebook is a buffer updated by exponential moving averages of assigned vectors
    (van den Oord et al. / SoundStream), with dead codes (EMA count below ``dead_code_threshold``)
    restarted from random batch vectors. ema=False: the codebook is a parameter trained by the
    codebook loss, the encoder by the commitment loss.
    """

    def __init__(self, codebook_size: int, dim: int, ema: bool, decay: float = 0.99,
                 dead_code_threshold: float = 2.0) -> None:
        super().__init__()
        self.codebook_size = codebook_size
        self.dim = dim
        self.ema = ema
        self.decay = decay
        self.dead_code_threshold = dead_code_threshold
        init = torch.randn(codebook_size, dim)
        if ema:
            self.register_buffer("codebook", init)
            self.register_buffer("cluster_size", torch.ones(codebook_size))
            self.register_buffer("embed_sum", init.clone())
        else:
            self.codebook = nn.Parameter(init)

    def encode(self, z: Tensor) -> Tensor:
        x = z.transpose(1, 2)  # [B, T, d]
        dist_ = (x.pow(2).sum(-1, keepdim=True) - 2 * x @ self.codebook.t()
                 + self.codebook.pow(2).sum(-1))
        return dist_.argmin(-1)

    def margin(self, z: Tensor) -> Tensor:
        """``[B, d, T]`` -> ``[B, T]``: squared distance to the second-nearest code minus that
        to the nearest (0 = a tie between two codes)."""
        x = z.transpose(1, 2)
        dist_ = (x.pow(2).sum(-1, keepdim=True) - 2 * x @ self.codebook.t()
                 + self.codebook.pow(2).sum(-1))
        two = dist_.topk(2, dim=-1, largest=False).values
        return two[..., 1] - two[..., 0]

    def decode(self, codes: Tensor) -> Tensor:
        return F.embedding(codes, self.codebook).transpose(1, 2)

    def forward(self, z: Tensor) -> QuantizerOutput:
        codes = self.encode(z)
        if self.ema and self.training:
            self._ema_update(z.detach(), codes)
        q = self.decode(codes)
        losses = {"commitment": F.mse_loss(z, q.detach())}
        if not self.ema:
            losses["codebook"] = F.mse_loss(q, z.detach())
        counts = torch.bincount(codes.flatten(), minlength=self.codebook_size).float()
        probs = counts / counts.sum().clamp(min=1)
        perplexity = torch.exp(-(probs * torch.log(probs.clamp(min=1e-10))).sum())
        return QuantizerOutput(straight_through(q, z), codes, losses, {"perplexity": perplexity})

    @torch.no_grad()
    def _ema_update(self, z: Tensor, codes: Tensor) -> None:
        x = z.transpose(1, 2).reshape(-1, self.dim)
        onehot = F.one_hot(codes.flatten(), self.codebook_size).type_as(x)
        counts = _all_reduce(onehot.sum(0))
        sums = _all_reduce(onehot.t() @ x)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-5) / (n + self.codebook_size * 1e-5) * n
        self.codebook.copy_(self.embed_sum / smoothed.unsqueeze(1))
        self._restart_dead_codes(x)

    def _restart_dead_codes(self, x: Tensor) -> None:
        dead = self.cluster_size < self.dead_code_threshold
        # Same random replacement on every rank: draw on rank 0, broadcast.
        picks = torch.randint(0, x.shape[0], (self.codebook_size,), device=x.device)
        replacement = x[picks]
        if dist.is_available() and dist.is_initialized():
            dist.broadcast(replacement, 0)
        d = dead.unsqueeze(1)
        self.codebook.copy_(torch.where(d, replacement, self.codebook))
        self.embed_sum.copy_(torch.where(d, replacement, self.embed_sum))
        self.cluster_size.copy_(torch.where(dead, torch.ones_like(self.cluster_size),
                                            self.cluster_size))
