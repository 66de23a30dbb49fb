"""One streaming interface over two engines: the engine protocol, the shared sessions, the one
bitrate -> n_q rule, and the CLI's default engine (ONNX Runtime where the model has graphs),
shown by real runs: a child interpreter in which torch cannot be imported still runs
``roundtrip`` and ``live`` on the shipped model, so those runs cannot have used torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dwancodec import lengths
from dwancodec.api import default_model_dir
from dwancodec.bitstream import Header
from dwancodec.bundled import shipped_onnx_dir
from dwancodec.engine import (
    Engine,
    StreamingDecoder,
    StreamingEncoder,
    as_engine,
    choose_n_q,
    model_graphs,
    open_engine,
)
from dwancodec.model import Codec
from dwancodec.runtime import OnnxCodec, OrtEngine
from dwancodec.streaming import TorchEngine

from .conftest import DATA
from .test_live import no_device_env
from .test_onnx_export import exported, tiny_codec
from .test_runtime_no_torch import BLOCK_TORCH_PRELUDE

SHIPPED = (default_model_dir() / "model.safetensors").exists() and \
    (shipped_onnx_dir() / "dwancodec_onnx.json").exists()
needs_shipped = pytest.mark.skipif(not SHIPPED, reason="the shipped model or graphs are missing")

BLOCK_TORCH = BLOCK_TORCH_PRELUDE + textwrap.dedent("""
    from dwancodec.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def cli_without_torch(*args: str | Path, env: dict[str, str] | None = None
                      ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK_TORCH, *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=300)


def engines() -> dict[str, Engine]:
    return {"torch": TorchEngine(tiny_codec(), numpy_output=True),
            "onnx": OrtEngine(OnnxCodec(exported(), use_full_graphs=False))}


@pytest.mark.parametrize("name", ["torch", "onnx"])
def test_engine_protocol_and_steps(name: str) -> None:
    e = engines()[name]
    assert isinstance(e, Engine) and e.name == name
    # Both engines write the same .dwc header: format 2, naming the model and its codes.
    h = Header.for_engine(e, 2)
    assert (h.model, h.codes, h.version) == (tiny_codec().identity(),
                                             tiny_codec().codes_identity(), 2)
    hop, b = e.hop_length, 3
    x = (0.3 * np.random.default_rng(0).standard_normal((b, 4 * hop))).astype(np.float32)
    state = e.encoder_state(b)
    assert set(e.state_arrays(state)) == set(e.encoder_state_spec())
    out = []
    for i in range(4):  # one frame per call: what every engine takes
        c, state = e.encode_step(x[:, i * hop:(i + 1) * hop], state, 2)
        out.append(np.array(c))
    codes = np.concatenate(out, -1)
    assert codes.shape == (b, 2, 4) and codes.dtype == np.int64
    whole = StreamingEncoder(e, b, n_q=2)
    np.testing.assert_array_equal(np.concatenate([whole.push(x), whole.flush()], -1), codes)
    dstate = e.decoder_state(b)
    y, dstate = e.decode_step(codes[..., :1], 2, dstate)
    assert y.shape == (b, hop) and y.dtype == np.float32


