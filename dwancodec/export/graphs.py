"""The graph wrappers: the tested streaming step functions with positional tensors.

See :mod:`dwancodec.export.export` for the input/output contract of each graph.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..model import Codec
from ..streaming.state import sub_state


class EncoderStepGraph(nn.Module):
    """``(audio [B, 1, k * hop], *state) -> (codes [B, n_q, k], latents [B, D, k], *new_state)``.

    State tensors are positional in the order of ``codec.encoder_state_spec()``.
    """

    def __init__(self, codec: Codec, n_q: int | None = None) -> None:
        super().__init__()
        self.codec = codec
        self.n_q = codec.num_codebooks if n_q is None else n_q
        self.keys = list(codec.encoder_state_spec())

    def forward(self, audio: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        state = dict(zip(self.keys, states, strict=True))
        # == Codec.encoder_step, with the latents kept.
        latents, new = self.codec.encoder.step(audio, sub_state(state, "encoder"))
        codes = self.codec.quantizer.encode(latents, self.n_q)
        return (codes, latents, *(new[k[len("encoder."):]] for k in self.keys))


class DecoderStepGraph(nn.Module):
    """``(codes [B, N, k], n_q [], *state) -> (audio [B, 1, k * hop], *new_state)``.

    Stages ``>= n_q`` are ignored (their codes may hold any valid index, e.g. 0).
    """

    def __init__(self, codec: Codec) -> None:
        super().__init__()
        self.codec = codec
        self.keys = list(codec.decoder_state_spec())
        self.register_buffer("stage_index", torch.arange(codec.num_codebooks), persistent=False)

    def dequantize(self, codes: Tensor, n_q: Tensor) -> Tensor:
        """``ResidualQuantizer.decode(codes[:, :n_q])`` for a tensor ``n_q``: ``[B, D, k]``.

        Same stage modules, same summation order; dropped stages are multiplied by exactly 0.0.
        """
        keep = (self.stage_index < n_q).to(torch.float32)
        z_q: Tensor | None = None
        rq = self.codec.quantizer
        for i, stage in enumerate(rq.stages):
            q = rq.stage_latent(i, stage.quantizer.decode(codes[:, i]))
            z_q = q if z_q is None else z_q + q * keep[i]  # stage 0 is always active
        assert z_q is not None
        return z_q

    def forward(self, codes: Tensor, n_q: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        state = dict(zip(self.keys, states, strict=True))
        # == Codec.decoder_step(codes[:, :n_q], state)
        audio, new = self.codec.decoder.step(self.dequantize(codes, n_q),
                                             sub_state(state, "decoder"))
        return (audio, *(new[k[len("decoder."):]] for k in self.keys))


def n_named(module: nn.Module) -> int:
    """Number of named (non-``*states``) positional inputs of a wrapper's ``forward``."""
    return 2 if isinstance(module, DecoderStepGraph) else 1
