"""The command line against hostile inputs and targets, and what a newcomer sees (issue 14).

Bad input: exit 2, one line ``dwancodec CMD: error: ...``, no traceback, nothing written.
Outputs: only regular files are replaced (atomically); FIFOs and devices are written in place,
``-`` is standard input / output; errors name the path the user gave.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import tomllib
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from dwancodec import bitstream as bs
from dwancodec.cli import main
from dwancodec.model import Codec

from .conftest import DATA

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(sys.executable).parent / "dwancodec"
SPEECH = DATA / "speech_en.flac"  # 4 s, 16 kHz


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Codec.from_config("tiny", seed=0).save_pretrained(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def encoded(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("enc") / "speech.dwc"
    assert main(["encode", str(SPEECH), str(out), "--model", str(bundle), "-q"]) == 0
    return out


def _bad_bundle(root: Path, bundle: Path, name: str, **changes: object) -> Path:
    d = root / name
    d.mkdir()
    (d / "model.safetensors").write_bytes((bundle / "model.safetensors").read_bytes())
    cfg = json.loads((bundle / "config.json").read_text())
    for key, value in changes.items():
        section, _, field = key.rpartition("__")
        (cfg[section] if section else cfg)[field] = value
    (d / "config.json").write_text(json.dumps(cfg))
    return d


def _invalid_frame_file(encoded: Path, d: Path) -> Path:
    """A .dwc whose frame 0 holds an invalid code combination, with both CRCs right."""
    data = bytearray(encoded.read_bytes())
    h = bs.read_dwc(encoded).header
    start = h.header_size
    bits = h.frame_bits  # 18 bits for 3 stages of 60: values up to 262143, valid < 216000
    value = int.from_bytes(data[start:start + 3], "little")
    value |= (1 << bits) - 1
    data[start:start + 3] = value.to_bytes(3, "little")
    end = len(data) - 4
    data[end:] = zlib.crc32(bytes(data[start:end])).to_bytes(4, "little")
    out = d / "invalid_frame.dwc"
    out.write_bytes(bytes(data))
    return out


@pytest.fixture(scope="module")
def hostile(bundle: Path, encoded: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    files = {
        "cfg_type": _bad_bundle(d, bundle, "cfg_type", sample_rate="abc"),
        "cfg_size": _bad_bundle(d, bundle, "cfg_size", decoder__dim=32),
        "cfg_huge": _bad_bundle(d, bundle, "cfg_huge", decoder__dim=10**8),
        "invalid": _invalid_frame_file(encoded, d),
        "sock": d / "sock",
        "fifo": d / "fifo.flac",
        "trunc": d / "trunc.wav",
    }
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(files["sock"]))
    os.mkfifo(files["fifo"])
    full = d / "full.wav"
    sf.write(full, np.zeros(16000, np.int16), 16000)
    files["trunc"].write_bytes(full.read_bytes()[:100])
    return files


CUDA = torch.cuda.is_available()
# (name, argv template, message); {M}: tiny bundle, {S}: speech, {E}: good .dwc, {O}: output
HOSTILE = [
    ("config wrong type", "encode {S} {O}.dwc --model {cfg_type}",
     "config field sample_rate must be an integer in [1, 768000], got 'abc'"),
    ("config vs weights", "encode {S} {O}.dwc --model {cfg_size}",
     "does not match"),
    ("config dim 1e8", "decode {E} {O}.wav --model {cfg_huge}",
     "config field decoder.dim must be an integer in [1, 4096]"),
    ("--device foo", "encode {S} {O}.dwc --model {M} --device foo", "unknown device 'foo'"),
    ("--device cuda:7", "decode {E} {O}.wav --model {M} --device cuda:7", "device 'cuda:7'"),
    ("--threads 100000", "encode {S} {O}.dwc --model {M} --threads 100000",
     "--threads must be an integer in [1, "),
    ("output is a socket", "encode {S} {sock} --model {M}", "it is a socket"),
    ("decode to a FIFO as flac", "decode {E} {fifo} --model {M}", "WAV only"),
    ("roundtrip to a FIFO", "roundtrip {S} {fifo} --model {M}",
     "roundtrip writes a regular file"),
    ("info: invalid frame", "info {invalid}", "frame 0 holds an invalid code combination"),
    ("decode: invalid frame", "decode {invalid} {O}.wav --model {M}",
     "frame 0 holds an invalid code combination"),
    ("decode --sample-rate 0", "decode {E} {O}.wav --model {M} --sample-rate 0",
     "--sample-rate must be an integer number of Hz"),
]


@pytest.mark.parametrize("name,template,message", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_input_is_one_line_exit_2(name: str, template: str, message: str,
                                          hostile: dict[str, Path], bundle: Path,
                                          encoded: Path, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    if name == "--device cuda:7" and CUDA and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    paths = {**hostile, "M": bundle, "S": SPEECH, "E": encoded, "O": tmp_path / "out"}
    argv = [p.format(**{k: str(v) for k, v in paths.items()}) for p in template.split()]
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert message in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dwancodec {argv[0]}: error: "), err
    assert list(tmp_path.iterdir()) == []  # nothing written
    assert stat.S_ISFIFO(os.stat(hostile["fifo"]).st_mode)  # and never replaced


@pytest.mark.skipif(CUDA, reason="a CUDA GPU is available here")
def test_device_cuda_on_a_cpu_only_torch(bundle: Path, encoded: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", str(encoded), str(tmp_path / "x.wav"), "--model", str(bundle),
                 "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert "device 'cuda'" in err and "use --device cpu" in err and "Traceback" not in err


def test_unwritable_output_names_the_users_path(bundle: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    target = Path("/sys/dwancodec-test.dwc")  # not writable, even as root
    if not Path("/sys").is_dir():
        pytest.skip("no /sys here")
    assert main(["encode", str(SPEECH), str(target), "--model", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {target}" in err, err
    assert ".partial" not in err  # was: the hidden temporary file's name


def _reader(path: Path, out: list[bytes]) -> threading.Thread:
    def run() -> None:
        with open(path, "rb") as f:
            out.append(f.read())
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_fifo_targets_are_written_in_place(bundle: Path, encoded: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    t = _reader(fifo, got)
    assert main(["encode", str(SPEECH), str(fifo), "--model", str(bundle), "-q"]) == 0
    t.join(30)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # was: replaced by a regular file
    assert got == [encoded.read_bytes()]
    t = _reader(fifo, got)
    assert main(["decode", str(encoded), str(fifo), "--model", str(bundle), "-q"]) == 0
    t.join(30)
    assert main(["decode", str(encoded), str(tmp_path / "ref.wav"), "--model", str(bundle),
                 "-q"]) == 0
    assert got[1] == (tmp_path / "ref.wav").read_bytes()  # the same WAV bytes
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert main(["encode", str(SPEECH), os.devnull, "--model", str(bundle), "-q"]) == 0
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)


def test_pipes_both_ways_through_the_script(bundle: Path, encoded: Path,
                                            tmp_path: Path) -> None:
    enc = subprocess.run([str(SCRIPT), "encode", "-", "-", "--model", str(bundle)],
                         input=SPEECH.read_bytes(), capture_output=True, timeout=300)
    assert enc.returncode == 0, enc.stderr
    assert enc.stdout == encoded.read_bytes()  # the same file as from a path
    assert b"stdout: 1600 frames" in enc.stderr  # the summary is not mixed into the stream
    dec = subprocess.run([str(SCRIPT), "decode", "-", "-", "--model", str(bundle), "-q"],
                         input=enc.stdout, capture_output=True, timeout=300)
    assert dec.returncode == 0, dec.stderr
    assert main(["decode", str(encoded), str(tmp_path / "ref.wav"), "--model", str(bundle),
                 "-q"]) == 0
    assert dec.stdout == (tmp_path / "ref.wav").read_bytes()
    bad = subprocess.run([str(SCRIPT), "decode", "-", "-", "--model", str(bundle)],
                         input=enc.stdout[:-7], capture_output=True, timeout=300)
    assert bad.returncode == 2 and bad.stdout == b""
    assert b"truncated .dwc file stdin" in bad.stderr and b"Traceback" not in bad.stderr


def test_a_reader_that_leaves_stops_the_output_quietly(encoded: Path) -> None:
    """`dwancodec info x.dwc | head -1`: when standard output's reader is gone, the command
    stops with 141 (128 + SIGPIPE), as shell tools do: no traceback, no "internal error"."""
    proc = subprocess.Popen([str(SCRIPT), "info", str(encoded)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # gone before the first line (the import takes seconds)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141, err
    assert err == ""


def test_progress_bar_stops_where_the_error_is(bundle: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "nan_at_35s.wav"
    x = np.zeros(40 * 16000, np.float32)
    x[35 * 16000] = np.nan
    sf.write(src, x, 16000, subtype="FLOAT")
    assert main(["encode", str(src), str(tmp_path / "x.dwc"), "--model", str(bundle)]) == 2
    err = capsys.readouterr().err
    assert "contains NaN or Inf" in err
    assert "100%" not in err and "40/40 s" not in err, err  # was: a full bar, then the error
    assert not (tmp_path / "x.dwc").exists()


def test_truncated_wav_is_noted(bundle: Path, hostile: dict[str, Path], tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["encode", str(hostile["trunc"]), str(tmp_path / "t.dwc"), "--model",
                 str(bundle)]) == 0
    err = capsys.readouterr().err
    assert "note: trunc.wav looks truncated: its header announces about 16000 samples, the " \
           "file holds 28" in err, err  # was: 1 frame, no warning
    with pytest.warns(UserWarning, match="looks truncated"):
        from dwancodec.api import DwanCodec

        DwanCodec(checkpoint_path=bundle).encode(hostile["trunc"])


def test_info_agrees_with_decode_on_frame_values(hostile: dict[str, Path], encoded: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(encoded)]) == 0
    assert "checksum:    ok" in capsys.readouterr().out
    with pytest.raises(bs.BitstreamError, match="invalid code combination"):
        bs.read_dwc(hostile["invalid"])  # was: parsed; only decode refused it


BLOCK_METRICS = textwrap.dedent("""
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("pesq", "pystoi"):
                raise ImportError(f"{name} is blocked in this test")
            return None
    sys.meta_path.insert(0, Block())
    from dwancodec.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def test_demo_without_pesq_and_stoi_prints_no_nan(bundle: Path, tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", BLOCK_METRICS, "demo", "--model",
                        str(bundle), "--out", str(tmp_path / "demo")],
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    assert "nan" not in r.stdout.lower(), r.stdout  # was: nan in the PESQ-WB and STOI columns
    assert "PESQ-WB" not in r.stdout and "SI-SDR" in r.stdout
    assert "PESQ-WB and STOI left out: pesq, pystoi not installed" in r.stderr
    rows = [ln for ln in r.stdout.splitlines() if ln.strip()[:1].isdigit()]
    assert len(rows) == 3 and all(len(row.split()) == 9 for row in rows), rows


