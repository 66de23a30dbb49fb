"""Figures for docs/model-card.md: spectrograms at each bitrate and the training curve.

Usage::

    python benchmarks/model_card.py \
        --clip ../shared/data/val-16k/speech-wb/ast-fr/ast-fr_0046.flac \
        --metrics .checkpoints/default-v1/metrics.csv --out docs/figures

Writes ``OUT/spectrograms.png`` (the clip, then its decode at n_q = 1, 2, 4, all stages, with the
bitrate of each; offline decode, which equals the streaming one) and, given the training run's
``metrics.csv``, ``OUT/training-curve.png`` (validation PESQ-WB, STOI and mel distance against
training step, one line per n_q).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

N_FFT, HOP = 512, 128


def log_spectrogram(x: np.ndarray) -> np.ndarray:
    """``[T]`` audio -> ``[N_FFT // 2 + 1, frames]`` magnitude in dB (Hann window)."""
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP] * np.hanning(N_FFT)
    mag = np.abs(np.fft.rfft(frames, axis=-1)).T
    return 20 * np.log10(np.maximum(mag, 1e-5))


def decode_at_each_bitrate(model: str | None, audio: np.ndarray,
                           stages: Sequence[int]) -> list[tuple[str, np.ndarray]]:
    """``[(label, decoded audio)]`` for each ``n_q`` in ``stages`` (offline encode/decode)."""
    import torch

    from dwancodec.api import default_model_dir
    from dwancodec.model import Codec

    codec = Codec.from_pretrained(model or default_model_dir())
    x = torch.from_numpy(audio).float()[None, None]
    out = []
    with torch.inference_mode():
        codes = codec.encode(x)
        for n_q in stages:
            n_q = min(n_q, codec.num_codebooks)
            y = codec.decode(codes[:, :n_q])[0, 0, : len(audio)].numpy()
            out.append((f"n_q={n_q} ({codec.bitrate(n_q) / 1000:.2f} kbps)", y))
    return out


def plot_spectrograms(audio: np.ndarray, decoded: list[tuple[str, np.ndarray]], rate: int,
                      title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("input", audio), *decoded]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 1.9 * len(panels)), sharex=True)
    for ax, (label, x) in zip(axes, panels, strict=True):
        spec = log_spectrogram(x)
        ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=spec.max(),
                  extent=(0, len(x) / rate, 0, rate / 2000))
        ax.set_ylabel("kHz")
        ax.set_title(label, fontsize=9, loc="left")
    axes[-1].set_xlabel("seconds")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def read_validation(metrics_csv: Path) -> dict[str, dict[int, dict[int, float]]]:
    """``{metric: {n_q: {step: value}}}`` from the trainer's ``metrics.csv``."""
    out: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            name = row["name"]
            if name.startswith("val/") and ".nq" in name:
                metric, nq = name[4:].rsplit(".nq", 1)
                out[metric][int(nq)][int(row["step"])] = float(row["value"])
    return out


def plot_training_curve(metrics_csv: Path, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    val = read_validation(metrics_csv)
    shown = [m for m in ("pesq", "stoi", "mel") if m in val]
    if not shown:
        raise ValueError(f"{metrics_csv} has no val/<metric>.nq<N> rows")
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.2))
    titles = {"pesq": "PESQ-WB (higher is better)", "stoi": "STOI (higher is better)",
              "mel": "log-mel distance (lower is better)"}
    for ax, metric in zip(np.atleast_1d(axes), shown, strict=True):
        for nq in sorted(val[metric]):
            steps = sorted(val[metric][nq])
            ax.plot(steps, [val[metric][nq][s] for s in steps], label=f"n_q={nq}", lw=1.2)
        ax.set_title(titles[metric], fontsize=9)
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    np.atleast_1d(axes)[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", required=True, help="a speech clip (16 kHz mono flac/wav)")
    p.add_argument("--model", default=None, help="model bundle (default: the shipped model)")
    p.add_argument("--metrics", default=None, help="a training run's metrics.csv")
    p.add_argument("--seconds", type=float, default=4.0, help="length of the clip shown")
    p.add_argument("--out", default="docs/figures")
    args = p.parse_args(argv)

    from dwancodec.audio import load_audio

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wav, rate = load_audio(args.clip, 16000)
    audio = wav[: int(args.seconds * rate)]
    decoded = decode_at_each_bitrate(args.model, audio, (1, 2, 4, 8))
    plot_spectrograms(audio, decoded, rate, Path(args.clip).name, out / "spectrograms.png")
    print(f"wrote {out / 'spectrograms.png'}")
    if args.metrics:
        plot_training_curve(Path(args.metrics), out / "training-curve.png")
        print(f"wrote {out / 'training-curve.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
