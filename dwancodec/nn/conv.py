"""Causal convolution with an explicit context cache."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..lengths import conv_context
from ..streaming.state import State, Stateful, StateSpec


class CausalConv1d(Stateful):
    """``Conv1d`` with left context only. Input ``[B, C_in, T]`` -> ``[B, C_out, T / stride]``.

    ``T`` must be a multiple of ``stride`` (the streaming sessions only feed whole frames). The
    state ``cache`` holds the last ``conv_context(kernel, stride, dilation)`` input samples, so
    ``step`` on consecutive chunks equals one ``step`` on their concatenation.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv1d(
            in_channels, out_channels, kernel_size, stride=stride, dilation=dilation,
            groups=groups, bias=bias,
        )
        self.in_channels = in_channels
        self.stride = stride
        self.context = conv_context(kernel_size, stride, dilation)

    def state_spec(self) -> dict[str, StateSpec]:
        if self.context == 0:
            return {}
        return {"cache": StateSpec((self.in_channels, self.context))}

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        if x.shape[-1] % self.stride:
            raise ValueError(
                f"CausalConv1d(stride={self.stride}) got {x.shape[-1]} samples, "
                "not a multiple of the stride"
            )
        if self.context == 0:
            return self.conv(x), {}
        full = torch.cat([state["cache"], x], dim=-1)
        # full has context + T samples; keep the last `context` as the next cache.
        return self.conv(full), {"cache": full[..., full.shape[-1] - self.context:]}


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels of a ``[B, C, T]`` tensor (per time step, hence causal)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)

