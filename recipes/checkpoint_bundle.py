"""Write a model bundle (``config.json`` + ``model.safetensors``) from a training checkpoint.

    python recipes/checkpoint_bundle.py /work/runs/ship-lc/step-00008000.pt OUT_DIR [--raw]

A run writes bundles only at validation (``bundle-latest``, ``bundle-best``), and the next
validation overwrites ``bundle-latest``. The checkpoints (every ``save_every`` steps, the last
``keep_last`` kept) hold the weights of any step, so this is how to score two runs at the same
step on full clips (``benchmarks/quality.py --model OUT_DIR``). It writes the averaged weights
when the run keeps an average (``ema_decay > 0``), as the run's own bundles do, or the raw
weights with ``--raw``. An existing ``OUT_DIR`` is refused, so nothing is overwritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dwancodec.config import CodecConfig
from dwancodec.model import Codec
from dwancodec.training.checkpoint import load_checkpoint


def checkpoint_bundle(checkpoint: Path, out: Path, raw: bool = False) -> int:
    """Write the bundle; returns the checkpoint's step."""
    if out.exists():
        raise FileExistsError(f"{out} exists; pick a new folder")
    state = load_checkpoint(checkpoint, "cpu")
    model = Codec(CodecConfig.from_dict(state["model_config"]))
    use_ema = not raw and state.get("ema") is not None
    model.load_state_dict(state["ema"] if use_ema else state["model"])
    model.eval().save_pretrained(out)
    return int(state["step"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--raw", action="store_true", help="the raw weights, not the average")
    args = ap.parse_args()
    try:
        step = checkpoint_bundle(args.checkpoint, args.out, args.raw)
    except (OSError, ValueError, KeyError) as e:
        print(f"checkpoint_bundle: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.out}: step {step} of {args.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
