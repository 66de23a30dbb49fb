"""Probe: which candidate loss ranks the error-split hybrids as PESQ-WB does?

``recipes/error_split.py --losses`` shows that the training objective prefers the true
spectral envelope on the decode's fine structure (+0.32 PESQ-WB) to the true fine structure on
the decode's envelope (+0.85). This scores candidate losses, each on the bins below 2 kHz at
1024 and 2048 points, on the same hybrids (n_q 8, val-16k, mean over clips; lower is better):
log-magnitude L1 weighted by the target magnitude (power 0.5 and 1), spectral convergence, and
the power-compressed (0.3) magnitude MSE relative to the target's power (the one adopted as
``losses.LowBandHarmonicLoss``). A candidate worth training ranks "true fine structure" below
(better than) "true envelope".

Usage (repo root, venv active)::

    python recipes/loss_candidates.py [MODEL]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from error_split import hybrids, resynth

from dwancodec.audio import load_audio
from dwancodec.model import Codec

SR, N_FFT, CUTOFF = 16000, 512, 2000.0


def mag(x: torch.Tensor, n: int) -> torch.Tensor:
    """``[T]`` -> STFT magnitude ``[n // 2 + 1, frames]`` (Hann, hop n / 4)."""
    window = torch.hann_window(n, dtype=x.dtype)
    return torch.stft(x, n, n // 4, window=window, return_complex=True).abs()


def candidates(est: torch.Tensor, ref: torch.Tensor) -> dict[str, float]:
    """Every candidate loss of ``est`` against ``ref`` (both ``[T]``)."""
    out = {}
    for n in (1024, 2048):
        low = torch.arange(n // 2 + 1) * SR / n < CUTOFF
        x, y = mag(ref, n)[low], mag(est, n)[low]
        for p in (0.5, 1.0):
            w = x ** p
            out[f"wlog{n} p{p}"] = float((w * (torch.log(y + 1e-5) - torch.log(x + 1e-5)).abs())
                                         .sum() / w.sum())
        out[f"sc{n}"] = float(torch.linalg.norm(y - x) / torch.linalg.norm(x))
        out[f"pow0.3 {n}"] = float(((y ** 0.3 - x ** 0.3) ** 2).mean() / (x ** 0.3).pow(2).mean())
    return out


def main() -> None:
    model = Codec.from_pretrained(sys.argv[1] if len(sys.argv) > 1
                                  else "dwancodec/assets/default").eval()
    torch.set_num_threads(1)
    window = torch.hann_window(N_FFT, dtype=torch.float64)
    acc: dict[tuple[str, str], list[float]] = {}
    for f in sorted(Path("../shared/data/val-16k").rglob("*.flac")):
        audio, _ = load_audio(f, SR)
        audio = audio[: len(audio) // model.hop_length * model.hop_length]
        x = torch.from_numpy(audio.astype(np.float64))
        sx = torch.stft(x, N_FFT, N_FFT // 4, window=window, return_complex=True)
        with torch.inference_mode():
            y = model(torch.from_numpy(audio)[None, None], 8).audio[0, 0].double()
        sy = torch.stft(y, N_FFT, N_FFT // 4, window=window, return_complex=True)
        for kind, (m, ph) in hybrids(sx, sy, SR, N_FFT, True).items():
            est = torch.from_numpy(resynth(m, ph, window, len(audio)))
            for k, v in candidates(est, x).items():
                acc.setdefault((kind, k), []).append(v)
    kinds = list(dict.fromkeys(k for k, _ in acc))
    names = list(dict.fromkeys(n for _, n in acc))
    print("| hybrid | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for kind in kinds:
        print(f"| {kind} | " + " | ".join(f"{np.mean(acc[(kind, n)]):.3f}" for n in names) + " |")


if __name__ == "__main__":
    main()
