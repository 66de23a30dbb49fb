"""Shared quantizer types."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class QuantizerOutput:
    """Result of quantizing latents during training or offline coding.

    z_q: ``[B, D, T]`` quantized latents with straight-through gradients; their *values* equal
        ``decode(codes)`` exactly.
    codes: ``[B, n_q, T]`` int64 indices (``[B, T]`` for a single stage).
    losses: auxiliary training losses by name ("commitment", "codebook", "entropy").
    metrics: monitoring values (e.g. "perplexity" of code use).
    n_active: ``[B]`` stages each item was decoded from (residual stacks, where quantizer
        dropout draws it per item in training); None for a single stage.
    """

    z_q: Tensor
    codes: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)
    metrics: dict[str, Tensor] = field(default_factory=dict)
    n_active: Tensor | None = None


def straight_through(values: Tensor, continuous: Tensor) -> Tensor:
    """``values`` in the forward pass, identity gradient to ``continuous`` in the backward pass.

    ``continuous - continuous.detach()`` is exactly ``0.0``, so the result is bit-identical to
    ``values`` (unlike ``continuous + (values - continuous).detach()``, which can round).
    """
    return values + (continuous - continuous.detach())
