"""``.dwc`` files on either engine: ``dwancodec encode`` / ``decode`` with ``--backend`` and
``encode_file`` / ``decode_file`` with a torch ``Codec``, an ``OnnxCodec`` or an engine.

Shown by real runs: files cross engines (ONNX Runtime encode, torch decode and the reverse),
their codes differ only at rounding ties, one header rule serves both engines, a torch-free
child interpreter (torch imports blocked) encodes and decodes, and the sidecar's ``compatible``
list admits format-1 files on the ONNX engine exactly as the safetensors one does on torch.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from dwancodec import bitstream as bs
from dwancodec.api import default_model_dir
from dwancodec.audio import load_audio
from dwancodec.bitstream import BitstreamError, Header
from dwancodec.cli import main
from dwancodec.commands.files import decode_file, encode_file
from dwancodec.config import QUANTIZER_KINDS
from dwancodec.engine import StreamingDecoder, StreamingEncoder
from dwancodec.export import SIDECAR, export_onnx
from dwancodec.model import Codec, read_compatible
from dwancodec.quantization.residual import TIE_MARGIN
from dwancodec.runtime import OnnxCodec, OrtEngine, load_sidecar
from dwancodec.streaming import TorchEngine

from .conftest import DATA
from .test_engines import cli_without_torch, needs_shipped
from .test_onnx_export import exported, tiny_codec
from .test_runtime_no_torch import BLOCK_TORCH_PRELUDE

SPEECH = DATA / "speech_en.flac"  # 4 s, 16 kHz: 1600 frames of the tiny model
LSB = 1 / 32768                   # one step of the 16-bit WAV that decode writes


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model as a bundle with its graphs inside (``MODEL/onnx/``), as shipped."""
    d = tiny_codec().save_pretrained(tmp_path_factory.mktemp("tiny") / "bundle")
    shutil.copytree(exported(), d / "onnx")
    assert OnnxCodec(d / "onnx").identity == tiny_codec().identity()  # auto takes the graphs
    return d


def _ties_only(codec: Codec, audio: np.ndarray, a: np.ndarray, b: np.ndarray) -> None:
    """Codes ``a`` and ``b`` (``[n_q, F]``) of ``audio`` ``[T]`` may differ only in frames whose
    offline tie margin (torch, ``Quantizer.tie_margin``) is below ``TIE_MARGIN``: the rule
    README states for codes of one model computed in two float32 orders."""
    n_q, frames = a.shape
    x = np.pad(audio, (0, frames * codec.hop_length - audio.size))
    with torch.inference_mode():
        margins = codec.quantizer.tie_margin(codec.encoder(torch.from_numpy(x)[None, None]),
                                             n_q)[0].numpy()
    differ = (a != b).any(0)
    assert (margins[differ] < TIE_MARGIN).all(), \
        f"codes differ in frames {np.flatnonzero(differ & (margins >= TIE_MARGIN))[:5]} " \
        "away from any rounding tie"


# The command line ----------------------------------------------------------------------------
def test_files_cross_backends(bundle: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture[str]) -> None:
    """Encoded with ``--backend onnx`` or ``torch``, a file decodes on either backend, to the
    same audio; both encodes write the same header, and the same codes but at rounding ties."""
    files = {}
    for backend, label in (("onnx", "ONNX Runtime)"), ("torch", "torch)")):
        files[backend] = tmp_path / f"{backend}.dwc"
        assert main(["encode", str(SPEECH), str(files[backend]), "--model", str(bundle),
                     "--n-q", "2", "--backend", backend]) == 0
        out = capsys.readouterr().out
        assert "1600 frames" in out and out.rstrip().endswith(label), out
    a, b = bs.read_dwc(files["onnx"]), bs.read_dwc(files["torch"])
    assert a.header == b.header and a.header.version == 2
    assert a.header.model == tiny_codec().identity()
    audio, _ = load_audio(SPEECH, 16000)
    _ties_only(tiny_codec(), audio, a.codes(), b.codes())
    for src in ("onnx", "torch"):
        decoded = {}
        for backend in ("onnx", "torch"):
            wav = tmp_path / f"{src}-by-{backend}.wav"
            assert main(["decode", str(files[src]), str(wav), "--model", str(bundle),
                         "--backend", backend]) == 0
            assert capsys.readouterr().out.rstrip().endswith(
                "ONNX Runtime)" if backend == "onnx" else "torch)")
            decoded[backend], rate = sf.read(wav, dtype="float32")
            assert rate == 16000 and decoded[backend].size == audio.size
        # the graphs agree with torch to 1e-4 (tests/test_onnx_export.py), then 16-bit WAV
        np.testing.assert_allclose(decoded["onnx"], decoded["torch"], atol=1e-4 + LSB, rtol=0)


