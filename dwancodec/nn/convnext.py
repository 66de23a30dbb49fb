"""Causal ConvNeXt block (depthwise causal conv -> LayerNorm -> MLP -> layer scale, residual)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..streaming.state import State, Stateful, StateSpec
from .conv import CausalConv1d


class ConvNeXtBlock(Stateful):
    """``[B, C, T] -> [B, C, T]``. Only the depthwise conv has memory (``dwconv.cache``)."""

    def __init__(self, dim: int, kernel_size: int = 7, mlp_ratio: float = 3.0,
                 layer_scale: float = 1e-2) -> None:
        super().__init__()
        hidden = round(dim * mlp_ratio)
        self.dwconv = CausalConv1d(dim, dim, kernel_size, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pw1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.pw2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), layer_scale))

    @torch.no_grad()
    def start_as_identity(self) -> None:
        """Make the block compute the identity by zeroing its last projection (not ``gamma``:
        the weights inside then still get gradients and the block grows in from step 1)."""
        self.pw2.weight.zero_()
        self.pw2.bias.zero_()

    def state_spec(self) -> dict[str, StateSpec]:
        return self.children_state_spec([("dwconv", self.dwconv)])

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        new_state: State = {}
        h = self.step_child("dwconv", self.dwconv, x, state, new_state)
        h = h.transpose(1, 2)  # [B, T, C]: Linear/LayerNorm act on the last axis
        h = self.pw2(self.act(self.pw1(self.norm(h))))
        return x + (self.gamma * h).transpose(1, 2), new_state
