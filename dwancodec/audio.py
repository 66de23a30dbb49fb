"""Audio file I/O (soundfile) and resampling (soxr). No torch here: the runtime uses it too.

Whole files: :func:`load_audio` / :func:`save_audio`. Long files with bounded memory:
:func:`probe_audio` (format, rate, length without reading samples), :func:`stream_audio`
(float32 mono blocks at a target rate, resampled with ``soxr.ResampleStream``) and
:class:`AudioWriter` (blockwise writer, optional resampling, clipping to ``[-1, 1]``).
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np

Notify = Callable[[str], None]
UNKNOWN_LENGTH = 0x7FFF0000  # data sizes from here up are "length unknown" placeholders
EXACT_LENGTH = ("WAV", "WAVEX", "FLAC", "AIFF", "W64", "RF64", "CAF")  # header frames are exact
AudioSource = str | Path | BinaryIO  # a path, or a seekable binary file object (e.g. stdin spooled)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aiff", ".aif")


def scan_audio(folders: tuple[str | Path, ...] | list[str | Path]) -> list[Path]:
    """All audio files under ``folders`` (recursive; a file given is kept), sorted for
    determinism. ``FileNotFoundError`` for a missing folder, ``ValueError`` if none."""
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


class AudioError(ValueError):
    """A user-facing problem with an audio file or array."""


def to_float_mono(audio: np.ndarray, channels_axis: int = -1) -> np.ndarray:
    """Integer or float PCM, mono ``[T]`` or multichannel ``[T, C]`` -> float32 ``[T]``.

    Integer PCM is scaled by its full range (int16 -> /32768); multichannel is averaged with
    a warning; values are clipped to ``[-1, 1]``.
    """
    a = np.asarray(audio)
    if a.dtype.kind in "iu":
        info = np.iinfo(a.dtype)
        a = (a.astype(np.float64) - (info.max + info.min + 1) / 2) / (-(info.min) if info.min
                                                                      else (info.max + 1) / 2)
    elif a.dtype.kind != "f":
        raise AudioError(f"audio must be integer or float PCM, got dtype {a.dtype}")
    if a.ndim == 2:
        if a.shape[channels_axis] > 1:
            warnings.warn(f"downmixing {a.shape[channels_axis]} channels to mono", stacklevel=2)
        a = a.mean(axis=channels_axis)
    if a.ndim != 1:
        raise AudioError(f"audio must be [T] or [T, channels], got shape {a.shape}")
    if not np.isfinite(a).all():
        raise AudioError("audio contains NaN or Inf values")
    return np.clip(a, -1.0, 1.0).astype(np.float32)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """``[T]`` float32 at ``from_rate`` -> ``[T * to_rate / from_rate]`` (soxr, high quality)."""
    if from_rate <= 0 or to_rate <= 0:
        raise AudioError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
    if from_rate == to_rate or audio.size == 0:
        return audio.astype(np.float32)
    import soxr

    return soxr.resample(audio, from_rate, to_rate, quality="HQ").astype(np.float32)


def load_audio(path: str | Path, target_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as float32 mono ``[T]``; resample to ``target_rate`` if given."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise AudioError(f"no such file: {p}")
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"cannot read {p} as audio: {e}") from None
    audio = to_float_mono(data)
    if target_rate is not None:
        audio = resample(audio, rate, target_rate)
        rate = target_rate
    return audio, rate


def save_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write float ``[T]`` audio; format from the extension (16-bit PCM for wav)."""
    import soundfile as sf

    p = Path(path)
    subtype = "PCM_16" if p.suffix.lower() in (".wav", ".flac") else None
    sf.write(str(p), np.clip(np.asarray(audio, dtype=np.float32), -1, 1), sample_rate,
             subtype=subtype)


