"""Average the weights of bundles fine-tuned from one start (a "model soup").

    python recipes/soup.py OUT_DIR BUNDLE BUNDLE [BUNDLE ...] [--weights 0.5,0.5]

Runs that start from the same weights and differ in their loss or data stay close in weight
space (round 16: lb and lgd, both 16 000 steps from the shipped model, differ by 6 % of each
tensor's norm on average), and averaging such fine-tunes keeps what each gained instead of
choosing one (Wortsman et al. 2022, "Model soups"). It costs no training: a soup is scored
with `recipes/ship_check.py` like any candidate. The whole model is averaged, encoder and
quantizer included, so a soup's codes are its own (its identity differs from every input's).

The bundles must share one config (fields that shape training only, such as the quantizer
dropout, aside: the soup keeps the first bundle's) and one set of tensor names and shapes;
anything else is refused. An existing OUT_DIR is refused, so nothing is
overwritten. The soup is written in float32 (`recipes/ship_model.py` rounds it for shipping).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from dwancodec.config import CodecConfig
from dwancodec.model import CONFIG_FILE, Codec

# Config fields that shape training only (how stages are drawn, how an EMA codebook moves), not
# the function the weights compute: bundles may differ in them, and the soup keeps the first's.
TRAINING_ONLY = frozenset({"quantizer.quantizer_dropout", "quantizer.ema_decay",
                           "quantizer.dead_code_threshold"})


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_difference(a: dict, b: dict) -> list[str]:
    """The dotted config keys in which ``a`` and ``b`` differ, training-only fields aside.

    >>> config_difference({"q": {"quantizer_dropout": 0.5}}, {"q": {"quantizer_dropout": 1.0}})
    ['q.quantizer_dropout']
    >>> config_difference({"quantizer": {"quantizer_dropout": 0.5}},
    ...                   {"quantizer": {"quantizer_dropout": 1.0}})
    []
    """
    fa, fb = _flat(a), _flat(b)
    return sorted(k for k in fa.keys() | fb.keys()
                  if k not in TRAINING_ONLY and fa.get(k) != fb.get(k))


def soup_state(states: list[dict[str, torch.Tensor]], weights: list[float]
               ) -> dict[str, torch.Tensor]:
    """The weighted mean of state dicts, in float32.

    ``states``: N state dicts with the same names and shapes; ``weights``: N non-negative
    numbers, normalised here to sum to 1. Raises ``ValueError`` if names or shapes differ.

    >>> a = {"w": torch.tensor([0.0, 2.0])}; b = {"w": torch.tensor([2.0, 4.0])}
    >>> soup_state([a, b], [1, 3])["w"].tolist()
    [1.5, 3.5]
    """
    if len(states) != len(weights) or len(states) < 2:
        raise ValueError(f"need two or more bundles and one weight each, got {len(states)} "
                         f"bundles and {len(weights)} weights")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
    total = float(sum(weights))
    names = set(states[0])
    for i, s in enumerate(states[1:], 1):
        if set(s) != names:
            diff = sorted(names ^ set(s))[:3]
            raise ValueError(f"bundle {i + 1} has other tensors than bundle 1 (e.g. {diff})")
    out: dict[str, torch.Tensor] = {}
    for name in sorted(names):
        shapes = {tuple(s[name].shape) for s in states}
        if len(shapes) != 1:
            raise ValueError(f"tensor {name!r} differs in shape across bundles: {sorted(shapes)}")
        if not states[0][name].is_floating_point():
            raise ValueError(f"tensor {name!r} is {states[0][name].dtype}; only float tensors "
                             "can be averaged")
        out[name] = sum(s[name].float() * (w / total) for s, w in zip(states, weights, strict=True))
    return out


def soup(bundles: list[Path], out: Path, weights: list[float] | None = None) -> Codec:
    """Write the soup of ``bundles`` to ``out`` (config.json + model.safetensors)."""
    if out.exists():
        raise FileExistsError(f"{out} exists; pick a new folder")
    # Configs first, so that an architecture difference is named as such rather than as the
    # tensor mismatch it causes; then the project's checked loader for each bundle.
    for b in bundles:
        if not (b / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"no {CONFIG_FILE} in {b}: not a model bundle")
    configs = [CodecConfig.load(b / CONFIG_FILE).to_dict() for b in bundles]
    for b, c in zip(bundles[1:], configs[1:], strict=True):
        if diff := config_difference(configs[0], c):
            raise ValueError(f"{b}'s config.json differs from {bundles[0]}'s in "
                             f"{', '.join(diff[:3])}: a soup needs one architecture")
    states = [Codec.from_pretrained(b).state_dict() for b in bundles]
    state = soup_state(states, weights if weights is not None else [1.0] * len(bundles))
    model = Codec(CodecConfig.from_dict(configs[0]))
    model.load_state_dict(state)
    model.eval().save_pretrained(out)
    return model


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("bundles", type=Path, nargs="+")
    ap.add_argument("--weights", help="comma-separated, one per bundle (default: equal)")
    args = ap.parse_args()
    try:
        weights = ([float(w) for w in args.weights.split(",")] if args.weights else None)
        soup(args.bundles, args.out, weights)
    except (OSError, ValueError, KeyError) as e:
        print(f"soup: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.out}: soup of {len(args.bundles)} bundles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