def test_backend_flags_on_encode_and_decode(bundle: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """``auto`` takes the model's graphs; what cannot run says so in one line (exit 2) and
    writes nothing."""
    out = tmp_path / "auto.dwc"
    assert main(["encode", str(SPEECH), str(out), "--model", str(bundle), "--n-q", "1"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("ONNX Runtime)")
    bare = tiny_codec().save_pretrained(tmp_path / "bare")  # no graphs: auto is torch
    for argv, message in [
        (["encode", str(SPEECH), str(tmp_path / "x.dwc"), "--model", str(bare), "--backend",
          "onnx"], "--backend onnx needs graphs"),
        (["decode", str(out), str(tmp_path / "x.wav"), "--model", str(bundle), "--int8"],
         "no int8 graphs"),
        (["decode", str(out), str(tmp_path / "x.wav"), "--model", str(bundle), "--int8",
          "--backend", "torch"], "cannot be combined with --backend torch"),
        (["encode", str(SPEECH), str(tmp_path / "x.dwc"), "--model", str(bundle),
          "--threads", "0"], "--threads must be"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"dwancodec {argv[0]}: error: ") and message in err, err
        assert len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "x.dwc").exists() and not (tmp_path / "x.wav").exists()


def test_encode_and_decode_without_torch(bundle: Path, tmp_path: Path) -> None:
    """With torch unimportable (a torch-free install), ``encode`` and ``decode`` run on the
    model's graphs and write the files the ONNX Runtime engine writes here; where torch is
    really needed (``--backend torch``, a model without graphs, ``export``) one line says why
    and what to do (exit 2), and nothing is written."""
    dwc, wav = tmp_path / "s.dwc", tmp_path / "s.wav"
    r = cli_without_torch("encode", SPEECH, dwc, "--model", bundle, "--n-q", "2")
    assert r.returncode == 0, r.stderr
    assert "1600 frames" in r.stdout and "ONNX Runtime" in r.stdout, r.stdout
    r = cli_without_torch("decode", dwc, wav, "--model", bundle)
    assert r.returncode == 0, r.stderr
    assert sf.info(wav).frames == 64000
    onnx = OnnxCodec(bundle / "onnx")
    ref_dwc, ref_wav = tmp_path / "ref.dwc", tmp_path / "ref.wav"
    encode_file(onnx, SPEECH, ref_dwc, n_q=2)
    decode_file(onnx, ref_dwc, ref_wav)
    assert dwc.read_bytes() == ref_dwc.read_bytes()
    assert wav.read_bytes() == ref_wav.read_bytes()

    bare = tiny_codec().save_pretrained(tmp_path / "bare")
    before = set(tmp_path.rglob("*"))
    for args, line in [
        (("encode", SPEECH, tmp_path / "t.dwc", "--model", bundle, "--backend", "torch"),
         "dwancodec encode: error: --backend torch runs the torch engine, and torch is not "
         "installed: pip install torch, or use --backend auto or onnx (the model's ONNX "
         "graphs)"),
        (("decode", dwc, tmp_path / "t.wav", "--model", bundle, "--backend", "torch"),
         "dwancodec decode: error: --backend torch runs the torch engine"),
        (("encode", SPEECH, tmp_path / "t.dwc", "--model", bare),
         f"dwancodec encode: error: {bare} has no ONNX graphs (MODEL/onnx/), so it runs on "
         "torch, which is not installed: pip install torch, or export its graphs"),
        (("export", "--out", tmp_path / "t"),
         "dwancodec export: error: this command needs torch, which is not installed"),
    ]:
        r = cli_without_torch(*args)
        assert r.returncode == 2, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(line), r.stderr
    assert set(tmp_path.rglob("*")) == before


# The README's torch-free install (`pip install --no-deps dwancodec` + numpy, onnxruntime,
# soundfile, soxr) has neither torch nor tqdm: a long file then codes without a progress bar.
BLOCK_TORCH_AND_TQDM = BLOCK_TORCH_PRELUDE.replace(
    'if name == "torch" or name.startswith("torch."):',
    'if name.partition(".")[0] in ("torch", "tqdm"):') + textwrap.dedent("""
    from dwancodec.cli import main
    rc = main(sys.argv[1:])
    assert not any(m.partition(".")[0] in ("torch", "tqdm") for m in sys.modules)
    sys.exit(rc)
""")


def test_long_file_without_torch_or_tqdm(bundle: Path, tmp_path: Path) -> None:
    """Files of 30 s and more get a progress bar where tqdm is installed; without it they are
    coded all the same, and nothing is printed in its place."""
    assert "tqdm" in BLOCK_TORCH_AND_TQDM
    src, dwc, wav = tmp_path / "long.wav", tmp_path / "long.dwc", tmp_path / "long.wav.flac"
    x = np.random.default_rng(0).standard_normal(31 * 16000) * 0.1
    sf.write(src, x.astype(np.float32), 16000, subtype="FLOAT")
    for args in (("encode", src, dwc, "--model", bundle, "--n-q", "1"),
                 ("decode", dwc, wav, "--model", bundle)):
        r = subprocess.run([sys.executable, "-c", BLOCK_TORCH_AND_TQDM, *map(str, args)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0 and r.stderr == "", r.stderr
    assert sf.info(wav).frames == 31 * 16000


@needs_shipped
def test_shipped_model_encodes_and_decodes_without_torch(tmp_path: Path) -> None:
    """The README's torch-free install: the shipped default codes ``.dwc`` files."""
    dwc, wav = tmp_path / "s.dwc", tmp_path / "s.wav"
    r = cli_without_torch("encode", SPEECH, dwc, "--bitrate", "3")
    assert r.returncode == 0, r.stderr
    h = bs.read_dwc(dwc).header  # entropy-coded: 3 kbps buys five stages (four at the fixed rate)
    assert (h.model, h.codes, h.n_q) == (OnnxCodec().identity, OnnxCodec().codes_identity, 5)
    assert h.version == 3 and h.packed_bitrate <= 3000
    r = cli_without_torch("decode", dwc, wav)
    assert r.returncode == 0, r.stderr
    assert sf.info(wav).frames == 64000 and "ONNX Runtime" in r.stdout



@needs_shipped
def test_int8_encode_writes_the_float_models_codes_within_the_contract(tmp_path: Path) -> None:
    """``encode --int8`` (torch-free) writes a file named for the model and its codes, since
    the int8 encoder codes into the same quantizer (codes identity unchanged); the float
    engine decodes it; its codes differ from float32's in some frames (another coding within
    the contract, not a bit-identical one) and its decode stays near the float file's."""
    meta = json.loads((default_model_dir() / "onnx" / SIDECAR).read_text())
    if not meta.get("int8", {}).get("passed"):
        pytest.skip("the shipped model has no int8 graphs")
    q, f = tmp_path / "q.dwc", tmp_path / "f.dwc"
    for path, extra in ((q, ["--int8"]), (f, [])):
        r = cli_without_torch("encode", SPEECH, path, *extra)
        assert r.returncode == 0, r.stderr
        assert ("ONNX Runtime int8" in r.stdout) == bool(extra), r.stdout
    hq, hf = bs.read_dwc(q).header, bs.read_dwc(f).header
    assert (hq.model, hq.codes, hq.length) == (hf.model, hf.codes, hf.length)
    cq, cf = bs.read_dwc(q).codes(), bs.read_dwc(f).codes()
    assert cq.shape == cf.shape and not np.array_equal(cq, cf)
    assert (cq[0] == cf[0]).mean() > 0.5  # the first stage mostly agrees
    for path in (q, f):
        r = cli_without_torch("decode", path, path.with_suffix(".wav"))
        assert r.returncode == 0, r.stderr
    a, _ = sf.read(q.with_suffix(".wav"), dtype="float32")
    b, _ = sf.read(f.with_suffix(".wav"), dtype="float32")
    assert a.shape == b.shape == (64000,)
    assert abs(float(np.sqrt(np.mean(a ** 2))) / float(np.sqrt(np.mean(b ** 2))) - 1) < 0.2

# The Python file API -----------------------------------------------------------------------
def test_file_api_takes_a_codec_an_onnx_codec_or_an_engine(bundle: Path, tmp_path: Path
                                                            ) -> None:
    """``encode_file`` / ``decode_file`` take what the sessions take (a ``Codec`` still works,
    as before); the same engine gives the same bytes whichever object names it."""
    codec, onnx = Codec.from_pretrained(bundle), OnnxCodec(bundle / "onnx")
    data = {}
    for name, obj in {"codec": codec, "torch engine": TorchEngine(codec), "onnx codec": onnx,
                      "onnx engine": OrtEngine(onnx)}.items():
        out, wav = tmp_path / f"{name}.dwc", tmp_path / f"{name}.wav"
        h = encode_file(obj, SPEECH, out, n_q=2)
        assert h == bs.read_dwc(out).header and (h.n_q, h.length) == (2, 64000)
        assert decode_file(obj, out, wav) == h and sf.info(wav).frames == 64000
        data[name] = (out.read_bytes(), wav.read_bytes())
    assert data["codec"] == data["torch engine"]
    assert data["onnx codec"] == data["onnx engine"]
    with torch.inference_mode():
        audio, _ = load_audio(SPEECH, 16000)
        want = codec.encode(torch.from_numpy(audio)[None, None], 2)[0].numpy()
    np.testing.assert_array_equal(bs.read_dwc(tmp_path / "codec.dwc").codes(), want)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(length=st.integers(1, 600), n_q=st.integers(1, 3), k=st.sampled_from([1, 2]))
def test_file_round_trip_is_the_sessions(length: int, n_q: int, k: int) -> None:
    """For any length and stages, on graphs of 1 or 2 frames per step: the file holds the
    sessions' codes, and decodes to exactly the input's length of the sessions' audio (the
    frames a 2-frame step holds back are flushed, not lost)."""
    engine = OrtEngine(OnnxCodec(exported() if k == 1 else
                                 exported(frames_per_step=2, full_sequence=False)))
    x = np.clip(0.3 * np.random.default_rng(length).standard_normal(length), -1, 1
                ).astype(np.float32)  # in range: the file reader would clip it
    enc = StreamingEncoder(engine, 1, n_q)
    codes = np.concatenate([enc.push(x[None]), enc.flush()], -1)[0]
    dec = StreamingDecoder(engine, 1)
    audio = np.concatenate([dec.push(codes[None]), dec.flush()], -1)[0, :length]
    with tempfile.TemporaryDirectory() as tmp:
        src, dwc, wav = Path(tmp) / "x.wav", Path(tmp) / "x.dwc", Path(tmp) / "y.wav"
        sf.write(src, x, 16000, subtype="FLOAT")
        h = encode_file(engine, src, dwc, n_q)
        np.testing.assert_array_equal(bs.read_dwc(dwc).codes(), codes)
        assert decode_file(engine, dwc, wav) == h and h.length == length
        y, _ = sf.read(wav, dtype="float32")
    assert y.size == length
    np.testing.assert_allclose(y, np.clip(audio, -1, 1), atol=1.5 * LSB, rtol=0)


# One header rule, one model check --------------------------------------------------------------
@pytest.mark.parametrize("kind", QUANTIZER_KINDS)
def test_one_header_for_the_torch_and_the_onnx_engine(kind: str) -> None:
    """``Header.for_engine`` writes one header for a model on either engine (and for the
    objects that name them), and each engine accepts the other's header as its own."""
    codec = tiny_codec(kind)
    onnx = OnnxCodec(exported() if kind == "fsq" else exported(kind, full_sequence=False))
    sources: list[Any] = [codec, TorchEngine(codec), onnx, OrtEngine(onnx)]
    headers = [Header.for_engine(s, 2, source_rate=44100) for s in sources]
    assert all(h == headers[0] for h in headers), headers
    h = headers[0]
    assert (h.model, h.codes, h.kind, h.version) == (codec.identity(), codec.codes_identity(),
                                                     kind, 2)
    assert (h.n_q, h.source_rate, h.num_codebooks) == (2, 44100, codec.num_codebooks)
    assert all(h.check_model(s) is True for s in sources)


def test_graphs_without_codes_identity_write_format_1(tmp_path: Path) -> None:
    """Graphs exported before codes identities (no ``model.codes``) write format-1 files, as
    before, which the torch engine of the same weights decodes (the same model identity)."""
    d = tmp_path / "old"
    shutil.copytree(exported(), d)
    meta = json.loads((d / SIDECAR).read_text())
    meta["model"] = {k: v for k, v in meta["model"].items() if k not in ("codes", "compatible")}
    (d / SIDECAR).write_text(json.dumps(meta))
    old = OnnxCodec(d)
    assert Header.for_engine(old).version == 1
    h = encode_file(old, SPEECH, tmp_path / "v1.dwc", n_q=1)
    assert h.version == bs.read_dwc(tmp_path / "v1.dwc").header.version == 1
    assert decode_file(tiny_codec(), tmp_path / "v1.dwc", tmp_path / "v1.wav").length == 64000


def test_format_1_on_the_onnx_engine_needs_the_writer_listed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A newer model with the old encoder (a decoder-only update) exported with its
    ``compatible`` list: the sidecar carries the list, and the ONNX engine decodes the old
    model's format-1 files; the same graphs with a sidecar from before the list existed refuse
    them, naming both models, and write nothing."""
    old = tiny_codec()
    newer = copy.deepcopy(old)
    with torch.no_grad():
        newer.decoder.head.out.weight.mul_(2.0)
    newer.compatible_identities = (old.identity(),)
    assert newer.codes_identity() == old.codes_identity() != ""
    res = export_onnx(newer, tmp_path / "listed", exporter="torchscript", try_offline=False)
    assert res.sidecar["model"]["compatible"] == [old.identity()]  # export writes the list
    listed = OnnxCodec(tmp_path / "listed")
    assert listed.compatible_identities == OrtEngine(listed).compatible_identities \
        == (old.identity(),)
    assert listed.describe()["compatible"] == [old.identity()]
    unlisted_dir = tmp_path / "unlisted"
    shutil.copytree(tmp_path / "listed", unlisted_dir)
    meta = json.loads((unlisted_dir / SIDECAR).read_text())
    del meta["model"]["compatible"]  # a sidecar written before the field: an empty list
    (unlisted_dir / SIDECAR).write_text(json.dumps(meta))
    assert OnnxCodec(unlisted_dir).compatible_identities == ()

    v2 = tmp_path / "v2.dwc"
    encode_file(old, SPEECH, v2, n_q=2)
    dwc = bs.read_dwc(v2)
    v1 = tmp_path / "v1.dwc"  # format 1 names the writing model alone
    v1.write_bytes(bs.to_bytes(Header(**{**dwc.header.__dict__, "codes": ""}), dwc.codes(),
                               dwc.header.length))
    out = tmp_path / "v1.wav"
    before = set(tmp_path.rglob("*"))
    with pytest.raises(BitstreamError, match=re.escape(
            f"encoded with model {old.identity()}, but the loaded model is {newer.identity()}")):
        decode_file(OnnxCodec(unlisted_dir), v1, out)
    assert main(["decode", str(v1), str(out), "--model", str(unlisted_dir), "--backend",
                 "onnx"]) == 2
    assert "encoded with model" in capsys.readouterr().err
    assert set(tmp_path.rglob("*")) == before  # nothing written on refusal
    assert decode_file(listed, v1, out).version == 1
    assert main(["decode", str(v1), str(tmp_path / "cli.wav"), "--model",
                 str(tmp_path / "listed"), "--backend", "onnx"]) == 0
    assert f"written by {old.identity()}, decoded by {newer.identity()}, same codes" in \
        capsys.readouterr().out
    # format 2 carries the codes identity: both sidecars decode it, to the same audio
    decode_file(OnnxCodec(unlisted_dir), v2, tmp_path / "v2.wav")
    got = sf.read(out, dtype="float32")[0]
    np.testing.assert_array_equal(got, sf.read(tmp_path / "v2.wav", dtype="float32")[0])
    np.testing.assert_array_equal(got, sf.read(tmp_path / "cli.wav", dtype="float32")[0])
    want = listed.decode(dwc.codes(), dwc.header.length)[0]  # the newer decoder ran
    np.testing.assert_allclose(got, np.clip(want, -1, 1), atol=1.5 * LSB, rtol=0)


# The sidecar's compatible list ------------------------------------------------------------------
BAD_COMPATIBLE = ["nope", {"a": 1}, 7, ["ok@1", 3], [""], ["caf\u00e9@1"], ["tab\there"],
                  ["x" * 256], ["m@1"] * 65]


@pytest.mark.parametrize("bad", BAD_COMPATIBLE, ids=[f"{b!r:.20}" for b in BAD_COMPATIBLE])
def test_sidecar_compatible_bad_values_name_the_file(bad: object, tmp_path: Path) -> None:
    d = tmp_path / "onnx"
    shutil.copytree(exported(), d)
    meta = json.loads((d / SIDECAR).read_text())
    meta["model"]["compatible"] = bad
    (d / SIDECAR).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=re.escape(
            f"{d / SIDECAR} is corrupt: model.compatible must be a JSON list of at most 64 "
            "model identities")):
        OnnxCodec(d)


def _valid(items: object) -> bool:
    """The rule as documented (docs/bitstream.md): a list of at most 64 identities of 1-255
    printable ASCII characters."""
    return isinstance(items, list) and len(items) <= 64 and all(
        isinstance(i, str) and 1 <= len(i) <= 255 and i.isascii() and i.isprintable()
        for i in items)


@settings(max_examples=40, deadline=None)
@given(items=st.one_of(
    st.lists(st.text(st.characters(codec="ascii"), max_size=8), max_size=4),
    st.lists(st.text(max_size=3), max_size=2),
    st.lists(st.just("dwancodec-16k@0123456789abcdef"), min_size=62, max_size=66),
    st.lists(st.integers(), min_size=1, max_size=2), st.integers(), st.text(max_size=4),
    st.none()))
def test_one_compatible_rule_for_weights_and_sidecar(items: object) -> None:
    """Any value: the safetensors metadata and the ONNX sidecar accept the same lists (and give
    them back as a tuple) and refuse the same values, with the same words."""
    meta = json.loads((exported() / SIDECAR).read_text())
    meta["model"]["compatible"] = items
    with tempfile.TemporaryDirectory() as tmp:
        sidecar, weights = Path(tmp) / SIDECAR, Path(tmp) / "model.safetensors"
        sidecar.write_text(json.dumps(meta))
        save_file({"x": np.zeros(1, np.float32)}, str(weights),
                  metadata={"compatible": json.dumps(items)})
        results = []
        for read in (lambda: load_sidecar(tmp)["model"]["compatible"],
                     lambda: read_compatible(weights)):
            try:
                results.append(tuple(read()))
            except ValueError as e:
                assert "must be a JSON list of at most 64 model identities" in str(e)
                results.append(None)
    assert results[0] == results[1] == (tuple(items) if _valid(items) else None)  # type: ignore[arg-type]


@needs_shipped
def test_shipped_files_decode_on_both_engines(tmp_path: Path) -> None:
    """A format-1 file of an earlier default decodes on the shipped model's ONNX engine and
    on its torch engine alike: the sidecar lists what the safetensors metadata lists."""
    onnx = OnnxCodec()
    listed = read_compatible(default_model_dir() / "model.safetensors")
    assert onnx.compatible_identities == listed and len(listed) == 2
    template = Header.for_engine(onnx, 2)
    codes = np.random.default_rng(0).integers(0, template.codebook_size, (2, 50))
    v1 = tmp_path / "v1.dwc"
    v1.write_bytes(bs.to_bytes(Header(**{**template.__dict__, "model": listed[-1],
                                         "codes": ""}), codes, 50 * 320))
    assert decode_file(onnx, v1, tmp_path / "onnx.wav").model == listed[-1]
    assert sf.info(tmp_path / "onnx.wav").frames == 50 * 320
