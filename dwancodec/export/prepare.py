"""Preparing a :class:`~dwancodec.model.Codec` for export: a frozen eval copy with
parametrizations baked in, scalar-quantizer decodes as lookup tables."""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from ..model import Codec

#: Largest decode table (bytes) that replaces FSQ/LFQ integer arithmetic in the graphs.
TABLE_MAX_BYTES = 4 << 20


def strip_parametrizations(module: nn.Module) -> int:
    """Bake training-only reparametrizations into plain weights, in place; return how many.

    Handles ``torch.nn.utils.parametrize`` (e.g. ``parametrizations.weight_norm``,
    ``spectral_norm``) and the legacy hook-based ``weight_norm`` / ``spectral_norm``.
    """
    from torch.nn.utils import parametrize

    count = 0
    for m in list(module.modules()):
        if parametrize.is_parametrized(m):
            for name in list(m.parametrizations.keys()):  # type: ignore[union-attr]
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)
                count += 1
        for hook_id, hook in list(m._forward_pre_hooks.items()):
            cls = type(hook).__name__
            if cls in ("WeightNorm", "SpectralNorm"):
                hook.remove(m)  # recomputes and stores the plain weight
                del m._forward_pre_hooks[hook_id]
                count += 1
    return count


class TableDecode(nn.Module):
    """A scalar quantizer (FSQ, LFQ) whose ``decode`` is a lookup in its own decode table.

    ``table[c] = quantizer.decode(c)`` for every code ``c`` (computed by the quantizer itself), so
    ``decode`` is the same function on every valid code, but exports as one ``Gather`` instead
    of a dozen integer div/mod/cast nodes per residual stage. ``encode`` is the quantizer's own.
    """

    def __init__(self, quantizer: nn.Module) -> None:
        super().__init__()
        self.quantizer = quantizer
        self.dim = quantizer.dim
        self.codebook_size = quantizer.codebook_size
        with torch.no_grad():
            codes = torch.arange(self.codebook_size)[None]  # [1, K]
            table = quantizer.decode(codes)[0].t().contiguous()  # [K, d]
        self.register_buffer("table", table)

    def encode(self, z: Tensor) -> Tensor:
        return self.quantizer.encode(z)

    def decode(self, codes: Tensor) -> Tensor:
        """``[B, T]`` codes -> ``[B, d, T]``."""
        return nn.functional.embedding(codes, self.table).transpose(1, 2)


def tabulate_decoders(codec: Codec, max_bytes: int = TABLE_MAX_BYTES) -> int:
    """Swap each FSQ/LFQ stage of ``codec`` (in place) for a :class:`TableDecode`; return count."""
    from ..quantization import FSQ, LFQ

    count = 0
    for stage in codec.quantizer.stages:
        q = stage.quantizer
        if isinstance(q, (FSQ, LFQ)) and q.codebook_size * q.dim * 4 <= max_bytes:
            stage.quantizer = TableDecode(q)
            count += 1
    return count


def prepare_for_export(codec: Codec, tabulate: bool = True) -> Codec:
    """A frozen eval-mode copy of ``codec`` with parametrizations baked in (``codec`` untouched).

    ``tabulate``: replace scalar quantizers' decode by their lookup table (:class:`TableDecode`).
    """
    model = copy.deepcopy(codec).cpu().eval()
    strip_parametrizations(model)
    for p in model.parameters():
        p.requires_grad_(False)
    if tabulate:
        tabulate_decoders(model)
    return model
