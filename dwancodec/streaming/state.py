"""Explicit streaming state: specs, flat dotted dicts, and the ``Stateful`` module protocol.

A stateful layer declares ``state_spec()`` (name -> shape without batch, dtype), sized from its
geometry only. ``step(x, state) -> (y, new_state)`` is pure: it never mutates ``state``. The
offline ``forward`` is ``step`` from a zero state, so there is a single code path to test and to
export. Composite modules prefix their children's keys with the child's attribute path, giving a
flat dict such as ``{"blocks.0.dwconv.cache": Tensor[B, C, 6], ...}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

State = dict[str, Tensor]


@dataclass(frozen=True)
class StateSpec:
    """Shape (without the batch dimension) and dtype of one state tensor."""

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32

    def zeros(self, batch_size: int, device: torch.device | str | None = None) -> Tensor:
        return torch.zeros((batch_size, *self.shape), dtype=self.dtype, device=device)


def prefixed(prefix: str, mapping: Mapping[str, object]) -> dict[str, object]:
    """``{"a": 1}`` -> ``{"prefix.a": 1}``."""
    return {f"{prefix}.{k}": v for k, v in mapping.items()}


def sub_state(state: Mapping[str, Tensor], prefix: str) -> State:
    """The entries under ``prefix.``, with the prefix removed."""
    p = prefix + "."
    return {k[len(p):]: v for k, v in state.items() if k.startswith(p)}


def zero_state(
    spec: Mapping[str, StateSpec], batch_size: int, device: torch.device | str | None = None
) -> State:
    return {k: s.zeros(batch_size, device) for k, s in spec.items()}


def check_state(spec: Mapping[str, StateSpec], state: Mapping[str, Tensor], batch: int) -> None:
    """Raise ``ValueError`` naming the first missing, extra or mis-shaped state entry (the rule
    of :func:`dwancodec.checks.check_state`)."""
    from ..validation import check_state as _check

    _check(spec, state, batch)


def reset_streams(state: Mapping[str, Tensor], mask: Tensor) -> State:
    """Zero the state of the streams where ``mask`` ([B] bool) is true; others are untouched."""
    out: State = {}
    for k, t in state.items():
        m = mask.reshape(-1, *([1] * (t.dim() - 1)))
        out[k] = torch.where(m, torch.zeros_like(t), t)
    return out


class Stateful(nn.Module):
    """Base for modules with streaming state.

    Subclasses implement ``state_spec`` and ``step``; composite modules can rely on
    :meth:`children_state_spec` and :meth:`step_child`.
    """

    def state_spec(self) -> dict[str, StateSpec]:
        raise NotImplementedError

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        raise NotImplementedError

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> State:
        if device is None:
            device = next(self.parameters(), torch.empty(0)).device
        return zero_state(self.state_spec(), batch_size, device)

    def forward(self, x: Tensor) -> Tensor:
        y, _ = self.step(x, self.initial_state(x.shape[0], x.device))
        return y

    # Helpers for composites -------------------------------------------------------------------
    @staticmethod
    def children_state_spec(named: Iterable[tuple[str, nn.Module]]) -> dict[str, StateSpec]:
        spec: dict[str, StateSpec] = {}
        for name, module in named:
            if isinstance(module, Stateful):
                spec.update(prefixed(name, module.state_spec()))  # type: ignore[arg-type]
        return spec

    @staticmethod
    def step_child(
        name: str, module: Stateful, x: Tensor, state: State, new_state: State
    ) -> Tensor:
        """Run ``module.step`` on its slice of ``state``; write its new state into ``new_state``."""
        y, s = module.step(x, sub_state(state, name))
        new_state.update(prefixed(name, s))  # type: ignore[arg-type]
        return y
