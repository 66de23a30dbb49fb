"""Metric logging: a CSV always, plus TensorBoard (default) or wandb."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np


class MetricLogger:
    """``scalars(prefix, values, step)`` to CSV (long format: step,name,value) and a backend;
    ``audio``/``figure`` go to TensorBoard or wandb only."""

    def __init__(self, directory: Path, backend: str, config: dict[str, Any]) -> None:
        self.directory = directory
        self._csv_file = open(directory / "metrics.csv", "a", newline="")  # noqa: SIM115
        self._csv = csv.writer(self._csv_file)
        if self._csv_file.tell() == 0:
            self._csv.writerow(["step", "name", "value"])
        self.tb = None
        self.wandb = None
        if backend == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(directory / "tensorboard"))
            except ImportError:
                print("tensorboard is not installed; logging to metrics.csv only")
        elif backend == "wandb":
            try:
                import wandb

                self.wandb = wandb.init(project="dwancodec", config=config,
                                        name=config.get("experiment_name"), resume="allow")
            except ImportError:
                print("wandb is not installed; logging to metrics.csv only")

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        for name, value in values.items():
            if not math.isfinite(value):
                value = float("nan")
            self._csv.writerow([step, f"{prefix}/{name}", f"{value:.6g}"])
            if self.tb is not None:
                self.tb.add_scalar(f"{prefix}/{name}", value, step)
        self._csv_file.flush()
        if self.wandb is not None:
            self.wandb.log({f"{prefix}/{k}": v for k, v in values.items()}, step=step)

    def audio(self, tag: str, audio: np.ndarray, sample_rate: int, step: int) -> None:
        if self.tb is not None:
            self.tb.add_audio(tag, audio[None], step, sample_rate=sample_rate)
        if self.wandb is not None:
            import wandb

            self.wandb.log({tag: wandb.Audio(audio, sample_rate=sample_rate)}, step=step)

    def spectrograms(self, tag: str, signals: dict[str, np.ndarray], sample_rate: int,
                     step: int) -> None:
        """One image with a log spectrogram per named signal (input vs decoded)."""
        if self.tb is None and self.wandb is None:
            return
        image = spectrogram_image(signals, sample_rate)
        if self.tb is not None:
            self.tb.add_image(tag, image, step, dataformats="HWC")
        if self.wandb is not None:
            import wandb

            self.wandb.log({tag: wandb.Image(image)}, step=step)

    def close(self) -> None:
        self._csv_file.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def spectrogram_image(signals: dict[str, np.ndarray], sample_rate: int) -> np.ndarray:
    """RGB ``[H, W, 3]`` uint8 image of stacked log spectrograms (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(signals), 1, figsize=(8, 2.2 * len(signals)), squeeze=False)
    for ax, (name, x) in zip(axes[:, 0], signals.items(), strict=True):
        ax.specgram(x + 1e-9, NFFT=512, Fs=sample_rate, noverlap=384, cmap="magma",
                    vmin=-140, vmax=-20)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("Hz")
    axes[-1, 0].set_xlabel("s")
    fig.tight_layout()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return image
