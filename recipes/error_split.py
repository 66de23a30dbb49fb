"""Is the decoded audio's error in its magnitudes or in its phase? Swaps them between input and
decode and scores each mix on the val-16k clips.

For every clip and stage count it takes the STFT (Hann, ``--n-fft``, hop a quarter) of the input
X and of the decode Y and resynthesises two hybrids: ``|Y| e^{i angle X}`` (the model's magnitudes
with the true phase: what a perfect phase would buy) and ``|X| e^{i angle Y}`` (true magnitudes
with the model's phase: what perfect magnitudes would buy). Both hybrids go through the same
STFT/ISTFT round trip as ``Y`` itself (scored too, as a check that the round trip changes
nothing). Whichever hybrid scores far above the decode names the part of the signal that holds
the model back.

Usage (repo root, venv active)::

    python recipes/error_split.py dwancodec/assets/default [--n-q 4,8] [--n-fft 512]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dwancodec.audio import load_audio
from dwancodec.metrics import mel_distance, pesq_wb
from dwancodec.model import Codec


def resynth(mag: torch.Tensor, phase: torch.Tensor, n_fft: int, length: int) -> np.ndarray:
    """``[F, frames]`` magnitude and phase -> ``[length]`` audio (Hann ISTFT, hop n_fft / 4)."""
    spec = torch.polar(mag, phase)
    window = torch.hann_window(n_fft, dtype=torch.float64)
    return torch.istft(spec, n_fft, n_fft // 4, window=window, length=length).numpy()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="bundle folder")
    p.add_argument("--clips", default="../shared/data/val-16k")
    p.add_argument("--n-q", default="2,4,8", help="stage counts (default: %(default)s)")
    p.add_argument("--n-fft", type=int, default=512, help="STFT size (default: %(default)s)")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = Codec.from_pretrained(args.model).eval()
    n_qs = [int(v) for v in args.n_q.split(",")]
    files = sorted(Path(args.clips).rglob("*.flac"))
    if not files:
        raise SystemExit(f"error_split: no .flac under {args.clips}")
    sr, n_fft = model.sample_rate, args.n_fft
    window = torch.hann_window(n_fft, dtype=torch.float64)
    kinds = ("decode", "decode magnitude + true phase", "true magnitude + decode phase")
    scores: dict[tuple[int, str], list[tuple[float, float]]] = {}
    for f in files:
        audio, _ = load_audio(f, sr)
        audio = audio[: len(audio) // model.hop_length * model.hop_length]
        x = torch.from_numpy(audio.astype(np.float64))
        sx = torch.stft(x, n_fft, n_fft // 4, window=window, return_complex=True)
        for n_q in n_qs:
            with torch.inference_mode():
                y = model(torch.from_numpy(audio)[None, None], n_q).audio[0, 0].double()
            sy = torch.stft(y, n_fft, n_fft // 4, window=window, return_complex=True)
            mixes = {
                kinds[0]: resynth(sy.abs(), sy.angle(), n_fft, len(audio)),
                kinds[1]: resynth(sy.abs(), sx.angle(), n_fft, len(audio)),
                kinds[2]: resynth(sx.abs(), sy.angle(), n_fft, len(audio)),
            }
            for kind, est in mixes.items():
                est = est.astype(np.float32)
                scores.setdefault((n_q, kind), []).append(
                    (pesq_wb(audio, est, sr), mel_distance(audio, est, sr)))
    print(f"{model.identity()} on {len(files)} clips of {args.clips}, STFT {n_fft}: "
          "PESQ-WB / mel distance")
    print("| n_q | " + " | ".join(kinds) + " |")
    print("|---:|" + "---|" * len(kinds))
    for n_q in n_qs:
        cells = [np.mean(scores[(n_q, k)], axis=0) for k in kinds]
        print(f"| {n_q} | " + " | ".join(f"{c[0]:.2f} / {c[1]:.3f}" for c in cells) + " |")


if __name__ == "__main__":
    main()
