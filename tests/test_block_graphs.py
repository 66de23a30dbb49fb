"""Block graphs: ``MODEL/onnx/blocks/``, the same model exported at many frames per call, on
which whole signals are coded (``.dwc`` files, ``OnnxCodec.encode`` / ``decode``), while live
use keeps the one-frame step graphs.

Shown by real runs on the tiny model (TorchScript exporter) and on the shipped default: the
block graphs' codes equal the step graphs' but at rounding ties (the rule of README "How it
works", :data:`~dwancodec.quantization.residual.TIE_MARGIN`) and their audio agrees to float32
rounding, for any length; ``encode`` / ``decode`` and ``encode_file`` / ``decode_file`` run on
them (the engine and the summary line say ``25 frames per call``) and write the file the step
graphs write; a ``blocks/`` of another model is ignored with a note, one of the same model
with another state is refused, naming the folder; ``dwancodec export`` writes them (or, with
``--no-blocks``, removes an earlier export's).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dwancodec import bitstream as bs
from dwancodec.api import default_model_dir
from dwancodec.audio import load_audio
from dwancodec.cli import main
from dwancodec.commands.files import decode_file, encode_file, file_engine
from dwancodec.engine import open_engine
from dwancodec.export import BLOCKS, DEFAULT_BLOCK_FRAMES, SIDECAR, export_onnx
from dwancodec.model import Codec
from dwancodec.runtime import OnnxCodec, OrtEngine, load_sidecar, whole_signal_graphs

from .test_engines import cli_without_torch, needs_shipped
from .test_files_on_engines import LSB, SPEECH, _ties_only
from .test_onnx_export import _root, tiny_codec

K = DEFAULT_BLOCK_FRAMES  # 25: the default of `dwancodec export` and of the shipped model
ATOL = 1e-5               # float32 audio of the same codes, two graph shapes (measured ~2e-7)


@functools.cache
def blocked() -> Path:
    """The tiny model exported with block graphs, once per process."""
    out = _root() / "tiny-blocks"
    export_onnx(tiny_codec(), out, exporter="torchscript", try_offline=False, block_frames=K)
    return out


@functools.cache
def other_model_at_k() -> Path:
    """Another tiny model (other weights, the same architecture and state) exported at ``K``
    frames per call: what an export of that model would have left in ``blocks/``."""
    out = _root() / "tiny-seed1-k"
    export_onnx(Codec.from_config("tiny", seed=1), out, frames_per_step=K,
                exporter="torchscript", try_offline=False)
    return out


@functools.cache
def block_and_step_codecs() -> tuple[OnnxCodec, OnnxCodec]:
    """The tiny export opened twice: whole signals on its block graphs, and on its steps."""
    return OnnxCodec(blocked()), OnnxCodec(blocked(), blocks=False)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model as a bundle with step and block graphs (``MODEL/onnx/blocks/``)."""
    d = tiny_codec().save_pretrained(tmp_path_factory.mktemp("tiny") / "bundle")
    shutil.copytree(blocked(), d / "onnx")
    return d


def _copy(src: Path, dst: Path, blocks: bool = True) -> Path:
    shutil.copytree(src, dst, ignore=None if blocks else shutil.ignore_patterns(BLOCKS))
    return dst


def _edit(sidecar: Path, change: Any) -> None:
    meta = json.loads(sidecar.read_text())
    change(meta)
    sidecar.write_text(json.dumps(meta))


