"""How much does the rounding of the codes cost? Scores a model on the val-16k clips twice per
stage count: as it codes (FSQ rounding), and with every stage passing its bounded value through
unrounded (no quantization noise in the stages' dimensions; the stages still project to their
few dimensions each, so this is the ceiling of the autoencoder at that stage count).

If the unrounded scores equal the rounded ones, the bitrate is not what limits quality: the
encoder and decoder are (issue 12, round 8).

Usage (repo root, venv active)::

    python recipes/quantizer_ceiling.py dwancodec/assets/default [--clips ../shared/data/val-16k]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dwancodec.audio import load_audio
from dwancodec.metrics import mel_distance, pesq_wb
from dwancodec.model import Codec
from dwancodec.quantization.base import QuantizerOutput
from dwancodec.quantization.fsq import FSQ


def unrounded(self: FSQ, z: torch.Tensor) -> QuantizerOutput:
    """FSQ.forward without the rounding: ``[B, d, T]`` -> the bounded value itself."""
    bounded = self.bound(z.transpose(1, 2))
    return QuantizerOutput((bounded / self.half_width).transpose(1, 2), self._indices(bounded))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="bundle folder")
    p.add_argument("--clips", default="../shared/data/val-16k")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = Codec.from_pretrained(args.model).eval()
    if model.config.quantizer.kind != "fsq":
        raise SystemExit("quantizer_ceiling: only FSQ models (the rounding is FSQ's)")
    files = sorted(Path(args.clips).rglob("*.flac"))
    if not files:
        raise SystemExit(f"quantizer_ceiling: no .flac under {args.clips}")
    n_qs = range(1, model.num_codebooks + 1)
    scores: dict[tuple[str, int], list[tuple[float, float]]] = {}
    rounded_forward = FSQ.forward
    for f in files:
        audio, _ = load_audio(f, model.sample_rate)
        audio = audio[: len(audio) // model.hop_length * model.hop_length]
        x = torch.from_numpy(audio)[None, None]
        with torch.inference_mode():
            z = model.encoder(x)
            for mode, fwd in (("rounded", rounded_forward), ("unrounded", unrounded)):
                FSQ.forward = fwd
                try:
                    for n in n_qs:
                        y = model.decoder(model.quantizer(z, n).z_q)[0, 0].numpy()
                        scores.setdefault((mode, n), []).append(
                            (pesq_wb(audio, y, model.sample_rate),
                             mel_distance(audio, y, model.sample_rate)))
                finally:
                    FSQ.forward = rounded_forward
    print(f"{model.identity()} on {len(files)} clips of {args.clips}: PESQ-WB / mel distance")
    print("| n_q | rounded (as coded) | unrounded (no quantization noise) |")
    print("|---:|---|---|")
    for n in n_qs:
        r, u = (np.mean(scores[(m, n)], axis=0) for m in ("rounded", "unrounded"))
        print(f"| {n} | {r[0]:.2f} / {r[1]:.3f} | {u[0]:.2f} / {u[1]:.3f} |")


if __name__ == "__main__":
    main()
