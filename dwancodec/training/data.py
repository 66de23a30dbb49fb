"""Training data: a recursive folder of audio, held in memory as int16, cut into segments.

Item ``i`` of :class:`SegmentDataset` is a pure function of ``(seed, i)``, so the data position
after ``step`` steps is simply ``step * batch_size``: resuming is exact without saving sampler
state, and every DDP rank can take its own stride of indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio import AUDIO_EXTENSIONS, load_audio, scan_audio  # noqa: F401 (re-exported)


class AudioCorpus:
    """Every file of a folder list, resampled to ``sample_rate``, mono int16 in memory.

    ``weights[i]`` is the chance that a segment is drawn from clip ``i``: its length, times
    ``repeat[k]`` for the folder ``k`` it came from (default 1 each: every second of audio
    equally likely). Example: a 150-minute folder and a 300-minute one with ``repeat=(1, 0.5)``
    are drawn half and half.
    """

    def __init__(self, folders: tuple[str, ...] | list[str], sample_rate: int,
                 min_seconds: float = 0.1, progress: bool = False,
                 repeat: tuple[float, ...] | list[float] = ()) -> None:
        from tqdm import tqdm

        if repeat and (len(repeat) != len(folders) or min(repeat) < 0 or max(repeat) <= 0):
            raise ValueError(f"repeat needs one factor >= 0 per folder ({len(folders)}), not "
                             f"all 0; got {list(repeat)}")
        factor = {}
        for k, folder in enumerate(folders):
            for path in scan_audio([folder]):
                # a file under two listed folders counts once, with the first folder's factor
                factor.setdefault(path, float(repeat[k]) if repeat else 1.0)
        self.files = sorted(factor)
        self.sample_rate = sample_rate
        self.clips: list[np.ndarray] = []
        self.names: list[str] = []
        scale: list[float] = []
        for path in tqdm(self.files, desc="loading audio", disable=not progress, unit="file"):
            audio, _ = load_audio(path, sample_rate)
            if audio.size >= min_seconds * sample_rate:
                self.clips.append((audio * 32767).astype(np.int16))
                self.names.append(str(path))
                scale.append(factor[path])
        if not self.clips:
            raise ValueError(f"no audio of at least {min_seconds} s in {list(folders)}")
        weights = np.array([c.size for c in self.clips], dtype=np.float64) * np.array(scale)
        if weights.sum() <= 0:
            raise ValueError(f"repeat {list(repeat)} leaves no audio to draw from")
        self.weights = weights / weights.sum()

    @property
    def seconds(self) -> float:
        return float(sum(c.size for c in self.clips)) / self.sample_rate


@dataclass(frozen=True)
class Augment:
    gain_db_range: tuple[float, float] = (0.0, 0.0)
    noise_snr_db: tuple[float, float] = (-1.0, -1.0)  # (-1, -1): no noise


class SegmentDataset(Dataset):
    """Random ``segment`` samples from the corpus; item ``i`` depends only on ``(seed, i)``.

    Segments quieter than ``silence_db`` (RMS, dBFS) are redrawn (up to 10 times).
    Returns ``[1, segment]`` float32.
    """

    def __init__(self, corpus: AudioCorpus, segment: int, seed: int = 0,
                 augment: Augment | None = None, silence_db: float = -50.0,
                 length: int = 10**9) -> None:
        self.corpus = corpus
        self.segment = segment
        self.seed = seed
        self.augment = augment or Augment()
        self.silence_rms = 10 ** (silence_db / 20)
        self.length = length

    def __len__(self) -> int:
        return self.length

    def _draw(self, rng: np.random.Generator) -> np.ndarray:
        clip = self.corpus.clips[rng.choice(len(self.corpus.clips), p=self.corpus.weights)]
        if clip.size <= self.segment:
            out = np.zeros(self.segment, dtype=np.float32)
            out[: clip.size] = clip / 32768.0
            return out
        start = rng.integers(0, clip.size - self.segment)
        return clip[start:start + self.segment].astype(np.float32) / 32768.0

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, index])
        for _ in range(10):
            x = self._draw(rng)
            if np.sqrt(np.mean(x**2)) >= self.silence_rms:
                break
        x = self._apply_augment(x, rng)
        return torch.from_numpy(x)[None]

    def _apply_augment(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        lo, hi = self.augment.gain_db_range
        if hi > lo:
            x = x * 10 ** (rng.uniform(lo, hi) / 20)
        lo, hi = self.augment.noise_snr_db
        if lo >= 0 and hi >= lo:
            rms = np.sqrt(np.mean(x**2)) + 1e-8
            snr = rng.uniform(lo, hi)
            x = x + rng.standard_normal(x.size).astype(np.float32) * rms * 10 ** (-snr / 20)
        peak = np.abs(x).max()
        if peak > 0.99:  # keep augmented audio in range rather than clipping it
            x = x * (0.99 / peak)
        return x.astype(np.float32)


def validation_segments(corpus: AudioCorpus, count: int, segment: int) -> torch.Tensor:
    """A fixed, deterministic validation batch ``[count, 1, segment]``: evenly spaced files,
    each cut from its loudest window start among a few candidates (no RNG)."""
    out = []
    n = len(corpus.clips)
    for k in range(count):
        clip = corpus.clips[(k * n) // count if count <= n else k % n].astype(np.float32) / 32768
        if clip.size <= segment:
            seg = np.zeros(segment, dtype=np.float32)
            seg[: clip.size] = clip
        else:
            starts = np.linspace(0, clip.size - segment, 5).astype(int)
            seg = max((clip[s:s + segment] for s in starts), key=lambda s: float((s**2).sum()))
        out.append(torch.from_numpy(np.ascontiguousarray(seg))[None])
    return torch.stack(out)