def test_torch_and_onnx_sessions_agree() -> None:
    """The shared sessions over the two engines: same codes (ties aside), same audio."""
    eng = engines()
    x = (0.3 * np.random.default_rng(3).standard_normal((2, 5000))).astype(np.float32)
    codes = {}
    for name, e in eng.items():
        enc = StreamingEncoder(e, 2, n_q=3)
        codes[name] = np.concatenate([enc.push(x[:, :777]), enc.push(x[:, 777:]), enc.flush()],
                                     -1)
    assert codes["torch"].shape == codes["onnx"].shape == (2, 3, -(-5000 // 40))
    assert (codes["torch"] != codes["onnx"]).mean() < 0.01
    audio = {name: StreamingDecoder(e, 2).push(codes["torch"]) for name, e in eng.items()}
    np.testing.assert_allclose(audio["onnx"], audio["torch"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["torch", "onnx"])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(length=st.integers(1, 700), chunk=st.integers(1, 130), n_q=st.integers(1, 3))
def test_roundtrip_is_the_live_link_and_equals_the_sessions(name: str, length: int, chunk: int,
                                                             n_q: int) -> None:
    """``stream_roundtrip`` (the CLI round trip) runs the live link (packets, receiver, jitter
    buffer) and gives exactly the codes of the plain sessions, for any chunking, and their
    audio up to float rounding (the link decodes the frames as they arrive, one call each;
    the reference decodes all frames in one call)."""
    from dwancodec.commands.roundtrip import stream_roundtrip

    e = engines()[name]
    x = (0.3 * np.random.default_rng(length).standard_normal(length)).astype(np.float32)
    enc = StreamingEncoder(e, 1, n_q=n_q)
    want_codes = np.concatenate([enc.push(x[None]), enc.flush()], -1)[0]
    want = np.asarray(StreamingDecoder(e, 1).push(want_codes[None]))[0, :length]
    got, codes = [], []
    r = stream_roundtrip(e, [x], n_q, chunk, on_audio=got.append, on_codes=codes.append)
    np.testing.assert_array_equal(np.concatenate(codes, -1), want_codes)
    np.testing.assert_allclose(np.concatenate(got), want, atol=1e-5, rtol=0)
    assert r.num_samples == length and r.num_frames == want_codes.shape[-1]
    assert r.packets["sent"] == r.packets["received"] == want_codes.shape[-1]
    assert r.packets["lost"] == r.packets["corrupt"] == 0


def test_as_engine_and_result_types() -> None:
    import torch

    codec = tiny_codec()
    assert isinstance(as_engine(codec), TorchEngine)
    assert isinstance(as_engine(exported()), OrtEngine)
    assert isinstance(as_engine(OnnxCodec(exported())), OrtEngine)
    assert isinstance(StreamingEncoder(codec).push(np.zeros(100, np.float32)), torch.Tensor)
    assert isinstance(StreamingEncoder(exported()).push(np.zeros(100, np.float32)), np.ndarray)
    with pytest.raises(ValueError, match="expected a Codec"):
        as_engine(42)


def test_one_bitrate_rule() -> None:
    """Codec, OnnxCodec, the live backends and the CLI use lengths.n_q_for_bitrate."""
    from dwancodec.commands.common import choose_n_q as cli_n_q
    from dwancodec.live.backends import resolve_n_q

    codec, rt = tiny_codec(), OnnxCodec(exported())
    e = OrtEngine(rt)
    for kbps in (1.0, 2.4, 2.5, 4.9, 5.0, 7.5, 100.0):
        try:
            want = lengths.n_q_for_bitrate(kbps, codec.frame_rate, codec.codebook_size,
                                           codec.num_codebooks)
        except ValueError:
            for f in (codec.n_q_for_bitrate, rt.n_q_for_bitrate,
                      lambda k: cli_n_q(codec, None, k), lambda k: resolve_n_q(e, k, None)):
                with pytest.raises(ValueError, match="below the lowest"):
                    f(kbps)
            continue
        assert codec.n_q_for_bitrate(kbps) == rt.n_q_for_bitrate(kbps) == want
        assert cli_n_q(codec, None, kbps) == resolve_n_q(e, kbps, None) == want
        assert choose_n_q(codec.num_codebooks, codec.frame_rate, codec.codebook_size,
                          None, kbps) == want
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive number"):
            lengths.n_q_for_bitrate(bad, 50, 1024, 8)


def test_no_import_circle_in_runtime() -> None:
    """runtime/session.py and runtime/onnx_codec.py: neither imports the other at use time,
    and each imports first in a fresh interpreter."""
    import ast

    root = Path(__file__).resolve().parents[1] / "dwancodec" / "runtime"
    for path, other in (("onnx_codec.py", "session"), ("session.py", "onnx_codec"),
                        ("engine.py", "onnx_codec")):
        tree = ast.parse((root / path).read_text())
        typing_only = {id(n) for top in ast.walk(tree) if isinstance(top, ast.If)
                       and getattr(top.test, "id", None) == "TYPE_CHECKING"
                       for n in ast.walk(top)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 \
                    and id(node) not in typing_only:
                assert node.module != other, f"{path} imports .{other}"
    for mod in ("dwancodec.runtime.session", "dwancodec.runtime.onnx_codec",
                "dwancodec.runtime.engine", "dwancodec.engine"):
        r = subprocess.run([sys.executable, "-c", f"import {mod}"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 0, r.stderr


def test_auto_uses_graphs_of_the_same_weights(tmp_path: Path) -> None:
    """``auto``: ONNX Runtime for MODEL/onnx of the same weights, torch (with the reason)
    for a bundle without graphs or with graphs of other weights."""
    bundle = Codec.from_config("tiny", seed=0).save_pretrained(tmp_path / "tiny")
    engine, why = open_engine("auto", bundle)
    assert engine.name == "torch" and why is None  # no graphs: torch, no note
    shutil.copytree(exported(), bundle / "onnx")
    assert model_graphs(bundle) == bundle / "onnx"
    engine, why = open_engine("auto", bundle)
    assert engine.name == "onnx" and why is None
    other = Codec.from_config("tiny", seed=1).save_pretrained(tmp_path / "other")
    shutil.copytree(exported(), other / "onnx")
    engine, why = open_engine("auto", other)
    assert engine.name == "torch" and "not of the weights" in (why or "")
    with pytest.raises(ValueError, match="needs graphs"):
        open_engine("onnx", tmp_path / "tiny-none")
    assert open_engine("torch", bundle)[0].name == "torch"


@needs_shipped
def test_roundtrip_defaults_to_onnx_runtime(tmp_path: Path) -> None:
    """A real ``dwancodec roundtrip`` on the shipped model with torch unimportable: it runs, so
    it ran on ONNX Runtime; ``--backend torch`` (torch importable) names the torch engine."""
    out = tmp_path / "rt.wav"
    r = cli_without_torch("roundtrip", DATA / "speech_en.flac", out)
    assert r.returncode == 0, r.stderr
    assert "engine:   ONNX Runtime (onnx)" in r.stdout and sf.info(out).frames > 0
    r = subprocess.run([sys.executable, "-m", "dwancodec.cli", "roundtrip",
                        DATA / "speech_en.flac", tmp_path / "t.wav", "--backend", "torch"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "engine:   torch (torch)" in r.stdout
    a, _ = sf.read(out, dtype="float32")
    b, _ = sf.read(tmp_path / "t.wav", dtype="float32")
    assert a.shape == b.shape and np.abs(a - b).max() < 0.05


@needs_shipped
def test_live_defaults_to_onnx_runtime(tmp_path: Path) -> None:
    """``dwancodec live`` without --backend on the shipped model runs with torch unimportable."""
    x, sr = sf.read(DATA / "speech_en.flac", dtype="float32")
    clip = tmp_path / "clip.wav"
    sf.write(clip, x[: sr // 2], sr)
    r = cli_without_torch("live", "--input-file", clip, "--save-output", tmp_path / "o.wav",
                          "-q", env=no_device_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "onnx backend" in r.stdout
    assert sf.info(tmp_path / "o.wav").frames > 0


def test_int8_engine_needs_int8_graphs(tmp_path: Path) -> None:
    """``int8`` never falls back silently: graphs without an int8 variant, a bundle without
    graphs and the torch backend are each refused with a message naming the problem."""
    bundle = Codec.from_config("tiny", seed=0).save_pretrained(tmp_path / "tiny")
    shutil.copytree(exported(), bundle / "onnx")
    with pytest.raises(ValueError, match="no int8 graphs"):
        open_engine("auto", bundle, int8=True)
    with pytest.raises(ValueError, match="--backend torch"):
        open_engine("torch", bundle, int8=True)
    bare = Codec.from_config("tiny", seed=0).save_pretrained(tmp_path / "bare")
    with pytest.raises(ValueError, match="has no graphs"):
        open_engine("auto", bare, int8=True)


@needs_shipped
def test_int8_flag_runs_the_shipped_int8_graphs(tmp_path: Path) -> None:
    """``roundtrip --int8`` runs the shipped int8 graphs (torch unimportable) and says so; its
    audio is the float engine's within what the contract allows; with ``--backend torch`` it
    exits 2 with one line."""
    meta = json.loads((shipped_onnx_dir() / "dwancodec_onnx.json").read_text())
    if not meta.get("int8", {}).get("passed"):
        pytest.skip("the shipped model has no int8 graphs")
    r = cli_without_torch("roundtrip", DATA / "speech_en.flac", tmp_path / "q.wav", "--int8")
    assert r.returncode == 0, r.stderr
    assert "engine:   ONNX Runtime int8 (onnx)" in r.stdout
    r32 = cli_without_torch("roundtrip", DATA / "speech_en.flac", tmp_path / "f.wav")
    assert r32.returncode == 0, r32.stderr
    a, _ = sf.read(tmp_path / "q.wav", dtype="float32")
    b, _ = sf.read(tmp_path / "f.wav", dtype="float32")
    assert a.shape == b.shape and not np.array_equal(a, b)  # other graphs really ran
    assert abs(float(np.sqrt(np.mean(a ** 2))) / float(np.sqrt(np.mean(b ** 2))) - 1) < 0.2
    r = subprocess.run([sys.executable, "-m", "dwancodec.cli", "roundtrip",
                        DATA / "speech_en.flac", tmp_path / "t.wav", "--int8", "--backend",
                        "torch"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--int8" in r.stderr and not (tmp_path / "t.wav").exists()


@needs_shipped
def test_shipped_graphs_and_weights_name_the_same_codes() -> None:
    """The shipped sidecar's codes identity and ``compatible`` list are the weights' own, so
    the ONNX Runtime and the torch engine of the default model write the same header and
    decode the same files (format-1 files of the two defaults before it included)."""
    from dwancodec.model import read_compatible

    codec = Codec.from_pretrained(default_model_dir())
    meta = json.loads((shipped_onnx_dir() / "dwancodec_onnx.json").read_text())
    assert meta["model"]["codes"] == codec.codes_identity()
    ort = OrtEngine(OnnxCodec(shipped_onnx_dir()))
    assert ort.codes_identity == codec.codes_identity()
    assert codec.identity() not in codec.compatible_identities
    listed = read_compatible(default_model_dir() / "model.safetensors")
    assert len(listed) == 2  # default-v1 and the round-20 default, whose encoder it kept
    assert meta["model"]["compatible"] == list(listed)
    assert ort.compatible_identities == codec.compatible_identities == listed
    torch_engine = TorchEngine(codec)
    assert Header.for_engine(ort, 3, 44100) == Header.for_engine(torch_engine, 3, 44100)
    v1 = Header(**{**Header.for_engine(ort, 3).__dict__, "model": listed[0], "codes": ""})
    assert v1.check_model(ort) is False and v1.check_model(torch_engine) is False

