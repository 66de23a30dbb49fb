"""Lookup-free quantization (MAGVIT-v2): each channel is a bit, the code is the sign pattern."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .base import QuantizerOutput, straight_through


def binary_entropy(p: Tensor) -> Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * torch.log2(p) + (1 - p) * torch.log2(1 - p))


class LFQ(nn.Module):
    """``bits`` channels -> index in ``[0, 2**bits)``; decode gives ``±1`` per channel.

    The entropy loss is factorised over bits: per-sample entropy (make each bit confident) minus
    the entropy of the batch-average bit probability (use all codes); the factorised form avoids
    a ``2**bits``-wide softmax and is a lower bound of the true codebook entropy term.
    """

    def __init__(self, bits: int, temperature: float = 1.0) -> None:
        super().__init__()
        self.dim = bits
        self.codebook_size = 2**bits
        self.temperature = temperature
        self.register_buffer("basis", 2 ** torch.arange(bits, dtype=torch.int64),
                             persistent=False)

    def encode(self, z: Tensor) -> Tensor:
        return ((z.transpose(1, 2) > 0).long() * self.basis).sum(-1)

    def margin(self, z: Tensor) -> Tensor:
        """``[B, d, T]`` -> ``[B, T]``: the smallest ``|z|`` of the frame (0 = a sign tie)."""
        return z.abs().amin(1)

    def decode(self, codes: Tensor) -> Tensor:
        bits = (codes.unsqueeze(-1) // self.basis) % 2
        return (bits.float() * 2 - 1).transpose(1, 2)

    def forward(self, z: Tensor) -> QuantizerOutput:
        codes = self.encode(z)
        q = self.decode(codes)
        p = torch.sigmoid(4 * z / self.temperature)  # P(bit = 1), [B, d, T]
        sample_entropy = binary_entropy(p).sum(1).mean()
        codebook_entropy = binary_entropy(p.mean(dim=(0, 2))).sum()
        losses = {
            "commitment": torch.mean((z - q.detach()) ** 2),
            "entropy": sample_entropy - codebook_entropy,
        }
        return QuantizerOutput(straight_through(q, z), codes, losses)
