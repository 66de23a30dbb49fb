"""Training data: a recursive folder of audio, held in memory as int16, cut into segments.

Item ``i`` of :class:`SegmentDataset` is a pure function of ``(seed, i)``, so the data position
after ``step`` steps is simply ``step * batch_size``: resuming is exact without saving sampler
state, and every DDP rank can take its own stride of indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..audio import load_audio

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")


def scan_audio(folders: tuple[str, ...] | list[str]) -> list[Path]:
    """All audio files under ``folders`` (recursive), sorted for determinism."""
    files: list[Path] = []
    for folder in folders:
        root = Path(folder)
        if not root.exists():
            raise FileNotFoundError(f"data folder not found: {root}")
        if root.is_file():
            files.append(root)
            continue
        files += [p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS]
    if not files:
        raise ValueError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {list(folders)}")
    return sorted(files)


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
    # Speed perturbation (Ko et al. 2015): each segment is played f times as fast, f drawn
    # uniformly from the range, which moves pitch and formants together by f -- a new voice
    # (a shorter or longer vocal tract) from every recorded one. (1, 1): off, and the draws
    # are then exactly those of a dataset without it, so older runs resume unchanged.
    # Slowing down (f < 1) empties the band above about 0.95 f x Nyquist (the resampler's
    # passband: 6.9 kHz at f 0.9 and 16 kHz), and a codec trained on it learns to leave that
    # band quiet (round 18: -8 dB above 7 kHz); speeding up keeps 0-7.4 kHz whole, which is
    # all the band most 16 kHz corpora hold. So the useful range is (1, hi), e.g. (1, 1.1).
    speed_range: tuple[float, float] = (1.0, 1.0)


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
        lo, hi = self.augment.speed_range
        if (lo, hi) != (1.0, 1.0):
            return self._draw_speed(rng, rng.uniform(lo, hi))
        return self._cut(rng, self.segment)

    def _cut(self, rng: np.random.Generator, length: int) -> np.ndarray:
        """``length`` samples from a clip drawn by weight; zero-padded if the clip is shorter."""
        clip = self.corpus.clips[rng.choice(len(self.corpus.clips), p=self.corpus.weights)]
        if clip.size <= length:
            out = np.zeros(length, dtype=np.float32)
            out[: clip.size] = clip / 32768.0
            return out
        start = rng.integers(0, clip.size - length)
        return clip[start:start + length].astype(np.float32) / 32768.0

    # Samples cut beyond each end of a speed-perturbed segment, so that the resampler's edge
    # transient (its filter reaching past the cut) falls outside what is returned.
    SPEED_MARGIN = 64

    def _draw_speed(self, rng: np.random.Generator, factor: float) -> np.ndarray:
        """``segment`` samples of audio played ``factor`` times as fast: ``(segment + 2 m) *
        factor`` source samples read as if sampled at ``factor * sr`` and resampled to ``sr``
        (soxr), e.g. factor 1.1, segment 16000, m 64: 17741 samples -> 16128 -> 16000."""
        import soxr

        m = self.SPEED_MARGIN
        src = self._cut(rng, int(np.ceil((self.segment + 2 * m) * factor)))
        sr = float(self.corpus.sample_rate)
        out = soxr.resample(src, sr * factor, sr, quality="HQ")
        out = out[m:m + self.segment]
        if out.size < self.segment:  # rounding of the resampled length
            out = np.pad(out, (0, self.segment - out.size))
        return np.ascontiguousarray(out, dtype=np.float32)

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
