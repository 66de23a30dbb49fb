"""The real ``dwancodec`` console script on real speech: outputs, exit codes, messages.

Each subprocess pays the torch import (~2-4 s), so the many bad-input cases run through
``dwancodec.cli.main`` in-process (the same parser and handlers, minus the process start); a few
of them are repeated through the script to show the user sees no traceback.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from dwancodec import bitstream as bs
from dwancodec.api import DwanCodec, default_model_dir
from dwancodec.audio import load_audio
from dwancodec.cli import main
from dwancodec.model import Codec
from dwancodec.streaming.session import StreamingEncoder

from .conftest import DATA

SCRIPT = Path(sys.executable).parent / "dwancodec"
SPEECH = DATA / "speech_en.flac"  # 4 s, 16 kHz


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 300
        ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Codec.from_config("tiny", seed=0).save_pretrained(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def other_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Codec.from_config("tiny", seed=1).save_pretrained(tmp_path_factory.mktemp("tiny1"))


@pytest.fixture(scope="module")
def codec(bundle: Path) -> Codec:
    return Codec.from_pretrained(bundle)


@pytest.fixture(scope="module")
def encoded(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """speech_en.flac encoded by the console script with 2 of 3 stages."""
    out = tmp_path_factory.mktemp("enc") / "speech.dwc"
    r = run("encode", SPEECH, out, "--model", bundle, "--n-q", "2")
    assert r.returncode == 0, r.stderr
    assert "1600 frames" in r.stdout and "n_q 2/3" in r.stdout
    return out


def _stream_codes(codec: Codec, audio: np.ndarray, n_q: int, seed: int) -> np.ndarray:
    enc = StreamingEncoder(codec, 1, n_q)
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < audio.size:
        n = int(rng.integers(1, 700))
        out.append(enc.push(torch.from_numpy(audio[i: i + n])[None]))
        i += n
    out.append(enc.flush())
    return torch.cat(out, dim=-1)[0].numpy()


# The main paths ----------------------------------------------------------------------------
def test_file_equals_python_api_equals_streaming(encoded: Path, bundle: Path,
                                                 codec: Codec) -> None:
    file_codes = bs.read_dwc(encoded).codes()
    api_codes = DwanCodec(checkpoint_path=bundle).encode(SPEECH, n_q=2)[0].numpy()
    audio, _ = load_audio(SPEECH, 16000)
    stream_codes = _stream_codes(codec, audio, 2, seed=3)
    assert file_codes.shape == (2, 1600)
    np.testing.assert_array_equal(file_codes, api_codes)
    np.testing.assert_array_equal(file_codes, stream_codes)


def test_decode_gives_original_length_and_api_audio(encoded: Path, bundle: Path, codec: Codec,
                                                    tmp_path: Path) -> None:
    out = tmp_path / "speech.wav"
    r = run("decode", encoded, out, "--model", bundle)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    y, rate = sf.read(out, dtype="float32")
    assert rate == 16000 and y.size == 64000 and sf.info(out).subtype == "PCM_16"
    codes = torch.from_numpy(bs.read_dwc(encoded).codes())[None]
    with torch.inference_mode():
        ref = codec.decode(codes)[0, 0, :64000].clamp(-1, 1).numpy()
    np.testing.assert_allclose(y, ref, atol=1.5 / 32768)


def test_roundtrip_prints_figures_and_matches_file_path(encoded: Path, bundle: Path,
                                                        codec: Codec, tmp_path: Path) -> None:
    out = tmp_path / "rt.wav"
    r = run("roundtrip", SPEECH, out, "--model", bundle, "--n-q", "2", "--compare",
            "--chunk-ms", "27.3")
    assert r.returncode == 0, r.stderr
    for expected in ("bitrate:  4.726 kbps (n_q 2 of 3)", "latency:  2.5 ms algorithmic",
                     "real-time factor", "PESQ-WB", "STOI", "SI-SDR", "mel distance",
                     "chunks of 437 samples"):
        assert expected in r.stdout, r.stdout
    y, rate = sf.read(out, dtype="float32")
    assert rate == 16000 and y.size == 64000
    with torch.inference_mode():
        codes = torch.from_numpy(bs.read_dwc(encoded).codes())[None]
        ref = codec.decode(codes)[0, 0, :64000].clamp(-1, 1).numpy()
    np.testing.assert_allclose(y, ref, atol=1.5 / 32768)


def test_info_on_a_file(encoded: Path) -> None:
    r = run("info", encoded)
    assert r.returncode == 0, r.stderr
    assert "format version 2" in r.stdout and "dwancodec-tiny@" in r.stdout
    assert re.search(r"codes: +[0-9a-f]{16}\n", r.stdout), r.stdout
    assert "1600 x 40 samples" in r.stdout and "checksum:    ok" in r.stdout
    r = run("info", encoded, "--json")
    d = json.loads(r.stdout)
    assert (d["n_q"], d["num_frames"], d["length_samples"], d["frame_bits"]) == (2, 1600,
                                                                                64000, 12)
    assert d["file_bytes"] == encoded.stat().st_size


def test_info_on_models_and_configs(bundle: Path, encoded: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "dwancodec-tiny@" in out and "2.363, 4.726, 7.088 kbps" in out
    assert main(["info", "--config", "default", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["hop_length"] == 320 and d["latency_ms"] == 20.0 and len(d["bitrates_kbps"]) == 8
    assert main(["info"]) == 0
    table = capsys.readouterr().out
    for name in ("default", "lowlatency", "24k", "tiny"):
        assert name in table
    assert main(["info", str(encoded), "--model", str(bundle)]) == 0
    assert "(matches --model)" in capsys.readouterr().out
    # A bundle folder as the positional argument is described as --model would describe it.
    assert main(["info", "--model", str(bundle)]) == 0
    by_flag = capsys.readouterr().out
    assert main(["info", str(bundle)]) == 0
    assert capsys.readouterr().out == by_flag


def test_a_newer_decoder_of_the_same_codes_decodes_old_files(
        encoded: Path, codec: Codec, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A decoder-only update keeps the codes identity: format-2 files decode with it (the
    output is the new decoder's), format-1 files only where the bundle lists their model."""
    newer = copy.deepcopy(codec)
    with torch.no_grad():
        newer.decoder.head.out.weight.mul_(2.0)
    newer_dir = newer.save_pretrained(tmp_path / "newer")
    dwc = bs.read_dwc(encoded)
    codes = dwc.codes()
    out = tmp_path / "new.wav"
    assert main(["decode", str(encoded), str(out), "--model", str(newer_dir)]) == 0
    assert f"written by {codec.identity()}, decoded by {newer.identity()}, same codes" in \
        capsys.readouterr().out
    with torch.inference_mode():
        want = newer.decode(torch.from_numpy(codes)[None])[0, 0, :64000].clamp(-1, 1).numpy()
        old = codec.decode(torch.from_numpy(codes)[None])[0, 0, :64000].clamp(-1, 1).numpy()
    y, _ = sf.read(out, dtype="float32")
    np.testing.assert_allclose(y, want, atol=1.5 / 32768)
    assert np.abs(y - old).max() > 1e-3  # the new decoder ran, not the old one
    assert main(["info", str(encoded), "--model", str(newer_dir)]) == 0
    assert "another model with the same codes" in capsys.readouterr().out
    # Format 1 names the model alone: refused, until the newer bundle lists the old model.
    v1 = tmp_path / "v1.dwc"
    v1.write_bytes(bs.to_bytes(bs.Header(**{**dwc.header.__dict__, "codes": ""}), codes,
                               dwc.header.length))
    assert main(["decode", str(v1), str(tmp_path / "v1.wav"), "--model", str(newer_dir)]) == 2
    assert "encoded with model" in capsys.readouterr().err
    assert not (tmp_path / "v1.wav").exists()
    newer.compatible_identities = (codec.identity(),)
    listed = newer.save_pretrained(tmp_path / "listed")
    assert main(["decode", str(v1), str(tmp_path / "v1.wav"), "--model", str(listed)]) == 0
    np.testing.assert_array_equal(sf.read(tmp_path / "v1.wav", dtype="float32")[0], y)
    capsys.readouterr()
    assert main(["info", "--model", str(listed), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert (d["codes"], d["compatible"]) == (codec.codes_identity(), [codec.identity()])


def test_stereo_44k_int_input_is_downmixed_with_notice(bundle: Path, codec: Codec,
                                                       tmp_path: Path) -> None:
    import soxr

    audio, _ = load_audio(SPEECH, 16000)
    x = soxr.resample(audio[:16000], 16000, 44100)
    stereo = (np.stack([x, 0.5 * x], axis=1) * 32767).astype(np.int16)
    src = tmp_path / "stereo.wav"
    sf.write(src, stereo, 44100, subtype="PCM_16")
    out = tmp_path / "stereo.dwc"
    r = run("encode", src, out, "--model", bundle)
    assert r.returncode == 0, r.stderr
    assert "note: stereo.wav has 2 channels; downmixing to mono" in r.stderr
    h = bs.read_dwc(out).header
    assert (h.source_rate, h.length, h.n_q) == (44100, 16000, 3)
    with pytest.warns(UserWarning, match="downmixing"):  # the API warns instead of a note
        api = DwanCodec(checkpoint_path=bundle).encode(src)[0].numpy()  # same downmix, soxr
    np.testing.assert_array_equal(bs.read_dwc(out).codes(), api)
    r = run("encode", src, tmp_path / "q.dwc", "--model", bundle, "--quiet")
    assert r.returncode == 0 and r.stderr == "" and r.stdout == ""


@pytest.mark.parametrize("samples", [1, 10, 39, 41])
def test_inputs_shorter_than_a_frame_and_silence(samples: int, bundle: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "short.wav"
    sf.write(src, np.full(samples, 0.1, np.float32), 16000, subtype="FLOAT")
    dwc, wav = tmp_path / "short.dwc", tmp_path / "short.wav.flac"
    assert main(["encode", str(src), str(dwc), "--model", str(bundle)]) == 0
    assert bs.read_dwc(dwc).header.num_frames == -(-samples // 40)
    assert main(["decode", str(dwc), str(wav), "--model", str(bundle)]) == 0
    assert sf.info(wav).frames == samples


def test_silence_and_bitrate_choice(bundle: Path, tmp_path: Path) -> None:
    src = tmp_path / "silence.wav"
    sf.write(src, np.zeros(16000, np.int16), 16000)
    assert main(["encode", str(src), str(tmp_path / "s.dwc"), "--model", str(bundle),
                 "--bitrate", "5"]) == 0
    assert bs.read_dwc(tmp_path / "s.dwc").header.n_q == 2  # 4.73 kbps fits, 7.09 does not
    assert main(["decode", str(tmp_path / "s.dwc"), str(tmp_path / "s.ogg"), "--model",
                 str(bundle), "--sample-rate", "48000"]) == 0
    assert sf.info(tmp_path / "s.ogg").samplerate == 48000


def test_demo_writes_files_and_table(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = run("demo", "--model", bundle, "--out", out)
    assert r.returncode == 0, r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.strip()[:1].isdigit()]
    assert len(rows) == 3, r.stdout  # one per bitrate of the tiny model
    assert "speech_fr.flac (4.26 s)" in r.stdout and "2.5ms" in rows[0]
    wavs = sorted(out.glob("speech_fr_*kbps_nq*.wav"))
    assert len(wavs) == 3 and len(list(out.glob("*.dwc"))) == 3
    for w in wavs:
        assert sf.info(w).frames == sf.info(out / "speech_fr_original.wav").frames == 68208


def test_default_model(tmp_path: Path) -> None:
    """Without --model the shipped default is used, or a clear message says it is missing."""
    r = run("encode", SPEECH, tmp_path / "d.dwc")
    if (default_model_dir() / "model.safetensors").exists():
        assert r.returncode == 0, r.stderr
        assert bs.read_dwc(tmp_path / "d.dwc").header.num_frames > 0
        # the main job: the shipped model at each bitrate on ONNX Runtime (the default engine
        # where the model has graphs), then the same clip through the torch engine
        r = run("demo", "--out", tmp_path / "demo")
        assert r.returncode == 0, r.stderr
        assert "on the ONNX Runtime engine" in r.stdout.splitlines()[0], r.stdout
        rows = [ln for ln in r.stdout.splitlines() if ln.strip()[:1].isdigit()]
        assert len(rows) == 8 and all("20.0ms" in row for row in rows), r.stdout
        other = [ln for ln in r.stdout.splitlines() if ln.startswith("torch path")]
        assert len(other) == 1, r.stdout
        agree = float(re.search(r"([0-9.]+) % of codes equal", other[0]).group(1))
        assert agree >= 99.0, other  # boundary ties aside, the two engines give one stream
        r = run("demo", "--out", tmp_path / "demo-torch", "--backend", "torch")
        assert r.returncode == 0, r.stderr
        assert "on the torch engine" in r.stdout.splitlines()[0], r.stdout
        onnx_line = [ln for ln in r.stdout.splitlines() if ln.startswith("ONNX Runtime path")]
        assert len(onnx_line) == 1, r.stdout
        agree = float(re.search(r"([0-9.]+) % of codes equal", onnx_line[0]).group(1))
        assert agree >= 99.0, onnx_line  # boundary ties aside, the two paths give one stream
    else:
        assert r.returncode == 2
        assert "default model is not installed" in r.stderr and "--model" in r.stderr
        assert "Traceback" not in r.stderr


# Bad input: what the user sees -------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory, encoded: Path) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    files = {"dir": d / "folder", "text": d / "notes.wav", "empty": d / "empty.wav",
             "nan": d / "nan.wav", "truncated": d / "trunc.dwc", "flipped": d / "flip.dwc",
             "wav": d / "real.wav", "file": d / "plain.txt", "noweights": d / "nobundle",
             "badweights": d / "badbundle"}
    files["dir"].mkdir()
    files["text"].write_text("this is not audio\n" * 20)
    sf.write(files["empty"], np.zeros(0, np.int16), 16000)
    sf.write(files["nan"], np.array([0.0, np.nan, 0.1], np.float32), 16000, subtype="FLOAT")
    data = encoded.read_bytes()
    files["truncated"].write_bytes(data[: len(data) // 2])
    files["flipped"].write_bytes(data[:200] + bytes([data[200] ^ 1]) + data[201:])
    sf.write(files["wav"], np.zeros(1600, np.int16), 16000)
    files["file"].write_text("x")
    files["noweights"].mkdir()
    files["badweights"].mkdir()
    Codec.from_config("tiny").config.save(files["badweights"] / "config.json")
    (files["badweights"] / "model.safetensors").write_bytes(b"garbage" * 10)
    return files


# (name, argv template, expected message); {M}: tiny bundle, {M1}: other tiny bundle,
# {S}: speech, {E}: good .dwc, {O}: an output path, {<key>}: a file of bad_files.
BAD_INPUTS = [
    ("missing input", "encode {d}/nope.wav {O}.dwc --model {M}", "no such file"),
    ("input is a folder", "encode {dir} {O}.dwc --model {M}", "is a directory"),
    ("text file as audio", "encode {text} {O}.dwc --model {M}", "cannot read"),
    ("empty audio file", "encode {empty} {O}.dwc --model {M}", "contains no audio samples"),
    ("NaN samples", "encode {nan} {O}.dwc --model {M}", "NaN or Inf"),
    ("--n-q 0", "encode {S} {O}.dwc --model {M} --n-q 0", "n_q must be an integer in [1, 3]"),
    ("--n-q 9", "encode {S} {O}.dwc --model {M} --n-q 9", "n_q must be an integer in [1, 3]"),
    ("--bitrate too low", "encode {S} {O}.dwc --model {M} --bitrate 1", "below the lowest"),
    ("--bitrate negative", "encode {S} {O}.dwc --model {M} --bitrate -3", "positive"),
    ("--bitrate nan", "encode {S} {O}.dwc --model {M} --bitrate nan", "positive"),
    ("--threads 0", "encode {S} {O}.dwc --model {M} --threads 0", "--threads must be"),
    ("missing model", "encode {S} {O}.dwc --model {d}/nomodel", "no model bundle at"),
    ("model folder without weights", "encode {S} {O}.dwc --model {noweights}",
     "no model weights"),
    ("corrupt weights", "encode {S} {O}.dwc --model {badweights}", "not a valid safetensors"),
    ("output folder missing", "encode {S} {d}/no/such/dir/x.dwc --model {M}", "does not exist"),
    ("output is the input", "encode {wav} {wav} --model {M}", "overwrite the input"),
    ("decode a wav", "decode {wav} {O}.wav --model {M}", "not a .dwc file"),
    ("decode a text file", "decode {file} {O}.wav --model {M}", "not a .dwc file"),
    ("decode missing file", "decode {d}/nope.dwc {O}.wav --model {M}", "no such file"),
    ("decode truncated .dwc", "decode {truncated} {O}.wav --model {M}", "truncated .dwc file"),
    ("decode corrupted .dwc", "decode {flipped} {O}.wav --model {M}", "checksum mismatch"),
    ("decode with another model", "decode {E} {O}.wav --model {M1}",
     "encoded with model dwancodec-tiny@"),
    ("decode to .xyz", "decode {E} {O}.xyz --model {M}", "unknown audio file extension"),
    ("decode --sample-rate 0", "decode {E} {O}.wav --model {M} --sample-rate 0",
     "--sample-rate must be"),
    ("roundtrip --chunk-ms 0", "roundtrip {S} {O}.wav --model {M} --chunk-ms 0",
     "--chunk-ms must be positive"),
    ("roundtrip to .dwc", "roundtrip {S} {O}.dwc --model {M}", "unknown audio file extension"),
    ("info on a wav", "info {wav}", "not a .dwc file"),
    ("info on a missing file", "info {d}/nope.dwc", "no such file"),
    ("info on a folder that is no bundle", "info {d}", "no model weights at"),
    ("info unknown config", "info --config huge", "unknown config 'huge'"),
    ("info file vs other model", "info {E} --model {M1}", "encoded with model"),
    ("demo --out is a file", "demo --model {M} --out {file}", "is not a folder"),
    ("demo missing input", "demo --model {M} --input {d}/nope.wav --out {O}", "no such file"),
]


def _argv(template: str, paths: dict[str, Path], tmp: Path) -> list[str]:
    fmt = {k: str(v) for k, v in paths.items()} | {"O": str(tmp / "out"), "d": str(tmp)}
    return [part.format(**fmt) for part in template.split()]


@pytest.mark.parametrize("name,template,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input(name: str, template: str, message: str, bad_files: dict[str, Path],
                   bundle: Path, other_bundle: Path, encoded: Path, tmp_path: Path,
                   capsys: pytest.CaptureFixture[str]) -> None:
    paths = {**bad_files, "M": bundle, "M1": other_bundle, "S": SPEECH, "E": encoded}
    before = set(tmp_path.rglob("*"))
    rc = main(_argv(template, paths, tmp_path))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err, err
    assert err.startswith(f"dwancodec {template.split()[0]}: error: ")
    assert "Traceback" not in err
    assert set(tmp_path.rglob("*")) <= before | {tmp_path / "out"}  # no half-written output
    if (tmp_path / "out").exists():
        assert (tmp_path / "out").is_dir()  # only "demo missing input" may make its folder


def test_bad_input_through_the_script(bad_files: dict[str, Path], bundle: Path,
                                      tmp_path: Path) -> None:
    r = run("decode", bad_files["truncated"], tmp_path / "x.wav", "--model", bundle)
    assert r.returncode == 2 and "truncated .dwc file" in r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    r = run("encode", SPEECH, tmp_path / "x.dwc", "--n-q", "2", "--bitrate", "3")
    assert r.returncode == 2 and "not allowed with argument" in r.stderr


# Bounded memory on a long file -------------------------------------------------------------
MEASURE = textwrap.dedent("""
    import resource, sys
    from dwancodec.cli import main
    rc = main(sys.argv[1:])
    print(f"MAXRSS_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr)
    sys.exit(rc)
""")


def _peak_kb(*args: str | Path) -> tuple[int, str]:
    r = subprocess.run([sys.executable, "-c", MEASURE, *map(str, args)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return int(r.stderr.rsplit("MAXRSS_KB", 1)[1]), r.stderr


def _noise_file(path: Path, seconds: int, rate: int = 16000) -> None:
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
        for _ in range(seconds // 10):
            f.write((rng.standard_normal(10 * rate) * 3000).astype(np.int16))


def test_long_file_memory_is_bounded(bundle: Path, tmp_path: Path) -> None:
    """Encode + decode 10 minutes: peak memory within a few MB of a 10 s file."""
    short, long_ = tmp_path / "short.wav", tmp_path / "long.wav"
    _noise_file(short, 10)
    _noise_file(long_, 600)
    peak_short, _ = _peak_kb("encode", short, tmp_path / "s.dwc", "--model", bundle)
    peak_long, err = _peak_kb("encode", long_, tmp_path / "l.dwc", "--model", bundle)
    assert "s audio" in err  # the progress bar, on stderr
    assert bs.read_dwc(tmp_path / "l.dwc").header.length == 600 * 16000
    dec_short, _ = _peak_kb("decode", tmp_path / "s.dwc", tmp_path / "s.wav", "--model",
                            bundle, "--quiet")
    dec_long, err = _peak_kb("decode", tmp_path / "l.dwc", tmp_path / "l.wav", "--model",
                             bundle, "--quiet")
    assert "s audio" not in err.split("MAXRSS_KB")[0]  # --quiet: no bar
    assert sf.info(tmp_path / "l.wav").frames == 600 * 16000
    # 10 minutes of float32 audio alone is 38 MB; the whole-file path needs far more.
    assert peak_long - peak_short < 25_000, (peak_short, peak_long)
    assert dec_long - dec_short < 25_000, (dec_short, dec_long)
