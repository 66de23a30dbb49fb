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


#: Largest concatenated decode table (bytes) of :class:`FoldedDecoderStepGraph`.
FOLDED_TABLE_MAX_BYTES = 16 << 20


class FoldedDecoderStepGraph(DecoderStepGraph):
    """:class:`DecoderStepGraph` with the ``N`` dequantizer stages folded into one lookup and
    one matmul.

    Each stage's latent is affine in its decoded values: ``stage_latent(i, v) = W_i v + b_i``
    (output projection and residual gain). ``W_i`` and ``b_i`` are read off
    ``codec.quantizer.stage_latent`` itself at export (on the zero vector and the unit vectors;
    checked on random values, else :meth:`applies` is false), so

    ``z = sum_i keep_i (W_i v_i + b_i) = [W_0 .. W_N] (keep * [v_0 .. v_N]) + keep @ [b_i]``.

    One ``Gather`` of all stages' decode rows (a concatenated table) and two small matmuls
    replace, per stage, ``Gather`` + ``Transpose`` + ``Conv`` + ``Mul`` + ``Add`` at every step.
    Same function; float32 rounding differs (sums in another order), far inside the export
    check's tolerance.
    """

    def __init__(self, codec: Codec) -> None:
        super().__init__(codec)
        rq = codec.quantizer
        k, n = codec.codebook_size, len(rq.stages)
        with torch.no_grad():
            codes = torch.arange(k)[None]  # [1, K]
            tables = [st.quantizer.decode(codes)[0].t() for st in rq.stages]  # N x [K, d]
            d = tables[0].shape[1]
            eye = torch.eye(d)[:, :, None]  # d unit vectors, [d, d, 1]
            zero = torch.zeros(1, d, 1)
            bias = torch.stack([rq.stage_latent(i, zero)[0, :, 0] for i in range(n)])  # [N, D]
            weight = torch.cat([(rq.stage_latent(i, eye)[:, :, 0] - bias[i]) for i in range(n)])
            probe = torch.randn(2, d, 3, generator=torch.Generator().manual_seed(0))
            self.affine = all(torch.allclose(
                rq.stage_latent(i, probe),
                torch.einsum("jd,bjt->bdt", weight[i * d:(i + 1) * d], probe)
                + bias[i][None, :, None], atol=1e-5, rtol=1e-5) for i in range(n))
        self.register_buffer("values_table", torch.cat(tables).contiguous(),
                             persistent=False)  # [N * K, d]
        self.register_buffer("row_offset", (torch.arange(n) * k)[:, None], persistent=False)
        self.register_buffer("stage_weight", weight.contiguous(), persistent=False)  # [N*d, D]
        self.register_buffer("stage_bias", bias.contiguous(), persistent=False)  # [N, D]

    @staticmethod
    def table_bytes(codec: Codec) -> int:
        """Size of the concatenated decode table of ``codec`` (float32)."""
        dim = max(st.quantizer.dim for st in codec.quantizer.stages)
        return 4 * codec.num_codebooks * codec.codebook_size * dim

    def applies(self) -> bool:
        """Whether every stage's latent was found affine in its values (the fold is exact)."""
        return self.affine

    def dequantize(self, codes: Tensor, n_q: Tensor) -> Tensor:
        """``codes [B, N, k]``, ``n_q []`` -> the latents of stages ``< n_q``: ``[B, D, k]``."""
        keep = (self.stage_index < n_q.clamp(min=1)).to(torch.float32)  # stage 0 always
        b, _, f = codes.shape
        v = nn.functional.embedding(codes + self.row_offset, self.values_table)  # [B, N, k, d]
        v = (v * keep[:, None, None]).transpose(1, 2).reshape(b, f, -1)  # [B, k, N * d]
        z = v @ self.stage_weight + keep @ self.stage_bias  # [B, k, D]
        return z.transpose(1, 2)
