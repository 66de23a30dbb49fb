"""Finite scalar quantization (Mentzer et al., 2023), after vector-quantize-pytorch's FSQ."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .base import QuantizerOutput, straight_through


class FSQ(nn.Module):
    """Each of ``len(levels)`` channels is bounded and rounded to ``levels[i]`` values.

    ``encode: [B, d, T] -> [B, T]`` mixed-radix index in ``[0, prod(levels))``;
    ``decode: [B, T] -> [B, d, T]`` values in ``[-1, 1]`` (exact inverse of the rounding).
    """

    def __init__(self, levels: tuple[int, ...]) -> None:
        super().__init__()
        lv = torch.tensor(levels, dtype=torch.int64)
        self.register_buffer("levels", lv, persistent=False)
        self.register_buffer("basis", torch.cumprod(torch.cat([lv.new_ones(1), lv[:-1]]), 0),
                             persistent=False)
        self.register_buffer("half_width", (lv // 2).float(), persistent=False)
        self.dim = len(levels)
        self.codebook_size = math.prod(levels)

    def bound(self, z: Tensor) -> Tensor:
        """``[B, T, d]`` -> values whose rounding lands in ``levels`` bins (centred on 0)."""
        eps = 1e-3
        lv = self.levels.float()
        half_l = (lv - 1) * (1 + eps) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0)
        shift = torch.atanh(offset / half_l)
        return torch.tanh(z + shift) * half_l - offset

    def _indices(self, bounded: Tensor) -> Tensor:
        digits = torch.round(bounded) + self.half_width  # [B, T, d] in [0, levels)
        return (digits.long() * self.basis).sum(-1)

    def encode(self, z: Tensor) -> Tensor:
        return self._indices(self.bound(z.transpose(1, 2)))

    def margin(self, z: Tensor) -> Tensor:
        """``[B, d, T]`` -> ``[B, T]``: how far the frame's closest channel is from a rounding
        boundary, in level units (0 = a tie, 0.5 = a bin centre). Two computations of ``z``
        that differ by float rounding (chunked vs whole convolutions) can only give different
        codes where this is about as small as their difference."""
        bounded = self.bound(z.transpose(1, 2))
        return (0.5 - (bounded - torch.round(bounded)).abs()).amin(-1)

    def decode(self, codes: Tensor) -> Tensor:
        digits = (codes.unsqueeze(-1) // self.basis) % self.levels
        return ((digits.float() - self.half_width) / self.half_width).transpose(1, 2)

    def forward(self, z: Tensor) -> QuantizerOutput:
        bounded = self.bound(z.transpose(1, 2))
        codes = self._indices(bounded)
        z_q = straight_through(self.decode(codes), (bounded / self.half_width).transpose(1, 2))
        return QuantizerOutput(z_q, codes)
