"""Probe: are the decode's low-band harmonics at the wrong pitch, or at the right pitch and
buried in noise?

The error split (``recipes/error_split.py --detail``) finds most of the lost PESQ-WB in the
harmonic fine structure below 2 kHz. This says which kind of error it is, on the val-16k speech
clips, over the frames the input's pitch track calls voiced (NCCF confidence >= 0.5, 10 ms
hop; ``dwancodec.nn.pitch``):

- **pitch**: the decode's own track against the input's: the share of voiced frames where the
  decode is voiced too, the median |f0 error| in cents where both are, and the share of gross
  errors (> 50 cents; octave errors included);
- **periodicity**: the mean NCCF confidence of input and decode on those frames (1 = exactly
  periodic);
- **harmonic-to-valley ratio**: at 1024 points (64 ms; Hann, hop 160), with the input's f0,
  the power at the harmonics ``k f0`` against the power half-way between them
  (``(k + 1/2) f0``), below 1 kHz and from 1 to 2 kHz, in dB: the median over frames, and in
  brackets the share of frames where the decode's ratio is 6 dB or more below the input's.
  Each peak is the largest bin within f0/4 of ``k f0``, each valley the smallest within f0/8
  of the mid-point (robust to a track a few percent off). A decode at the right pitch whose
  ratio is far below the input's has its harmonics filled in by noise: the smear in the model
  card's spectrograms.

Usage (repo root, venv active)::

    python recipes/harmonic_probe.py [MODEL ...] [--n-q 2,8]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dwancodec.audio import load_audio
from dwancodec.model import Codec
from dwancodec.nn.pitch import pitch_track

SR, HOP, N_FFT, STFT = 16000, 160, 320, 1024


def harmonic_to_valley(audio: torch.Tensor, f0: np.ndarray, frames: np.ndarray,
                       bands: tuple[tuple[float, float], ...]) -> np.ndarray:
    """``[T]`` audio, f0 in Hz per 10 ms frame, the frames to score -> ``[len(frames),
    len(bands)]`` harmonic-to-valley ratios in dB (power at ``k f0`` over power at
    ``(k + 1/2) f0``, summed over the band's harmonics)."""
    window = torch.hann_window(STFT, dtype=torch.float64)
    spec = torch.stft(audio.double(), STFT, HOP, window=window, return_complex=True)
    power = spec.abs().pow(2).numpy()  # [F, frames]; frame i centred on sample i * HOP
    out = np.full((len(frames), len(bands)), np.nan)
    for j, i in enumerate(frames):
        # the pitch frame i spans [i*HOP, i*HOP + N_FFT): its centre is STFT frame i + 1
        col = power[:, min(i + 1, power.shape[1] - 1)]
        for b, (lo, hi) in enumerate(bands):
            k = np.arange(max(1, int(np.ceil(lo / f0[i]))), int(hi / f0[i]) + 1)
            k = k[(k * f0[i] >= lo) & ((k + 0.5) * f0[i] < hi)]
            if len(k) == 0:
                continue
            # the largest bin within f0/4 of each harmonic and the smallest within f0/8 of
            # each mid-point: robust to a track that is off by a few percent, which at the
            # 15th harmonic is already 2 bins
            bins = f0[i] * STFT / SR
            peak = sum(col[int(c - bins / 4): int(c + bins / 4) + 1].max() for c in k * bins)
            valley = sum(col[int(c - bins / 8): int(c + bins / 8) + 1].min()
                         for c in (k + 0.5) * bins)
            out[j, b] = 10 * np.log10((peak + 1e-12) / (valley + 1e-12))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", default=["dwancodec/assets/default"])
    ap.add_argument("--n-q", default="2,8")
    ap.add_argument("--clips", default="../shared/data/val-16k")
    ap.add_argument("--detail", action="store_true",
                    help="also the < 1 kHz smear by source folder and by frame level")
    args = ap.parse_args()
    torch.set_num_threads(1)
    clips = sorted(p for p in Path(args.clips).rglob("*.flac") if "speech" in str(p))
    bands = ((50.0, 1000.0), (1000.0, 2000.0))
    print("| model | n_q | voiced frames | decode voiced | median |f0 err| (cents) | gross "
          "(> 50 cents) | periodicity in / out | HVR < 1 kHz in / out (dB) | HVR 1-2 kHz in / "
          "out (dB) |")
    print("|---|---:|---:|---:|---:|---:|---|---|---|")
    for name in args.models:
        model = Codec.from_pretrained(name).eval()
        for n_q in (int(n) for n in args.n_q.split(",")):
            acc: dict[str, list[np.ndarray]] = {
                k: [] for k in ("both", "cents", "pin", "pout", "hin", "hout", "src", "level")}
            for clip in clips:
                audio, _ = load_audio(clip, SR)
                audio = audio[: len(audio) // model.hop_length * model.hop_length]
                x = torch.from_numpy(audio)
                with torch.inference_mode():
                    y = model(x[None, None], n_q).audio[0, 0]
                lf_x, cx = (v[0].numpy() for v in pitch_track(x[None], SR, HOP, N_FFT))
                lf_y, cy = (v[0].numpy() for v in pitch_track(y[None], SR, HOP, N_FFT))
                voiced = np.flatnonzero(cx >= 0.5)
                if len(voiced) == 0:
                    continue
                both = cy[voiced] >= 0.5
                acc["both"].append(both)
                acc["cents"].append(1200 * np.abs(lf_y - lf_x)[voiced][both])
                acc["pin"].append(cx[voiced])
                acc["pout"].append(cy[voiced])
                f0 = 2.0 ** lf_x
                acc["hin"].append(harmonic_to_valley(x, f0, voiced, bands))
                acc["hout"].append(harmonic_to_valley(y, f0, voiced, bands))
                acc["src"].append(np.full(len(voiced), clip.parent.name))
                # frame level against the clip's loud voiced frames (their 90th percentile)
                frames = x[: len(cx) * HOP].reshape(-1, HOP).double()
                db = 10 * np.log10(frames.pow(2).mean(1).numpy() + 1e-10)[voiced]
                acc["level"].append(db - np.percentile(db, 90))
            cat = {k: np.concatenate(v) for k, v in acc.items()}
            hin, hout = np.nanmedian(cat["hin"], 0), np.nanmedian(cat["hout"], 0)
            gap = cat["hin"] - cat["hout"]
            short = [(gap[:, b][~np.isnan(gap[:, b])] >= 6).mean() for b in range(len(bands))]
            print(f"| {name} | {n_q} | {len(cat['both'])} | {cat['both'].mean():.1%} | "
                  f"{np.median(cat['cents']):.0f} | {(cat['cents'] > 50).mean():.1%} | "
                  f"{cat['pin'].mean():.3f} / {cat['pout'].mean():.3f} | "
                  f"{hin[0]:.1f} / {hout[0]:.1f} ({short[0]:.0%}) | "
                  f"{hin[1]:.1f} / {hout[1]:.1f} ({short[1]:.0%}) |", flush=True)
            if args.detail:
                detail(cat, gap[:, 0])


def detail(cat: dict[str, np.ndarray], gap: np.ndarray) -> None:
    """Where the < 1 kHz smear is: by source folder and by frame level, the share of frames
    whose harmonic-to-valley ratio is 6 dB or more below the input's, and the median gap."""
    ok = ~np.isnan(gap)
    groups = [(f"source {s}", cat["src"] == s) for s in sorted(set(cat["src"]))]
    groups += [(f"level {lo} to {hi} dB", (cat["level"] >= lo) & (cat["level"] < hi))
               for lo, hi in ((-99, -20), (-20, -10), (-10, 99))]
    for label, m in groups:
        m = m & ok
        print(f"|   {label} | | {m.sum()} | | | | | {np.mean(gap[m] >= 6):.0%} smeared, "
              f"median gap {np.median(gap[m]):.1f} dB | |")


if __name__ == "__main__":
    main()
