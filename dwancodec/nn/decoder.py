"""Vocos-style causal decoder: latents ``[B, latent_dim, F]`` -> audio ``[B, 1, F * hop]``."""

from __future__ import annotations

from torch import Tensor, nn

from ..config import DecoderConfig
from ..streaming.state import State, Stateful, StateSpec, prefixed, sub_state
from .conv import CausalConv1d, ChannelLayerNorm
from .convnext import ConvNeXtBlock
from .istft import ISTFTHead


class Decoder(Stateful):
    """Causal input conv -> ConvNeXt blocks at frame rate -> LayerNorm -> ISTFT head."""

    def __init__(self, cfg: DecoderConfig, latent_dim: int, hop_length: int,
                 sample_rate: int = 16000) -> None:
        super().__init__()
        self.embed = CausalConv1d(latent_dim, cfg.dim, cfg.input_kernel_size)
        self.in_norm = ChannelLayerNorm(cfg.dim)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(cfg.dim, cfg.kernel_size, cfg.mlp_ratio, layer_scale=1.0 / cfg.depth)
            for _ in range(cfg.depth)
        )
        self.out_norm = ChannelLayerNorm(cfg.dim)
        self.head = ISTFTHead(cfg.dim, hop_length, cfg.n_fft, cfg.istft_hop, cfg.head,
                              cfg.subframe_depth, cfg.excitation, sample_rate)

    def _stateful_children(self) -> list[tuple[str, Stateful]]:
        return [("embed", self.embed), *((f"blocks.{i}", b) for i, b in enumerate(self.blocks)),
                ("head", self.head)]

    def state_spec(self) -> dict[str, StateSpec]:
        return self.children_state_spec(self._stateful_children())

    def run(self, z: Tensor, state: State, teacher: Tensor | None = None
            ) -> tuple[Tensor, State, Tensor | None]:
        """(audio ``[B, 1, F * hop]``, new state, predicted log2 f0 ``[B, F * hop / istft_hop]``
        of the harmonic excitation, ``None`` without one). ``teacher``: the f0 that drives the
        excitation in training (:meth:`dwancodec.nn.excitation.HarmonicExcitation.run`)."""
        new_state: State = {}
        x = self.in_norm(self.step_child("embed", self.embed, z, state, new_state))
        for i, block in enumerate(self.blocks):
            x = self.step_child(f"blocks.{i}", block, x, state, new_state)
        y, s, log_f0 = self.head.run(self.out_norm(x), sub_state(state, "head"), teacher)
        new_state.update(prefixed("head", s))
        return y.unsqueeze(1), new_state, log_f0

    def step(self, z: Tensor, state: State) -> tuple[Tensor, State]:
        y, new_state, _ = self.run(z, state)
        return y, new_state
