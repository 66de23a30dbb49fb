"""Audio I/O: formats, integer/float PCM, downmix, clipping, blockwise resampling, bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dwancodec.audio import (
    AudioError,
    AudioWriter,
    Resampler,
    check_output_path,
    load_audio,
    probe_audio,
    resample,
    stream_audio,
)

from .conftest import DATA


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    audio, _ = load_audio(DATA / "speech_en.flac", 16000)
    return audio[:32000]


def _read_stream(path: Path, rate: int | None = None, block_seconds: float = 0.37
                 ) -> tuple[np.ndarray, list[str], int]:
    notes: list[str] = []
    blocks, consumed = [], 0
    for b, n in stream_audio(path, rate, block_seconds, notes.append):
        blocks.append(b)
        consumed += n
    out = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return out, notes, consumed


@pytest.mark.parametrize("ext,subtype,tol", [
    ("wav", "PCM_16", 1 / 32768), ("wav", "PCM_24", 1e-6), ("wav", "PCM_32", 1e-6),
    ("wav", "FLOAT", 0), ("wav", "PCM_U8", 1 / 128), ("flac", "PCM_16", 1 / 32768),
    ("ogg", "VORBIS", None), ("mp3", "MPEG_LAYER_III", None),
])
def test_formats_and_pcm_types(ext: str, subtype: str, tol: float | None, speech: np.ndarray,
                               tmp_path: Path) -> None:
    if ext.upper() not in sf.available_formats():
        pytest.skip(f"libsndfile here cannot handle {ext}")
    path = tmp_path / f"x.{ext}"
    sf.write(path, speech, 16000, subtype=subtype)
    info = probe_audio(path)
    assert (info.sample_rate, info.channels) == (16000, 1)
    out, notes, consumed = _read_stream(path)
    assert notes == [] and out.dtype == np.float32
    if tol is not None:  # lossless formats: exact up to the PCM step
        assert out.size == speech.size == consumed
        np.testing.assert_allclose(out, speech, atol=tol + 1e-7)
    else:  # lossy: same length give or take codec padding, and still the same signal
        assert abs(out.size - speech.size) < 2000
        n = min(out.size, speech.size)
        best = max(np.corrcoef(out[lag: n], speech[: n - lag])[0, 1] for lag in range(0, 1200))
        assert best > 0.9


def test_integer_arrays_are_scaled_by_full_range() -> None:
    from dwancodec.audio import to_float_mono

    x = np.array([-32768, 0, 16384, 32767], dtype=np.int16)
    np.testing.assert_allclose(to_float_mono(x), [-1.0, 0.0, 0.5, 32767 / 32768])


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_is_downmixed_with_a_notice(channels: int, speech: np.ndarray,
                                                 tmp_path: Path) -> None:
    gains = np.linspace(0.2, 1.0, channels)
    path = tmp_path / "multi.wav"
    sf.write(path, speech[:, None] * gains[None], 16000, subtype="FLOAT")
    out, notes, _ = _read_stream(path)
    assert len(notes) == 1 and f"{channels} channels" in notes[0] and "mono" in notes[0]
    np.testing.assert_allclose(out, speech * gains.mean(), atol=1e-6)
    with pytest.warns(UserWarning, match="downmixing"):  # default notice: a warning
        list(stream_audio(path))


def test_clipping_is_counted_and_clipped(tmp_path: Path) -> None:
    x = np.array([0.5, 1.5, -2.0, 0.25, 1.0] * 100, dtype=np.float32)
    path = tmp_path / "hot.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    out, notes, _ = _read_stream(path)
    assert out.max() == 1.0 and out.min() == -1.0
    assert len(notes) == 1 and "clipped 200 samples" in notes[0]


def test_nan_in_float_file_is_an_error(tmp_path: Path) -> None:
    x = np.zeros(1000, np.float32)
    x[500] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN or Inf"):
        _read_stream(path)


@pytest.mark.parametrize("src,dst", [(44100, 16000), (8000, 16000), (48000, 24000),
                                     (16000, 16000)])
def test_blockwise_resampling_equals_one_shot(src: int, dst: int, tmp_path: Path) -> None:
    x = (0.3 * np.sin(np.arange(src * 2) * 2 * np.pi * 440 / src)).astype(np.float32)
    path = tmp_path / "tone.wav"
    sf.write(path, x, src, subtype="FLOAT")
    out, _, consumed = _read_stream(path, dst, block_seconds=0.123)
    assert consumed == x.size
    np.testing.assert_array_equal(out, resample(x, src, dst))
    assert out.size == round(x.size * dst / src)


def test_empty_and_tiny_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    out, _, _ = _read_stream(empty)
    assert out.size == 0 and probe_audio(empty).frames == 0
    one = tmp_path / "one.wav"
    sf.write(one, np.array([0.5], np.float32), 16000, subtype="FLOAT")
    assert _read_stream(one)[0].tolist() == [0.5]


@pytest.mark.parametrize("content,message", [
    (None, "no such file"), (b"", "cannot read"), (b"hello, this is not audio" * 10,
                                                  "cannot read"),
    (b"RIFF\x10\x00\x00\x00WAVEfmt \x00\x00", "cannot read"),
])
def test_unreadable_inputs(content: bytes | None, message: str, tmp_path: Path) -> None:
    path = tmp_path / "in.wav"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioError, match=message):
        _read_stream(path)
    with pytest.raises(AudioError, match=message):
        load_audio(path)


def test_directory_is_not_audio(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="directory"):
        probe_audio(tmp_path)


def test_writer_resamples_clips_and_checks_paths(tmp_path: Path) -> None:
    x = np.concatenate([np.full(100, 2.0), np.sin(np.arange(16000) / 5) * 0.5]).astype(
        np.float32)
    path = tmp_path / "out.wav"
    with AudioWriter(path, 16000, out_rate=48000) as w:
        for s in range(0, x.size, 999):
            w.write(x[s: s + 999])
    y, rate = sf.read(path, dtype="float32")
    assert rate == 48000 and y.size == w.frames == 3 * x.size
    assert y.max() <= 1.0
    np.testing.assert_allclose(y, np.clip(resample(x, 16000, 48000), -1, 1), atol=1 / 32768)
    for bad, message in [(tmp_path / "x.xyz", "unknown audio file extension"),
                         (tmp_path / "noext", "unknown audio file extension"),
                         (tmp_path / "missing" / "x.wav", "does not exist"),
                         (tmp_path, "unknown audio file extension|directory")]:
        with pytest.raises(AudioError, match=message):
            check_output_path(bad)


def test_resampler_identity_passthrough() -> None:
    r = Resampler(16000, 16000)
    x = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(r.process(x), x)
    assert r.flush().size == 0
    with pytest.raises(AudioError, match="positive"):
        Resampler(0, 16000)