MEASURE_API = textwrap.dedent("""
    import resource, sys, warnings
    from dwancodec.api import DwanCodec
    codec = DwanCodec(checkpoint_path=sys.argv[1])
    codes = codec.encode(sys.argv[2])
    print(codes.shape[-1], resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


def test_api_encode_of_a_long_file_runs_in_bounded_memory(bundle: Path, tmp_path: Path) -> None:
    """``DwanCodec.encode(path)`` on 10 minutes: peak memory within a few tens of MB of a 10 s
    file (10 minutes of float32 audio alone is 38 MB; the whole-file path took far more)."""
    peaks = {}
    for seconds in (10, 600):
        path = tmp_path / f"{seconds}.wav"
        rng = np.random.default_rng(0)
        with sf.SoundFile(path, "w", 16000, 1, subtype="PCM_16") as f:
            for _ in range(seconds // 10):
                f.write((rng.standard_normal(160000) * 3000).astype(np.int16))
        r = subprocess.run([sys.executable, "-c", MEASURE_API, str(bundle), str(path)],
                           capture_output=True, text=True, timeout=900,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
        assert r.returncode == 0, r.stderr
        frames, peaks[seconds] = map(int, r.stdout.split())
        assert frames == seconds * 16000 // 40
    assert peaks[600] - peaks[10] < 40_000, peaks


def test_all_extra_brings_every_extra() -> None:
    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    (spec,) = extras["all"]
    named = spec.split("[", 1)[1].rstrip("]").split(",")
    assert spec.startswith(meta["name"] + "[")
    assert set(named) == set(extras) - {"all"}


def test_run_all_needs_clips_and_has_no_machine_path(tmp_path: Path) -> None:
    script = REPO / "benchmarks" / "run_all.sh"
    assert "/work/" not in script.read_text()
    env = {k: v for k, v in os.environ.items() if k != "CLIPS"}
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                       env={**env, "SKIP": "speed latency", "OUT": str(tmp_path)},
                       cwd=tmp_path)
    assert r.returncode == 2 and "CLIPS=" in r.stderr, r.stderr
    r = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                       env={**env, "SKIP": "speed latency", "OUT": str(tmp_path),
                            "CLIPS": str(tmp_path), "HELDOUT": "no-such-folder"},
                       cwd=tmp_path)
    assert r.returncode == 2 and "HELDOUT=" in r.stderr and "not a folder" in r.stderr, r.stderr


def test_peak_memory_of_a_refused_huge_config_is_small(hostile: dict[str, Path],
                                                       encoded: Path, tmp_path: Path) -> None:
    code = ("import resource, sys; from dwancodec.cli import main; rc = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, "decode", str(encoded),
                        str(tmp_path / "x.wav"), "--model", str(hostile["cfg_huge"])],
                       capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 2 and "decoder.dim" in r.stderr
    assert int(r.stdout) < 1_000_000  # kB: torch itself plus a little; no model was built
