"""Is the decoded audio's error in its magnitudes or in its phase? Swaps them between input and
decode and scores each mix on the val-16k clips.

For every clip and stage count it takes the STFT (Hann, ``--n-fft``, hop ``--hop`` or a quarter)
of the input X and of the decode Y and resynthesises two hybrids: ``|Y| e^{i angle X}`` (the
model's magnitudes with the true phase: what a perfect phase would buy) and ``|X| e^{i angle
Y}`` (true magnitudes with the model's phase: what perfect magnitudes would buy). Both hybrids
go through the same STFT/ISTFT round trip as ``Y`` itself (scored too, as a check that the round
trip changes nothing). Whichever hybrid scores far above the decode names the part of the signal
that holds the model back. With ``--detail`` it also splits the magnitude: the true magnitude
only below (or above) 1, 2 and 4 kHz, and the true fine structure (harmonics) on the decode's
spectral envelope or the reverse (envelope = the magnitude smoothed over 9 bins, 281 Hz at 512),
all with the decode's phase; and the true phase only in the loud low-band bins (below 2 kHz and
within 10 or 20 dB of their frame's peak) on the decode's magnitudes: what a phase loss that
weighs the loud bins could buy (round 13; at the head's own 160 / 80 it is most of what the
whole true phase buys), the true phase up to a random constant per bin or up to the decode's
best constant per frame (which of the phase's relations matter), and the true phase with each
frame moved by a random delay of up to 1, 2 or 4 samples (what imprecise pulse timing costs),
the decode's phase with each frame moved by its best delay (an oracle: is the decode's
phase error one number per frame?), and Griffin-Lim's phase from random on the decode's
magnitude (how much of the decode's phase is information rather than consistency?).
With ``--losses`` it also prints the training objective of each hybrid against the input
(``DEFAULT_LOSS_WEIGHTS``: mel, MR-STFT, the low-band harmonic loss where its weight is not 0
(30 since round 12; round 11's table had it at 0) and the anti-wrapping phase losses,
weighted, mean over clips): does the objective score a hybrid that PESQ prefers as better than
the decode (then the model is short of optimisation), or not (then the objective does not see
what PESQ hears)?

Usage (repo root, venv active)::

    python recipes/error_split.py dwancodec/assets/default [--n-q 4,8] [--n-fft 512] [--hop H]
        [--detail] [--losses]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dwancodec.audio import load_audio
from dwancodec.metrics import mel_distance, pesq_wb
from dwancodec.model import Codec


def resynth(mag: torch.Tensor, phase: torch.Tensor, window: torch.Tensor, hop: int,
            length: int) -> np.ndarray:
    """``[F, frames]`` magnitude and phase -> ``[length]`` audio (ISTFT with the analysis
    ``window`` of ``n_fft`` samples at ``hop``)."""
    return torch.istft(torch.polar(mag, phase), len(window), hop, window=window,
                       length=length).numpy()


def smooth(mag: torch.Tensor, bins: int = 9) -> torch.Tensor:
    """``[F, frames]`` -> the same, averaged over ``bins`` neighbouring frequency bins."""
    kernel = torch.ones(1, 1, bins, dtype=mag.dtype) / bins
    return torch.nn.functional.conv1d(mag.T[:, None], kernel, padding=bins // 2)[:, 0].T


def hybrids(sx: torch.Tensor, sy: torch.Tensor, sr: int, n_fft: int, detail: bool,
            hop: int | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Input and decode STFTs ``[F, frames]`` -> name -> (magnitude, phase) to resynthesise."""
    mx, my, px, py = sx.abs(), sy.abs(), sx.angle(), sy.angle()
    out = {"decode": (my, py), "decode magnitude + true phase": (my, px),
           "true magnitude + decode phase": (mx, py)}
    if detail:
        freqs = torch.arange(n_fft // 2 + 1, dtype=torch.float64)[:, None] * sr / n_fft
        for cut in (1000, 2000, 4000):
            low = freqs < cut
            out[f"true magnitude below {cut // 1000} kHz"] = (torch.where(low, mx, my), py)
            out[f"true magnitude above {cut // 1000} kHz"] = (torch.where(low, my, mx), py)
        env_x, env_y = smooth(mx).clamp(min=1e-9), smooth(my).clamp(min=1e-9)
        out["true fine structure, decode envelope"] = (mx / env_x * env_y, py)
        out["true envelope, decode fine structure"] = (my / env_y * env_x, py)
        rel_db = 20 * torch.log10(mx.clamp(min=1e-9) / mx.amax(dim=0, keepdim=True).clamp(min=1e-9))
        for db in (10, 20):
            loud = (freqs < 2000) & (rel_db > -db)
            out[f"true phase in bins < 2 kHz within {db} dB of the frame peak"] = (
                my, torch.where(loud, px, py))
        # Which part of the phase: the true phase up to a constant per bin (right frame-to-frame
        # advance, wrong relation between bins) or per frame (the decode's best constant: right
        # relation between bins, the decode's frame-to-frame drift).
        gen = torch.Generator().manual_seed(0)
        per_bin = (torch.rand(px.shape[0], 1, generator=gen, dtype=px.dtype) * 2 - 1) * torch.pi
        per_frame = torch.angle((mx * torch.polar(torch.ones_like(px), py - px)).sum(0))
        out["true phase + a random constant per bin"] = (my, px + per_bin)
        out["true phase + the decode's constant per frame"] = (my, px + per_frame)
        # The decode's phase error grows with frequency (round 14, `latent_probe.py --bands`):
        # 0.23 rad at 100-400 Hz, random above 1.3 kHz, as if its pulses were placed a few
        # samples off. The true phase with each frame's pulses moved by a random delay of up to
        # k samples (a linear phase 2 pi f tau per frame) scores what that alone would cost.
        for k in (1, 2, 4):
            tau = (torch.rand(1, px.shape[1], generator=gen, dtype=px.dtype) * 2 - 1) * k / sr
            out[f"true phase, pulses moved by up to {k} samples per frame"] = (
                my, px - 2 * torch.pi * freqs * tau)
        # The same delays, drifting slowly instead of jumping frame to frame (noise smoothed
        # over 19 frames, about 100 ms, scaled to peak at k samples): neighbouring frames then
        # agree, so this prices the absolute timing alone; the jittered rows price timing plus
        # disagreement between the overlapping frames.
        for k in (4, 16):
            noise = torch.randn(1, 1, px.shape[1] + 18, generator=gen, dtype=px.dtype)
            drift = torch.nn.functional.conv1d(
                noise, torch.hann_window(21, dtype=px.dtype)[1:-1].view(1, 1, -1))[0]
            tau = drift / drift.abs().max().clamp(min=1e-12) * k / sr
            out[f"true phase, pulses moved by a delay drifting up to {k} samples"] = (
                my, px - 2 * torch.pi * freqs * tau)
        # The reverse: the decode's own phase with each frame moved by its best delay (an
        # oracle that knows the input). If this recovers most of the true phase's gain, the
        # decode's phase error is one number per frame (where its pulses sit), not per bin.
        out["decode phase + the best delay per frame (oracle)"] = (
            my, py - 2 * torch.pi * freqs * best_delay(sx, sy, freqs, sr))
        # A consistent phase that knows nothing of the input's: Griffin-Lim from a random
        # phase (the decode's own STFT is consistent already: it is a signal's). Against the
        # decode: how much of the decode's phase is information rather than consistency.
        rand = (torch.rand(px.shape, generator=gen, dtype=px.dtype) * 2 - 1) * torch.pi
        out["decode magnitude + Griffin-Lim phase (100 iterations from random)"] = (
            my, griffin_lim(my, rand, n_fft, 100, hop or n_fft // 4))
    return out


def griffin_lim(mag: torch.Tensor, phase: torch.Tensor, n_fft: int, iterations: int,
                hop: int) -> torch.Tensor:
    """``[F, frames]`` magnitude and initial phase -> the phase after ``iterations`` of
    Griffin-Lim (Hann window of ``n_fft`` at ``hop``): a consistent STFT near that magnitude,
    from that start."""
    window = torch.hann_window(n_fft, dtype=mag.dtype)
    length = (mag.shape[1] - 1) * hop
    for _ in range(iterations):
        x = torch.istft(torch.polar(mag, phase), n_fft, hop, window=window, length=length)
        phase = torch.stft(x, n_fft, hop, window=window, return_complex=True).angle()
    return phase


def best_delay(sx: torch.Tensor, sy: torch.Tensor, freqs: torch.Tensor, sr: int,
               max_samples: float = 8.0, step: float = 0.05) -> torch.Tensor:
    """``[F, frames]`` input and decode STFTs -> ``[1, frames]`` the delay tau (seconds) per
    frame that, applied to the decode (phase ``angle Y - 2 pi f tau``), best aligns it with
    the input: the maximiser, over a grid of ``step`` samples within +-``max_samples``, of
    ``sum_f |X||Y| cos(angle X - angle Y + 2 pi f tau)`` (their correlation after the move).
    Worked example: a decode that is the input delayed by 3 samples gets tau = -3 / sr (moved
    3 samples earlier) in every frame."""
    taus = torch.arange(-max_samples, max_samples + step / 2, step, dtype=torch.float64) / sr
    cross = sx * sy.conj()  # [F, frames]
    shift = torch.polar(torch.ones(len(taus), freqs.shape[0], dtype=torch.float64),
                        2 * torch.pi * taus[:, None] * freqs[None, :, 0])  # [taus, F]
    score = torch.einsum("tf,fn->tn", shift, cross).real  # [taus, frames]
    return taus[score.argmax(0)][None, :]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", help="bundle folder")
    p.add_argument("--clips", default="../shared/data/val-16k")
    p.add_argument("--n-q", default="2,4,8", help="stage counts (default: %(default)s)")
    p.add_argument("--n-fft", type=int, default=512, help="STFT size (default: %(default)s)")
    p.add_argument("--hop", type=int, default=0,
                   help="STFT hop (default: a quarter of --n-fft; the head's own: 160 / 80)")
    p.add_argument("--detail", action="store_true",
                   help="also split the magnitude by band and into envelope / fine structure")
    p.add_argument("--losses", action="store_true",
                   help="also the weighted training losses of each hybrid")
    args = p.parse_args()
    torch.set_num_threads(1)
    model = Codec.from_pretrained(args.model).eval()
    n_qs = [int(v) for v in args.n_q.split(",")]
    files = sorted(Path(args.clips).rglob("*.flac"))
    if not files:
        raise SystemExit(f"error_split: no .flac under {args.clips}")
    sr, n_fft = model.sample_rate, args.n_fft
    hop = args.hop or n_fft // 4
    window = torch.hann_window(n_fft, dtype=torch.float64)
    scores: dict[tuple[int, str], list[tuple[float, float]]] = {}
    losses: dict[tuple[int, str], list[dict[str, float]]] = {}
    objective = Objective(sr) if args.losses else None
    for f in files:
        audio, _ = load_audio(f, sr)
        audio = audio[: len(audio) // model.hop_length * model.hop_length]
        x = torch.from_numpy(audio.astype(np.float64))
        sx = torch.stft(x, n_fft, hop, window=window, return_complex=True)
        for n_q in n_qs:
            with torch.inference_mode():
                y = model(torch.from_numpy(audio)[None, None], n_q).audio[0, 0].double()
            sy = torch.stft(y, n_fft, hop, window=window, return_complex=True)
            for kind, (mag, phase) in hybrids(sx, sy, sr, n_fft, args.detail, hop).items():
                est = resynth(mag, phase, window, hop, len(audio)).astype(np.float32)
                scores.setdefault((n_q, kind), []).append(
                    (pesq_wb(audio, est, sr), mel_distance(audio, est, sr)))
                if objective is not None:
                    losses.setdefault((n_q, kind), []).append(objective(est, audio))
    kinds = list(dict.fromkeys(k for _, k in scores))
    print(f"{model.identity()} on {len(files)} clips of {args.clips}, STFT {n_fft} / {hop}: "
          "PESQ-WB / mel distance")
    print("| resynthesised from | " + " | ".join(f"n_q {n}" for n in n_qs) + " |")
    print("|---|" + "---|" * len(n_qs))
    for kind in kinds:
        cells = [np.mean(scores[(n, kind)], axis=0) for n in n_qs]
        print(f"| {kind} | " + " | ".join(f"{c[0]:.2f} / {c[1]:.3f}" for c in cells) + " |")
    if objective is not None:
        terms = list(losses[(n_qs[0], kinds[0])][0])
        print("\nWeighted training losses against the input (mean over clips): "
              + ", ".join(terms))
        print("| resynthesised from | " + " | ".join(f"n_q {n}" for n in n_qs) + " |")
        print("|---|" + "---|" * len(n_qs))
        for kind in kinds:
            cells = [" / ".join(f"{np.mean([d[t] for d in losses[(n, kind)]]):.3f}"
                                for t in terms) for n in n_qs]
            print(f"| {kind} | " + " | ".join(cells) + " |")


class Objective:
    """The weighted reconstruction losses of training (``DEFAULT_LOSS_WEIGHTS``), on numpy
    audio: name -> weighted value, and their sum as ``total``."""

    def __init__(self, sample_rate: int) -> None:
        from dwancodec.training.config import DEFAULT_LOSS_WEIGHTS
        from dwancodec.training.losses import (
            LowBandHarmonicLoss,
            MultiResolutionSTFTLoss,
            MultiScaleMelLoss,
            PhaseLoss,
        )

        self.w = DEFAULT_LOSS_WEIGHTS
        self.mel, self.stft = MultiScaleMelLoss(sample_rate), MultiResolutionSTFTLoss()
        self.lowband = LowBandHarmonicLoss(sample_rate)
        self.phase = PhaseLoss()

    @torch.no_grad()
    def __call__(self, est: np.ndarray, ref: np.ndarray) -> dict[str, float]:
        y_hat, y = torch.from_numpy(est)[None, None], torch.from_numpy(ref)[None, None]
        out = {"mel": self.w["mel"] * float(self.mel(y_hat, y)),
               "stft": self.w["stft"] * float(self.stft(y_hat, y))}
        if self.w["lowband"]:
            out["lowband"] = self.w["lowband"] * float(self.lowband(y_hat, y))
        out |= {k: self.w[k] * float(v) for k, v in self.phase(y_hat, y).items()}
        out["total"] = sum(out.values())
        return out


if __name__ == "__main__":
    main()