# Streaming I/O ------------------------------------------------------------------------------
def _warn(msg: str) -> None:
    warnings.warn(msg, stacklevel=3)


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`probe_audio` learns from a file's header (no samples are read).

    ``frames``: samples per channel the file holds; ``declared_frames``: what its header
    announces when that is more (a truncated file), else ``None``; ``name``: how messages name
    the file (its path, or e.g. ``stdin``).
    """

    path: Path
    sample_rate: int
    channels: int
    frames: int
    format: str
    subtype: str
    declared_frames: int | None = None
    name: str = ""

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def label(self) -> str:
        return self.name or str(self.path)


def _declared_frames(extra_info: str, frames: int) -> int | None:
    """Frames a WAV/AIFF-style header announces, from libsndfile's log, when the data chunk
    is shorter than announced (``data : 32000 (should be 56)``)."""
    m = re.search(r"^\s*(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", extra_info,
                  re.MULTILINE)
    if not m:
        return None
    announced, present = int(m.group(1)), int(m.group(2))
    if announced <= present or present <= 0 or frames <= 0 or announced >= UNKNOWN_LENGTH:
        return None  # a streamed WAV (ffmpeg, sox to a pipe) announces a placeholder size
    return max(frames + 1, round(frames * announced / present))


def _source_name(source: AudioSource, name: str | None) -> str:
    if name:
        return name
    return str(source) if isinstance(source, (str, Path)) else "stdin"


def _check_readable(p: Path) -> None:
    if not p.exists():
        raise AudioError(f"no such file: {p}")
    if p.is_dir():
        raise AudioError(f"{p} is a directory, not an audio file")


def probe_audio(path: AudioSource, name: str | None = None) -> AudioInfo:
    """Format, rate, channels and length of an audio file (or seekable binary file object);
    :class:`AudioError` if unreadable. ``name``: how messages call it (default: the path)."""
    import soundfile as sf

    label = _source_name(path, name)
    if isinstance(path, (str, Path)):
        p = Path(path)
        _check_readable(p)
        target: str | BinaryIO = str(p)
    else:
        p, target = Path(label), path
        path.seek(0)
    try:
        info = sf.info(target)
    except (sf.LibsndfileError, RuntimeError, TypeError) as e:
        raise AudioError(f"cannot read {label} as audio: {e}") from None
    finally:
        if not isinstance(target, str):
            target.seek(0)
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(f"{label} has an invalid header ({info.samplerate} Hz, "
                         f"{info.channels} channels)")
    frames = max(int(info.frames), 0)
    return AudioInfo(p, int(info.samplerate), int(info.channels), frames, str(info.format),
                     str(info.subtype), _declared_frames(str(info.extra_info), frames),
                     label if name or not isinstance(path, (str, Path)) else "")


class Resampler:
    """Blockwise soxr resampling of a mono float32 stream (identical to one-shot
    :func:`resample`): ``process(block)`` then ``flush()`` for the tail."""

    def __init__(self, from_rate: int, to_rate: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise AudioError(f"sample rates must be positive, got {from_rate} -> {to_rate}")
        self.identity = from_rate == to_rate
        if not self.identity:
            import soxr

            self._rs = soxr.ResampleStream(from_rate, to_rate, 1, dtype="float32",
                                           quality="HQ")

    def process(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        x = np.ascontiguousarray(block, dtype=np.float32)
        if self.identity:
            return x
        return np.asarray(self._rs.resample_chunk(x, last=last), dtype=np.float32)

    def flush(self) -> np.ndarray:
        return self.process(np.zeros(0, np.float32), last=True)


def stream_audio(path: AudioSource, target_rate: int | None = None, block_seconds: float = 5.0,
                 notify: Notify | None = None, name: str | None = None
                 ) -> Iterator[tuple[np.ndarray, int]]:
    """Read a file in blocks: yields ``(mono float32 [n] at target_rate, source frames read)``.

    Memory is bounded by the block size whatever the file length. Multichannel audio is
    averaged to mono (``notify`` is told once), samples beyond ``[-1, 1]`` are clipped
    (``notify`` is told how many at the end), NaN/Inf raise :class:`AudioError`; a file whose
    header announces more samples than it holds is read as far as it goes and ``notify`` is
    told it looks truncated. ``notify`` defaults to ``warnings.warn``; ``path`` may be a
    seekable binary file object (``name`` then names it in messages, default ``stdin``).
    """
    import soundfile as sf

    notify = notify or _warn
    info = probe_audio(path, name)
    short = Path(info.label).name if isinstance(path, (str, Path)) and not name else info.label
    rate = info.sample_rate
    resampler = Resampler(rate, target_rate or rate)
    block = max(1, int(block_seconds * rate))
    if info.channels > 1:
        notify(f"{short} has {info.channels} channels; downmixing to mono (average)")
    if info.declared_frames is not None:
        notify(f"{short} looks truncated: its header announces about {info.declared_frames} "
               f"samples, the file holds {info.frames}; encoding those")
    clipped = read = 0
    target = str(info.path) if isinstance(path, (str, Path)) else path
    try:
        with sf.SoundFile(target) as f:
            while True:
                data = f.read(block, dtype="float32", always_2d=True)
                if data.shape[0] == 0:
                    break
                read += int(data.shape[0])
                mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
                if not np.isfinite(mono).all():
                    raise AudioError(f"{info.label} contains NaN or Inf samples")
                over = np.abs(mono) > 1.0
                if over.any():
                    clipped += int(over.sum())
                    mono = np.clip(mono, -1.0, 1.0)
                out = resampler.process(mono)
                yield out, int(data.shape[0])
    except sf.LibsndfileError as e:
        raise AudioError(f"cannot read {info.label} as audio (after {read} of {info.frames} "
                         f"samples; truncated or corrupt?): {e}") from None
    if info.declared_frames is None and read < info.frames and info.format in EXACT_LENGTH:
        notify(f"{short} looks truncated: its header announces {info.frames} samples, only "
               f"{read} could be read")
    tail = resampler.flush()
    if tail.size:
        yield tail, 0
    if clipped:
        notify(f"{short}: clipped {clipped} samples outside [-1, 1]")


def check_output_path(path: str | Path) -> str:
    """Raise :class:`AudioError` unless ``path`` can be written as audio; returns the format."""
    import soundfile as sf

    p = Path(path)
    fmt = p.suffix[1:].upper()
    if not fmt or fmt not in sf.available_formats():
        raise AudioError(f"cannot write {p}: unknown audio file extension {p.suffix!r} "
                         "(use .wav, .flac, .ogg or .mp3)")
    if p.is_dir():
        raise AudioError(f"cannot write {p}: it is a directory")
    if not p.parent.exists():
        raise AudioError(f"cannot write {p}: folder {p.parent} does not exist")
    return fmt


class AudioWriter:
    """Write mono float32 blocks to a file (format from the extension; 16-bit PCM for wav and
    flac), optionally resampling from ``sample_rate`` to ``out_rate``. Samples are clipped to
    ``[-1, 1]``. Use as a context manager; :attr:`frames` counts samples written."""

    def __init__(self, path: str | Path, sample_rate: int, out_rate: int | None = None) -> None:
        import soundfile as sf

        fmt = check_output_path(path)
        self.out_rate = out_rate or sample_rate
        self._resampler = Resampler(sample_rate, self.out_rate)
        subtype = "PCM_16" if fmt in ("WAV", "FLAC") else None
        try:
            self._file = sf.SoundFile(str(path), "w", samplerate=self.out_rate, channels=1,
                                      format=fmt, subtype=subtype)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as e:
            raise AudioError(f"cannot write {path}: {e}") from None
        self.frames = 0

    def write(self, block: np.ndarray) -> None:
        y = self._resampler.process(block)
        self._write(y)

    def _write(self, y: np.ndarray) -> None:
        if y.size:
            self._file.write(np.clip(y, -1.0, 1.0))
            self.frames += int(y.size)

    def close(self) -> None:
        if not self._file.closed:
            self._write(self._resampler.flush())
            self._file.close()

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class WavStreamWriter:
    """Write mono 16-bit PCM WAV to a non-seekable binary stream (a pipe, stdout, a device).

    The header is written first, so the number of samples must be known: ``frames`` at
    ``out_rate`` (``sample_rate`` resampled, as :class:`AudioWriter` does). The samples written
    are padded with zeros or cut to exactly that many, so the header is always true. The bytes
    equal those of an :class:`AudioWriter` ``.wav`` file of the same samples.
    """

    def __init__(self, stream: BinaryIO, sample_rate: int, out_rate: int | None,
                 frames: int) -> None:
        self.out_rate = out_rate or sample_rate
        if not 0 <= frames * 2 <= 0xFFFFFFFF - 36:
            raise AudioError(f"{frames} samples do not fit a WAV stream (at most 2 GiB)")
        self._stream = stream
        self._resampler = Resampler(sample_rate, self.out_rate)
        self.total = frames
        self.frames = 0
        self._closed = False
        size = 2 * frames
        self._stream.write(b"RIFF" + (36 + size).to_bytes(4, "little") + b"WAVEfmt "
                           + (16).to_bytes(4, "little") + (1).to_bytes(2, "little")
                           + (1).to_bytes(2, "little") + self.out_rate.to_bytes(4, "little")
                           + (2 * self.out_rate).to_bytes(4, "little")
                           + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
                           + b"data" + size.to_bytes(4, "little"))

    def write(self, block: np.ndarray) -> None:
        self._write(self._resampler.process(block))

    def _write(self, y: np.ndarray) -> None:
        import soundfile as sf

        y = y[: self.total - self.frames]
        if y.size:  # libsndfile's own float -> PCM_16 conversion, as in a .wav file
            raw = io.BytesIO()
            sf.write(raw, np.clip(y, -1.0, 1.0), self.out_rate, format="RAW",
                     subtype="PCM_16", endian="LITTLE")
            self._stream.write(raw.getvalue())
            self.frames += int(y.size)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._write(self._resampler.flush())
        if self.frames < self.total:
            self._stream.write(bytes(2 * (self.total - self.frames)))
            self.frames = self.total
        self._stream.flush()

    def __enter__(self) -> WavStreamWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()


def resampled_length(num_samples: int, from_rate: int, to_rate: int) -> int:
    """Length of ``num_samples`` resampled by soxr (``round(n * to / from)``)."""
    return num_samples if from_rate == to_rate else math.ceil(num_samples * to_rate / from_rate
                                                              - 0.5)