# The export ----------------------------------------------------------------------------------
def test_export_writes_block_graphs_of_the_same_model_and_state() -> None:
    """``blocks/`` is a complete export of its own (sidecar, graphs verified against torch, no
    int8, no full-sequence graphs) naming the same model, codes and ``compatible`` list, with
    the same state specs as the step graphs: the state does not depend on frames per call."""
    d = blocked()
    steps, blocks = load_sidecar(d), load_sidecar(d / BLOCKS)
    assert (steps["frames_per_step"], blocks["frames_per_step"]) == (1, K)
    assert blocks["model"] == steps["model"]
    assert steps["model"]["identity"] == tiny_codec().identity()
    for side in ("encoder_state", "decoder_state"):
        assert [(e["key"], e["shape"], e["dtype"]) for e in blocks[side]] == \
            [(e["key"], e["shape"], e["dtype"]) for e in steps[side]]
    assert sorted(blocks["graphs"]) == ["decoder_step", "encoder_step"]
    assert "int8" not in blocks and all("sha256" in g for g in blocks["graphs"].values())
    assert set(blocks["verification"]) == {"encoder_step", "decoder_step"}
    assert OnnxCodec(d / BLOCKS).frames_per_step == K


def test_export_command_blocks_and_no_blocks(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """``dwancodec export`` writes ``OUT/blocks/`` by default (``--block-frames N``); with
    ``--no-blocks`` it writes none and removes an earlier export's, so block graphs of other
    weights never linger beside new step graphs; files of others in that folder stay."""
    out = tmp_path / "onnx"
    common = ["--config", "tiny", "--out", str(out), "--exporter", "torchscript",
              "--no-optimize"]
    assert main(["export", *common, "--block-frames", "4"]) == 0
    printed = capsys.readouterr().out
    assert f"block graphs (4 frames per call) in {out / BLOCKS}" in printed
    assert str(out / BLOCKS / "encoder_step.onnx") in printed  # sizes listed with the rest
    assert load_sidecar(out / BLOCKS)["frames_per_step"] == 4
    assert whole_signal_graphs(out) == out / BLOCKS
    assert main(["export", *common, "--no-blocks", "-q"]) == 0
    assert not (out / BLOCKS).exists() and whole_signal_graphs(out) == out
    assert main(["export", *common, "-q"]) == 0  # the default: 25 frames per call
    assert load_sidecar(out / BLOCKS)["frames_per_step"] == K
    (out / BLOCKS / "notes.txt").write_text("mine")
    assert main(["export", *common, "--frames-per-step", "25", "-q"]) == 0  # nothing to gain
    assert [p.name for p in (out / BLOCKS).iterdir()] == ["notes.txt"]
    assert whole_signal_graphs(out) == out
    with pytest.raises(ValueError, match="block_frames must be None or an integer"):
        export_onnx(tiny_codec(), tmp_path / "x", block_frames=0)


# Codes and audio: block graphs against step graphs ------------------------------------------
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(length=st.integers(1, 4 * K * 40 + 123), n_q=st.integers(1, 3), seed=st.integers(0, 99))
def test_block_graphs_code_as_the_step_graphs(length: int, n_q: int, seed: int) -> None:
    """Any length (within a block, across several, a partial last block) and stages: the
    offline ``encode`` on the block graphs gives the step graphs' codes but at rounding ties,
    and ``decode`` of the same codes gives their audio to float32 rounding."""
    fast, slow = block_and_step_codecs()
    assert (fast.whole_signal_codec().frames_per_step, slow.whole_signal_codec() is slow) == \
        (K, True)
    x = np.clip(0.3 * np.random.default_rng(seed).standard_normal(length), -1, 1
                ).astype(np.float32)
    a, b = fast.encode(x, n_q)[0], slow.encode(x, n_q)[0]
    assert a.shape == b.shape == (n_q, -(-length // fast.hop_length))
    _ties_only(tiny_codec(), x, a, b)
    ya, yb = fast.decode(b, length), slow.decode(b, length)
    assert ya.shape == yb.shape == (1, length)
    np.testing.assert_allclose(ya, yb, atol=ATOL, rtol=0)


def test_streaming_sessions_keep_the_step_graphs(bundle: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Live use (sessions, ``open_engine`` for streams, ``roundtrip``) keeps one frame per call
    (one frame of latency); only the ``files`` purpose takes the block graphs."""
    onnx = OnnxCodec(bundle / "onnx")
    assert onnx.streaming_encoder().engine.frames_per_step == 1
    assert onnx.streaming_decoder().engine.frames_per_step == 1
    assert open_engine("auto", bundle)[0].frames_per_step == 1
    assert open_engine("auto", bundle, purpose="files")[0].frames_per_step == K
    assert open_engine("onnx", bundle, purpose="files")[0].frames_per_step == K
    assert open_engine("torch", bundle, purpose="files")[0].name == "torch"
    with pytest.raises(ValueError, match="unknown purpose"):
        open_engine("auto", bundle, purpose="offline")
    assert main(["roundtrip", str(SPEECH), str(tmp_path / "rt.wav"), "--model",
                 str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "engine:   ONNX Runtime (onnx)" in out and "frames per call" not in out


# Files ---------------------------------------------------------------------------------------
def test_files_use_the_block_graphs_and_write_the_step_graphs_file(
        bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``encode`` / ``decode`` of a bundle with block graphs run on them (the summary line
    names 25 frames per call) and write the file the same bundle without them writes: the
    same header, the same codes but at rounding ties, the same audio to 16-bit rounding."""
    bare = _copy(bundle, tmp_path / "steps-only", blocks=False)
    lines, files = {}, {}
    for name, model in (("blocks", bundle), ("steps", bare)):
        files[name] = tmp_path / f"{name}.dwc"
        assert main(["encode", str(SPEECH), str(files[name]), "--model", str(model),
                     "--n-q", "3"]) == 0
        lines[name] = capsys.readouterr().out.rstrip()
        assert main(["decode", str(files[name]), str(files[name].with_suffix(".wav")),
                     "--model", str(model)]) == 0
        lines[name + " decode"] = capsys.readouterr().out.rstrip()
    assert lines["blocks"].endswith(f"ONNX Runtime, {K} frames per call)"), lines
    assert lines["blocks decode"].endswith(f"ONNX Runtime, {K} frames per call)"), lines
    assert lines["steps"].endswith("ONNX Runtime)") and lines["steps decode"].endswith(
        "ONNX Runtime)"), lines
    a, b = bs.read_dwc(files["blocks"]), bs.read_dwc(files["steps"])
    assert a.header == b.header and a.header.model == tiny_codec().identity()
    audio, _ = load_audio(SPEECH, 16000)
    _ties_only(tiny_codec(), audio, a.codes(), b.codes())
    ya, _ = sf.read(files["blocks"].with_suffix(".wav"), dtype="float32")
    yb, _ = sf.read(files["steps"].with_suffix(".wav"), dtype="float32")
    assert ya.shape == yb.shape == audio.shape
    if np.array_equal(a.codes(), b.codes()):
        np.testing.assert_allclose(ya, yb, atol=ATOL + LSB, rtol=0)


def test_file_api_codes_an_onnx_codec_on_its_block_graphs(bundle: Path, tmp_path: Path) -> None:
    """``encode_file`` / ``decode_file`` given an ``OnnxCodec`` (or its folder) code on its
    block graphs, and give the bytes of the CLI; an engine passed in is run as given."""
    d = bundle / "onnx"
    assert file_engine(OnnxCodec(d)).frames_per_step == K
    assert file_engine(str(d)).frames_per_step == K
    assert file_engine(OnnxCodec(d, blocks=False)).frames_per_step == 1
    assert file_engine(OrtEngine(OnnxCodec(d))).frames_per_step == 1  # the caller's choice
    api, cli = tmp_path / "api.dwc", tmp_path / "cli.dwc"
    encode_file(OnnxCodec(d), SPEECH, api, n_q=2)
    assert main(["encode", str(SPEECH), str(cli), "--model", str(bundle), "--n-q", "2",
                 "-q"]) == 0
    assert api.read_bytes() == cli.read_bytes()
    decode_file(d, api, tmp_path / "api.wav")
    assert main(["decode", str(cli), str(tmp_path / "cli.wav"), "--model", str(bundle),
                 "-q"]) == 0
    assert (tmp_path / "api.wav").read_bytes() == (tmp_path / "cli.wav").read_bytes()


def test_int8_keeps_the_step_graphs(bundle: Path) -> None:
    """Block graphs are float32 only: the int8 choice keeps the (int8) step graphs."""
    d = bundle / "onnx"
    assert whole_signal_graphs(d) == d / BLOCKS
    assert whole_signal_graphs(d, "int8") == d


# Pairs that must not run -----------------------------------------------------------------------
def test_block_graphs_of_another_model_are_ignored_with_a_note(
        bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A ``blocks/`` left by another model's export (here: other weights, same architecture,
    so the same state specs) is not used: a note names it, files are coded on the step graphs
    and come out as without it, byte for byte."""
    stale = _copy(bundle, tmp_path / "stale", blocks=False)
    shutil.copytree(other_model_at_k(), stale / "onnx" / BLOCKS)
    other, mine = Codec.from_config("tiny", seed=1), tiny_codec()
    notes: list[str] = []
    assert whole_signal_graphs(stale / "onnx", note=notes.append) == stale / "onnx"
    assert notes == [f"block graphs in {stale / 'onnx' / BLOCKS} ignored: they name another "
                     f"model than the step graphs (identity {other.identity()}, not "
                     f"{mine.identity()}; codes {other.codes_identity()}, not "
                     f"{mine.codes_identity()}); coding on the step graphs, slower "
                     "(re-export the model to remake them)"]
    with pytest.warns(UserWarning, match="block graphs in .* ignored"):
        assert OnnxCodec(stale / "onnx").whole_signal_codec().frames_per_step == 1
    bare = _copy(bundle, tmp_path / "bare", blocks=False)
    for model in (stale, bare):
        assert main(["encode", str(SPEECH), str(tmp_path / f"{model.name}.dwc"), "--model",
                     str(model), "--n-q", "2"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("dwancodec encode: note: block graphs in") == 1, captured.err
    assert captured.out.count("ONNX Runtime)") == 2 and "frames per call" not in captured.out
    assert (tmp_path / "stale.dwc").read_bytes() == (tmp_path / "bare.dwc").read_bytes()


def test_block_graphs_with_another_compatible_list_are_ignored(bundle: Path,
                                                                tmp_path: Path) -> None:
    """The ``compatible`` list decides which format-1 files decode: block graphs that list
    other models than the step graphs do are not used for files (a note says which lists)."""
    model = _copy(bundle, tmp_path / "listed")
    _edit(model / "onnx" / BLOCKS / SIDECAR,
          lambda m: m["model"].update(compatible=["dwancodec-tiny@0123456789abcdef"]))
    notes: list[str] = []
    assert whole_signal_graphs(model / "onnx", note=notes.append) == model / "onnx"
    assert len(notes) == 1 and "(compatible ['dwancodec-tiny@0123456789abcdef'], not [])" \
        in notes[0], notes
    assert open_engine("auto", model, purpose="files", note=notes.append)[0] \
        .frames_per_step == 1 and len(notes) == 2


SAME_MODEL_BROKEN = {
    "encoder state shape": ("encoder state differs", lambda m: m["encoder_state"][0].update(
        shape=[d + 1 for d in m["encoder_state"][0]["shape"]])),
    "decoder state entry missing": ("decoder state differs",
                                    lambda m: m["decoder_state"].pop()),
    "encoder state renamed": ("encoder state differs", lambda m: m["encoder_state"][-1].update(
        key=m["encoder_state"][-1]["key"] + "x")),
    "latent_dim": ("latent_dim", lambda m: m.update(latent_dim=m["latent_dim"] + 1)),
    "hop_length": ("hop_length", lambda m: m.update(hop_length=m["hop_length"] * 2)),
}


@pytest.mark.parametrize("case", sorted(SAME_MODEL_BROKEN))
def test_block_graphs_of_the_same_model_with_another_state_are_refused(
        case: str, bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Block graphs naming the same model but with another state (keys, shapes) or geometry
    are a broken export: a ``ValueError`` naming the folder, one line and exit 2 from the
    command, nothing written."""
    words, change = SAME_MODEL_BROKEN[case]
    model = _copy(bundle, tmp_path / "broken")
    folder = model / "onnx" / BLOCKS
    _edit(folder / SIDECAR, change)
    with pytest.raises(ValueError, match=re.escape(str(folder)) + r": the block graphs'? .*"
                       + re.escape(words)):
        whole_signal_graphs(model / "onnx")
    with pytest.raises(ValueError, match="a broken export"):
        OnnxCodec(model / "onnx").encode(np.zeros(400, np.float32))
    out = tmp_path / "x.dwc"
    assert main(["encode", str(SPEECH), str(out), "--model", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"dwancodec encode: error: {folder}: ") and len(
        err.strip().splitlines()) == 1, err
    assert not out.exists()
    # live use does not open them: streaming still runs on the step graphs
    assert open_engine("auto", model)[0].frames_per_step == 1


# The shipped default -------------------------------------------------------------------------
@needs_shipped
def test_shipped_model_has_block_graphs_of_its_model() -> None:
    """``onnx/blocks/`` ships beside the step graphs: the same identity, codes and
    ``compatible`` list, the same state, 25 frames per call, float32 only; the package data
    globs of pyproject.toml take its files into the wheel."""
    onnx = default_model_dir() / "onnx"
    steps, blocks = load_sidecar(onnx), load_sidecar(onnx / BLOCKS)
    assert blocks["model"]["identity"] == steps["model"]["identity"]
    assert blocks["model"]["codes"] == steps["model"]["codes"] != ""
    assert blocks["model"]["compatible"] == steps["model"]["compatible"]
    assert len(blocks["model"]["compatible"]) == 2
    assert (steps["frames_per_step"], blocks["frames_per_step"]) == (1, K)
    assert blocks["encoder_state"] == steps["encoder_state"]
    assert blocks["decoder_state"] == steps["decoder_state"]
    assert "int8" not in blocks and not any("int8" in g for g in blocks["graphs"].values())
    assert whole_signal_graphs(onnx) == onnx / BLOCKS
    assert OnnxCodec().whole_signal_codec().frames_per_step == K  # sha256s match the files
    import tomllib

    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["dwancodec"]
    shipped = {p for g in globs for p in (root / "dwancodec").glob(g) if p.is_file()}
    want = {p for p in (onnx / BLOCKS).iterdir()}
    assert {p.name for p in want} == {SIDECAR, "encoder_step.onnx", "decoder_step.onnx"}
    assert want <= shipped


@needs_shipped
def test_shipped_model_codes_files_on_its_block_graphs_without_torch(tmp_path: Path) -> None:
    """Torch unimportable, the shipped default encodes and decodes the test clip on its block
    graphs (the summary lines say so); the codes are the step graphs' but at rounding ties,
    and ``--int8`` keeps the int8 step graphs."""
    dwc, wav = tmp_path / "s.dwc", tmp_path / "s.wav"
    r = cli_without_torch("encode", SPEECH, dwc)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().endswith(f"ONNX Runtime, {K} frames per call)"), r.stdout
    r = cli_without_torch("decode", dwc, wav)
    assert r.returncode == 0, r.stderr
    assert r.stdout.rstrip().endswith(f"ONNX Runtime, {K} frames per call)"), r.stdout
    assert sf.info(wav).frames == 64000
    steps = tmp_path / "steps.dwc"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no note: the shipped pair is consistent
        encode_file(OnnxCodec(blocks=False), SPEECH, steps)
    a, b = bs.read_dwc(dwc), bs.read_dwc(steps)
    assert a.header == b.header
    audio, _ = load_audio(SPEECH, 16000)
    _ties_only(Codec.from_pretrained(default_model_dir()), audio, a.codes(), b.codes())
    meta = load_sidecar(default_model_dir() / "onnx")
    if meta.get("int8", {}).get("passed"):
        r = cli_without_torch("encode", SPEECH, tmp_path / "q.dwc", "--int8")
        assert r.returncode == 0, r.stderr
        assert r.stdout.rstrip().endswith("ONNX Runtime int8)"), r.stdout
