"""Smoke and unit tests of benchmarks/quality.py on short clips with a tiny random model.

The Opus / Codec 2 parts run only where their binaries are installed
(``bash benchmarks/setup_peers.sh``); everything else always runs.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dwancodec.model import Codec

ROOT = Path(__file__).resolve().parents[1]
SPEECH = ROOT / "tests" / "data" / "speech_en.flac"


def _load_quality():
    spec = importlib.util.spec_from_file_location("dwc_quality_benchmark",
                                                  ROOT / "benchmarks" / "quality.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


quality = _load_quality()
HAVE_OPUS = quality.opus_backend() is not None
HAVE_CODEC2 = shutil.which("c2enc") is not None and shutil.which("c2dec") is not None


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short real-speech clips in nested folders (a FLAC and a WAV), plus a non-audio file."""
    root = tmp_path_factory.mktemp("clips")
    audio, rate = sf.read(str(SPEECH), dtype="float32")
    assert rate == 16000
    (root / "a").mkdir()
    (root / "b" / "deep").mkdir(parents=True)
    sf.write(str(root / "a" / "one.flac"), audio[: int(1.5 * rate)], rate)
    sf.write(str(root / "b" / "deep" / "two.wav"), audio[rate: int(2.2 * rate)], rate)
    (root / "notes.txt").write_text("not audio")
    return root


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle")
    Codec.from_config("tiny", seed=0).save_pretrained(path)
    return path


def test_find_clips_recursive_sorted_and_errors(clips: Path, tmp_path: Path) -> None:
    found = quality.find_clips(clips)
    assert [p.relative_to(clips).as_posix() for p in found] == ["a/one.flac",
                                                                "b/deep/two.wav"]
    assert len(quality.find_clips(clips, max_clips=1)) == 1
    assert [p.name for p in quality.find_clips(clips, exclude=["deep/"])] == ["one.flac"]
    with pytest.raises(quality.BenchmarkError, match="does not exist"):
        quality.find_clips(tmp_path / "missing")
    with pytest.raises(quality.BenchmarkError, match=r"no \.flac or \.wav"):
        quality.find_clips(tmp_path)


@settings(deadline=None, max_examples=25)
@given(shift=st.integers(-300, 300), seed=st.integers(0, 2**16))
def test_estimate_delay_recovers_a_shift(shift: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.standard_normal(4000).astype(np.float32)
    # est[t] = ref[t - shift] (late by `shift`), padded with fresh noise at the edges
    pad = rng.standard_normal(400).astype(np.float32)
    est = np.concatenate([pad, ref, pad])[400 - shift: 400 - shift + 4000]
    lag, corr, method = quality.estimate_delay(ref, est, max_lag=320)
    assert (lag, method) == (shift, "waveform")
    assert corr > 0.8
    aligned = quality.align(est, lag, ref.size)
    assert aligned.size == ref.size
    keep = slice(0, ref.size - max(shift, 0))
    np.testing.assert_array_equal(aligned[keep][max(-shift, 0):], ref[keep][max(-shift, 0):])


def test_estimate_delay_envelope_fallback() -> None:
    """A waveform with its phase scrambled (like a vocoder's) is still aligned by envelopes."""
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 2)
    bursts = (np.sin(2 * np.pi * 3 * t / 16000) > 0.3).astype(np.float64)  # speech-like on/off
    ref = bursts * rng.standard_normal(t.size)
    est = np.roll(bursts * rng.standard_normal(t.size), 320)  # independent noise, 20 ms late
    lag, _, method = quality.estimate_delay(ref, est, max_lag=640)
    assert method == "envelope"
    assert abs(lag - 320) <= quality.ENVELOPE_HOP
    lag, _, method = quality.estimate_delay(ref, rng.standard_normal(t.size), max_lag=640)
    assert (lag, method) == (0, "none")


