"""Residual stacking of any quantizer kind, with quantizer dropout (one model, many bitrates)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..config import QuantizerConfig
from .base import QuantizerOutput
from .fsq import FSQ
from .lfq import LFQ
from .vq import VectorQuantizer


def make_quantizer(cfg: QuantizerConfig) -> nn.Module:
    if cfg.kind == "fsq":
        return FSQ(cfg.levels)
    if cfg.kind == "lfq":
        return LFQ(cfg.lfq_bits)
    return VectorQuantizer(cfg.codebook_size, cfg.codebook_dim, ema=cfg.kind == "ema",
                           decay=cfg.ema_decay, dead_code_threshold=cfg.dead_code_threshold)


#: Below this rounding margin (FSQ level units) a frame counts as a tie: float32 computations
#: that agree to ~1e-5 (chunked vs whole convolutions, torch vs ONNX Runtime) may round it
#: differently. Streaming tests and export verification allow code differences only there.
TIE_MARGIN = 1e-3

class Stage(nn.Module):
    """Project ``latent_dim -> d``, quantize, project back (factorised codes, as in DAC)."""

    def __init__(self, cfg: QuantizerConfig, latent_dim: int) -> None:
        super().__init__()
        self.quantizer = make_quantizer(cfg)
        d = self.quantizer.dim
        self.project_in = nn.Conv1d(latent_dim, d, 1)
        self.project_out = nn.Conv1d(d, latent_dim, 1)


class ResidualQuantizer(nn.Module):
    """``num_quantizers`` stages; stage ``i`` quantizes what stages ``< i`` left over.

    encode: ``[B, D, T] -> [B, n_q, T]``; decode: ``[B, k, T] -> [B, D, T]`` for any
    ``1 <= k <= num_quantizers`` (fewer stages = lower bitrate).
    """

    def __init__(self, cfg: QuantizerConfig, latent_dim: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.stages = nn.ModuleList(Stage(cfg, latent_dim) for _ in range(cfg.num_quantizers))
        self.num_quantizers = cfg.num_quantizers
        self.codebook_size = self.stages[0].quantizer.codebook_size
        self.gains = [cfg.stage_gain**i for i in range(cfg.num_quantizers)]

    def stage_latent(self, i: int, values: Tensor) -> Tensor:
        """Quantized stage-``i`` values ``[B, d, T]`` -> its latent contribution ``[B, D, T]``."""
        q = self.stages[i].project_out(values)
        return q if self.gains[i] == 1.0 else q / self.gains[i]

    def stage_input(self, i: int, residual: Tensor) -> Tensor:
        g = self.gains[i]
        return self.stages[i].project_in(residual if g == 1.0 else residual * g)

    def encode(self, z: Tensor, n_q: int | None = None) -> Tensor:
        n_q = self.num_quantizers if n_q is None else n_q
        codes = []
        residual = z
        for i, stage in enumerate(self.stages[:n_q]):
            c = stage.quantizer.encode(self.stage_input(i, residual))
            codes.append(c)
            residual = residual - self.stage_latent(i, stage.quantizer.decode(c))
        return torch.stack(codes, dim=1)

    def tie_margin(self, z: Tensor, n_q: int | None = None) -> Tensor:
        """``[B, D, T]`` latents -> ``[B, T]``: each frame's smallest rounding margin over the
        first ``n_q`` stages (the quantizers' ``margin``; for FSQ in level units, 0 = a tie).

        The rule that streaming and offline encoding obey: float32 convolutions over
        different chunkings agree to ~1e-5, so their codes can differ only in frames whose
        offline margin is below that (tests/test_streaming.py checks the rule with 1e-3).
        A differing stage also changes the residual of every later stage of that frame."""
        n_q = self.num_quantizers if n_q is None else n_q
        margins = []
        residual = z
        for i, stage in enumerate(self.stages[:n_q]):
            x = self.stage_input(i, residual)
            margins.append(stage.quantizer.margin(x))
            c = stage.quantizer.encode(x)
            residual = residual - self.stage_latent(i, stage.quantizer.decode(c))
        return torch.stack(margins, dim=1).amin(1)

    def decode(self, codes: Tensor) -> Tensor:
        z_q = None
        for i in range(codes.shape[1]):
            q = self.stage_latent(i, self.stages[i].quantizer.decode(codes[:, i]))
            z_q = q if z_q is None else z_q + q
        assert z_q is not None
        return z_q

    def forward(self, z: Tensor, n_q: int | None = None) -> QuantizerOutput:
        """Quantize with gradients. In training with ``n_q=None``, quantizer dropout draws a
        number of active stages per batch item (a ``quantizer_dropout`` fraction of items)."""
        b = z.shape[0]
        n_active = torch.full((b,), n_q or self.num_quantizers, device=z.device)
        if self.training and n_q is None and self.cfg.quantizer_dropout > 0:
            drawn = torch.randint(1, self.num_quantizers + 1, (b,), device=z.device)
            use = torch.rand(b, device=z.device) < self.cfg.quantizer_dropout
            n_active = torch.where(use, drawn, n_active)
        stages = self.stages[: (n_q or self.num_quantizers)]
        z_q: Tensor | None = None
        residual = z
        codes, losses, metrics = [], {}, {}
        energy = z.detach().pow(2).mean() + 1e-8
        residual_loss = z.new_zeros(())
        for i, stage in enumerate(stages):
            out = stage.quantizer(self.stage_input(i, residual))
            q = self.stage_latent(i, out.z_q)
            keep = (n_active > i).to(z.dtype)
            q_kept = q * keep[:, None, None]
            # Without dropout keep == 1 and q_kept == q bit for bit, so forward == decode(codes).
            z_q = q_kept if z_q is None else z_q + q_kept
            residual = residual - q
            # What each stage leaves over, relative to the latent's energy (scale-invariant,
            # so the encoder cannot lower it by shrinking z): the "residual" loss asks every
            # stage to refine what the earlier ones left instead of adding its own noise.
            residual_loss = residual_loss + residual.pow(2).mean() / energy / len(stages)
            metrics[f"residual_rms.{i}"] = residual.detach().pow(2).mean().sqrt()
            codes.append(out.codes)
            for k, v in out.losses.items():
                losses[k] = losses.get(k, 0.0) + v / len(stages)
            for k, v in out.metrics.items():
                metrics[f"{k}.{i}"] = v
        assert z_q is not None
        losses["residual"] = residual_loss
        n_active = n_active.clamp(max=len(stages))  # (n_q < num_quantizers: all use n_q)
        return QuantizerOutput(z_q, torch.stack(codes, dim=1), losses, metrics, n_active)
