"""Causal ConvNeXt encoder: waveform ``[B, 1, T]`` -> latents ``[B, latent_dim, T / hop]``."""

from __future__ import annotations

from torch import Tensor, nn

from ..config import EncoderConfig
from ..streaming.state import State, Stateful, StateSpec
from .conv import CausalConv1d, ChannelLayerNorm
from .convnext import ConvNeXtBlock


def _downsample(c_in: int, c_out: int, stride: int) -> CausalConv1d:
    # kernel 2 * stride: each output sees its own stride block plus the previous one.
    kernel = 2 * stride if stride > 1 else 7
    return CausalConv1d(c_in, c_out, kernel, stride=stride)


class Encoder(Stateful):
    """Stage ``i`` runs ``depths[i]`` ConvNeXt blocks at ``channels[i]`` after a stride
    ``strides[i]`` causal downsampling (the first one is the stem on the waveform)."""

    def __init__(self, cfg: EncoderConfig, latent_dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        c_prev = 1
        for stride, channels, depth in zip(cfg.strides, cfg.channels, cfg.depths, strict=True):
            if c_prev == 1:  # stem: patchify the waveform
                self.layers.append(_downsample(1, channels, stride))
            else:
                self.layers.append(_NormThenDown(c_prev, channels, stride))
            for _ in range(depth):
                self.layers.append(ConvNeXtBlock(channels, cfg.kernel_size, cfg.mlp_ratio))
            c_prev = channels
        self.out_norm = ChannelLayerNorm(c_prev)
        self.out_proj = nn.Conv1d(c_prev, latent_dim, 1)

    def state_spec(self) -> dict[str, StateSpec]:
        return self.children_state_spec(
            (f"layers.{i}", m) for i, m in enumerate(self.layers)
        )

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        new_state: State = {}
        for i, layer in enumerate(self.layers):
            x = self.step_child(f"layers.{i}", layer, x, state, new_state)
        return self.out_proj(self.out_norm(x)), new_state


class _NormThenDown(Stateful):
    """LayerNorm over channels, then a strided causal conv (between ConvNeXt stages)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.norm = ChannelLayerNorm(c_in)
        self.down = _downsample(c_in, c_out, stride)

    def state_spec(self) -> dict[str, StateSpec]:
        return self.children_state_spec([("down", self.down)])

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        new_state: State = {}
        y = self.step_child("down", self.down, self.norm(x), state, new_state)
        return y, new_state