def test_dwancodec_path_writes_table_plot_and_json(clips: Path, bundle: Path,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "out"
    rc = quality.main(["--clips", str(clips), "--model", str(bundle), "--out", str(out),
                       "--codecs", "dwancodec", "--seconds", "1.2"])
    assert rc == 0
    codec = Codec.from_pretrained(bundle)
    data = json.loads((out / "quality.json").read_text())
    assert data["clips"] == ["a/one.flac", "b/deep/two.wav"]
    rows = data["summary"]
    assert [r["label"] for r in rows] == [f"DwanCodec n_q={n}"
                                          for n in range(1, codec.num_codebooks + 1)]
    for n, row in enumerate(rows, start=1):
        assert row["nominal_kbps"] == pytest.approx(codec.bitrate(n) / 1000)
        # packed payload: ceil(F * frame_bits / 8) bytes -> within one frame + one byte
        assert row["measured_kbps"] >= row["nominal_kbps"] * 0.999
        assert row["measured_kbps"] <= row["nominal_kbps"] * 1.25
        assert row["clips"] == 2
    per_clip = data["per_clip"]
    assert len(per_clip) == 2 * codec.num_codebooks
    for r in per_clip:
        assert set(r["scores"]) == {"pesq_wb", "stoi", "si_sdr", "mel_distance"}
        assert math.isfinite(r["scores"]["si_sdr"]) and math.isfinite(r["scores"]["mel_distance"])
        assert r["seconds"] in (pytest.approx(1.2), pytest.approx(0.7, abs=1e-3))
    md = (out / "quality.md").read_text()
    assert "| codec | nominal kbps | measured kbps | PESQ-WB | STOI |" in md
    assert md.count("| DwanCodec |") >= codec.num_codebooks
    assert (out / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_dwancodec_variant_matches_offline_codec(bundle: Path) -> None:
    """What the benchmark scores is the codec's own encode(n_q)/decode, via the .dwc bitstream."""
    codec = Codec.from_pretrained(bundle)
    audio = sf.read(str(SPEECH), dtype="float32")[0][:4000]
    variants = quality.dwancodec_variants(codec)
    for n_q in (1, codec.num_codebooks):
        coded = variants[n_q - 1].run(audio, Path("."))
        with torch.inference_mode():
            x = torch.from_numpy(audio)[None, None]
            expected = codec.decode(codec.encode(x, n_q))[0, 0, : audio.size].numpy()
        np.testing.assert_allclose(coded.audio, expected, atol=1e-5)
        frames = math.ceil(audio.size / codec.hop_length)
        from dwancodec.bitstream import payload_bytes
        assert coded.payload_bytes == payload_bytes(frames, n_q, codec.codebook_size)


def test_user_errors_exit_2(clips: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    assert quality.main(["--clips", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert quality.main(["--clips", str(clips), "--codecs", "mp3", "--out", str(tmp_path)]) == 2
    assert "unknown codec" in capsys.readouterr().err
    assert quality.main(["--clips", str(clips), "--codecs", "dwancodec", "--model",
                         str(tmp_path), "--out", str(tmp_path)]) == 2
    assert "not a DwanCodec model bundle" in capsys.readouterr().err


def test_missing_binaries_point_to_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(quality.BenchmarkError, match=r"setup_peers\.sh"):
        quality.codec2_variants()
    with pytest.raises(quality.BenchmarkError, match=r"setup_peers\.sh"):
        quality.opus_variants()


@pytest.mark.skipif(not HAVE_OPUS, reason="Opus tools not installed (benchmarks/setup_peers.sh)")
def test_opus_bitrate_delay_and_quality(tmp_path: Path) -> None:
    audio = sf.read(str(SPEECH), dtype="float32")[0][: 3 * 16000]
    v6, v16 = quality.opus_variants([6, 16])
    res = {}
    for v in (v6, v16):
        r = quality.score_variant(v, audio, tmp_path, "speech", ".", max_lag=640)
        assert abs(r.delay_samples) <= 2  # opusdec removes the pre-skip
        assert r.measured_kbps == pytest.approx(v.nominal_kbps, rel=0.3)
        assert r.file_kbps > r.measured_kbps  # Ogg + header overhead is excluded from payload
        res[v.nominal_kbps] = r.scores
    assert res[16]["pesq_wb"] > res[6]["pesq_wb"]
    assert res[16]["stoi"] > 0.9


@pytest.mark.skipif(not HAVE_OPUS, reason="Opus tools not installed (benchmarks/setup_peers.sh)")
def test_ogg_packet_sizes_sum_to_payload(tmp_path: Path) -> None:
    audio = sf.read(str(SPEECH), dtype="float32")[0][:16000]
    v = quality.opus_variants([12])[0]
    coded = v.run(audio, tmp_path)
    sizes = quality.ogg_packet_sizes((tmp_path / "out.opus").read_bytes())
    assert len(sizes) - 2 >= 50  # OpusHead, OpusTags, then >= 1 s of 20 ms packets
    assert sum(sizes[2:]) == coded.payload_bytes < coded.file_bytes
    with pytest.raises(ValueError, match="not an Ogg page"):
        quality.ogg_packet_sizes(b"RIFF" + bytes(40))


@pytest.mark.skipif(not HAVE_CODEC2, reason="Codec 2 tools not installed "
                                            "(benchmarks/setup_peers.sh)")
def test_codec2_bitrate_and_delay(tmp_path: Path) -> None:
    audio = sf.read(str(SPEECH), dtype="float32")[0][: 3 * 16000]
    c3200, c1300 = quality.codec2_variants()
    r = quality.score_variant(c3200, audio, tmp_path, "speech", ".", max_lag=640)
    assert r.measured_kbps == pytest.approx(3.2, rel=0.02)  # 64 bits per 20 ms frame
    assert r.delay_method == "envelope" and 0 < r.delay_samples < 640
    assert r.scores["stoi"] > 0.6
    r = quality.score_variant(c1300, audio, tmp_path, "speech", ".", max_lag=640)
    assert r.measured_kbps == pytest.approx(1.4, rel=0.02)  # 52 bits -> 7 bytes per 40 ms


@pytest.mark.skipif(not (HAVE_OPUS and HAVE_CODEC2), reason="peer codecs not installed")
def test_full_run_prints_comparisons_first(clips: Path, bundle: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    rc = quality.main(["--clips", str(clips), "--model", str(bundle), "--out", str(tmp_path),
                       "--max-clips", "1", "--seconds", "1"])
    assert rc == 0
    printed = capsys.readouterr().out
    first = printed.strip().splitlines()[0]
    assert first.startswith("DwanCodec") and "vs Opus" in first
    assert "vs Codec 2" in printed
    data = json.loads((tmp_path / "quality.json").read_text())
    kbps = [r["nominal_kbps"] for r in data["summary"]]
    assert kbps == sorted(kbps)
    assert {r["codec"] for r in data["summary"]} == {"DwanCodec", "Opus", "Codec 2"}
