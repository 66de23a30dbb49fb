"""Score a training checkpoint's raw and EMA weights on the run's own validation segments.

    python recipes/score_checkpoint.py /work/runs/ship-h/step-00016000.pt [--data VAL_DIR]

A run with ``ema_decay > 0`` validates (and bundles) the averaged weights; its checkpoints
hold both, so this measures what the averaging buys at the same step, with the same
segments (``val_segments`` x ``val_segment_seconds`` from the run's train_config) and the
same scorers as the run's ``val/`` rows. Prints one row per weight set: PESQ-WB, STOI, SI-SDR
and mel distance at n_q 2/4/8.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dwancodec.config import CodecConfig
from dwancodec.model import Codec
from dwancodec.training.checkpoint import load_checkpoint
from dwancodec.training.data import AudioCorpus, validation_segments
from dwancodec.training.validate import validate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("--data", default="../shared/data/val-16k")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    state = load_checkpoint(args.checkpoint, "cpu")
    cfg = CodecConfig.from_dict(state["model_config"])
    train_cfg = state["train_config"]  # the run's TrainConfig as a dict
    hop = cfg.hop_length
    seg = int(train_cfg["val_segment_seconds"] * cfg.sample_rate) // hop * hop
    batch = validation_segments(AudioCorpus((args.data,), cfg.sample_rate),
                                train_cfg["val_segments"], seg)
    sets = {"raw": state["model"]}
    if state.get("ema") is not None:
        sets["ema"] = state["ema"]
    print(f"{args.checkpoint} (step {state['step']}), n_q 2 / 4 / 8")
    print("| weights | PESQ-WB | STOI | SI-SDR dB | mel |\n|---|---|---|---|---|")
    for name, weights in sets.items():
        model = Codec(cfg)
        model.load_state_dict(weights)
        s = validate(model.eval(), batch)
        cell = {k: " / ".join(f"{s[f'{k}.nq{n}']:{f}}" for n in (2, 4, 8))
                for k, f in (("pesq", ".2f"), ("stoi", ".3f"), ("si_sdr", ".1f"), ("mel", ".3f"))}
        print(f"| {name} | {cell['pesq']} | {cell['stoi']} | {cell['si_sdr']} | {cell['mel']} |")


if __name__ == "__main__":
    main()
