"""ONNX export: graph contract, onnx.checker, and long parity runs against the torch step.

Parity protocol (500+ consecutive steps, random chunk sizes on both sides): the same PCM is
pushed through the torch :class:`StreamingEncoder` and the runtime's ``OnnxStreamingEncoder``;
encoder latents must agree within 1e-4 and codes must be equal except where the first differing
stage has a latent within :data:`BOUNDARY_TOL` of an FSQ rounding boundary (counted, printed).
The torch codes are then decoded by both decoders with random frame chunking: audio within 1e-4.

The tiny graphs use the TorchScript exporter (a second to export; the dynamo exporter takes
~10 s per graph on this machine); the default config, which is what ships, uses the default
(dynamo) exporter.
"""

from __future__ import annotations

import atexit
import copy
import functools
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dwancodec.api import default_model_dir
from dwancodec.audio import load_audio
from dwancodec.cli import main
from dwancodec.export import SIDECAR, export_onnx, strip_parametrizations
from dwancodec.model import Codec
from dwancodec.runtime import OnnxCodec, OnnxStreamingDecoder, OnnxStreamingEncoder
from dwancodec.streaming import StreamingDecoder, StreamingEncoder
from dwancodec.streaming.state import sub_state, zero_state

from .conftest import DATA, make_codec

#: A code may differ only where the bounded latent is this close to a rounding boundary (x.5).
BOUNDARY_TOL = 1e-3
ATOL = 1e-4


# Shared exports (one per configuration per test process) ------------------------------------
_ROOT: list[Path] = []


def _root() -> Path:
    if not _ROOT:
        _ROOT.append(Path(tempfile.mkdtemp(prefix="dwancodec-onnx-test-")))
        atexit.register(shutil.rmtree, _ROOT[0], True)
    return _ROOT[0]


def tiny_codec(kind: str = "fsq") -> Codec:
    return make_codec("tiny", kind, seed=0)


@functools.cache
def exported(kind: str = "fsq", frames_per_step: int = 1, full_sequence: bool = True,
             exporter: str = "torchscript") -> Path:
    """Export ``make_codec("tiny", kind)`` once per process; returns the folder."""
    out = _root() / f"tiny-{kind}-{frames_per_step}-{int(full_sequence)}-{exporter}"
    export_onnx(tiny_codec(kind), out, frames_per_step=frames_per_step,
                full_sequence=full_sequence, exporter=exporter, try_offline=False)
    return out


# Parity helpers -------------------------------------------------------------------------------
def random_chunks(rng: np.random.Generator, total: int, hop: int) -> list[int]:
    """Chunk sizes from 1 sample to ~3 frames, some exactly one frame."""
    out, pos = [], 0
    while pos < total:
        kind = rng.integers(4)
        n = {0: 1, 1: int(rng.integers(1, hop)), 2: hop, 3: int(rng.integers(hop, 3 * hop))}[
            int(kind)]
        n = min(n, total - pos)
        out.append(n)
        pos += n
    return out


def fsq_boundary_explained(codec64: Codec, latents: torch.Tensor, codes_a: torch.Tensor,
                           codes_b: torch.Tensor, b: int, t: int) -> bool:
    """Is the code difference at (batch b, frame t) caused by a rounding-boundary latent?

    The first differing stage ``i`` must differ by one step in the channels that changed, each
    with a bounded latent (computed in float64 from the torch residual) within BOUNDARY_TOL of
    ``x.5``. Later stages see a different residual and may differ freely.
    """
    rq = codec64.quantizer
    diff = (codes_a[b, :, t] != codes_b[b, :, t]).nonzero()
    if len(diff) == 0:
        return True
    first = int(diff[0])
    residual = latents[b:b + 1, :, t:t + 1].double()
    with torch.inference_mode():
        for i in range(first):
            st = rq.stages[i]
            residual = residual - st.project_out(st.quantizer.decode(codes_a[b:b + 1, i, t:t + 1]))
        st = rq.stages[first]
        fsq = st.quantizer
        bounded = fsq.bound(st.project_in(residual).transpose(1, 2))[0, 0]  # [d]
        da = (codes_a[b, first, t] // fsq.basis) % fsq.levels
        db = (codes_b[b, first, t] // fsq.basis) % fsq.levels
    for ch in (da != db).nonzero().flatten().tolist():
        frac = float(bounded[ch] - torch.floor(bounded[ch]))
        if abs(int(da[ch]) - int(db[ch])) != 1 or abs(frac - 0.5) > BOUNDARY_TOL:
            return False
    return True


def run_parity(codec: Codec, onnx_dir: Path, signal: np.ndarray, seed: int,
               n_q_decode: int | None = None) -> dict[str, float]:
    """Stream ``signal`` ``[B, T]`` through torch and ONNX sessions with random chunking."""
    rng = np.random.default_rng(seed)
    hop = codec.hop_length
    rt = OnnxCodec(onnx_dir)
    b = signal.shape[0]
    t_enc, o_enc = StreamingEncoder(codec, b), OnnxStreamingEncoder(rt, b)
    t_codes, o_codes, o_lat, pos = [], [], [], 0
    for n in random_chunks(rng, signal.shape[1], hop):
        t_codes.append(t_enc.push(torch.from_numpy(signal[:, pos:pos + n])))
        c, lat = o_enc.push(signal[:, pos:pos + n], with_latents=True)
        o_codes.append(c)
        o_lat.append(lat)
        pos += n
    t_codes.append(t_enc.flush())
    c, lat = o_enc.flush(with_latents=True)
    o_codes.append(c)
    o_lat.append(lat)
    tc = torch.cat(t_codes, -1)
    oc = torch.from_numpy(np.concatenate(o_codes, -1))
    ol = np.concatenate(o_lat, -1)
    frames = tc.shape[-1]
    assert oc.shape == tc.shape and frames >= 500

    padded = np.pad(signal, ((0, 0), (0, frames * hop - signal.shape[1])))
    with torch.inference_mode():
        state = zero_state(codec.encoder_state_spec(), b)
        t_lat, _ = codec.encoder.step(torch.from_numpy(padded)[:, None],
                                      sub_state(state, "encoder"))
    lat_err = float(np.abs(ol - t_lat.numpy()).max())
    assert lat_err <= ATOL, f"encoder latents differ by {lat_err}"

    mismatch = (tc != oc).any(1).nonzero().tolist()  # (b, t) frames with any differing code
    codec64 = copy.deepcopy(codec).double() if mismatch else codec
    for bb, tt in mismatch:
        assert fsq_boundary_explained(codec64, t_lat, tc, oc, bb, tt), \
            f"codes differ at stream {bb} frame {tt} without a boundary latent"

    # decoder: same (torch) codes, random frame chunking, both sides
    codes = tc if n_q_decode is None else tc[:, :n_q_decode]
    t_dec, o_dec = StreamingDecoder(codec, b), OnnxStreamingDecoder(rt, b)
    t_audio, o_audio, f = [], [], 0
    while f < frames:
        n = int(rng.integers(0, 5))
        t_audio.append(t_dec.push(codes[..., f:f + n]))
        o_audio.append(o_dec.push(codes[..., f:f + n].numpy()))
        f += n
    ta = torch.cat(t_audio, -1).numpy()
    oa = np.concatenate(o_audio, -1)
    audio_err = float(np.abs(ta - oa).max())
    assert audio_err <= ATOL, f"decoded audio differs by {audio_err}"
    report = {"frames": frames, "latent_max_err": lat_err, "audio_max_err": audio_err,
              "boundary_code_mismatches": len(mismatch)}
    print(f"parity {codec.config.name}: {json.dumps(report)}")
    return report


def speech(seconds: float, batch: int = 2) -> np.ndarray:
    """Real speech (tests/data), tiled/reversed to ``seconds``, plus a noisier second stream."""
    x, _ = load_audio(DATA / "speech_en.flac", 16000)
    n = int(seconds * 16000)
    reps = [x, x[::-1]] * (n // (2 * len(x)) + 1)
    s = np.concatenate(reps)[:n]
    rng = np.random.default_rng(1)
    out = np.stack([s, 0.5 * s[::-1] + 0.05 * rng.standard_normal(n)])[:batch]
    return np.ascontiguousarray(out, dtype=np.float32)


# Tests ----------------------------------------------------------------------------------------
def test_graph_contract_and_checker() -> None:
    d = exported()
    meta = json.loads((d / SIDECAR).read_text())
    codec = tiny_codec()
    assert meta["sample_rate"] == 16000 and meta["hop_length"] == codec.hop_length
    assert meta["latency_samples"] == codec.latency_samples
    assert meta["model"]["identity"] == codec.identity()
    assert meta["model"]["codes"] == codec.codes_identity()
    assert meta["quantizer"]["levels"] == list(codec.config.quantizer.levels)
    assert meta["num_codebooks"] == 3 and meta["codebook_size"] == 60
    assert [e["key"] for e in meta["encoder_state"]] == list(codec.encoder_state_spec())
    assert [e["key"] for e in meta["decoder_state"]] == list(codec.decoder_state_spec())
    for e in meta["encoder_state"]:
        assert tuple(e["shape"]) == codec.encoder_state_spec()[e["key"]].shape
    assert set(meta["graphs"]) == {"encoder_step", "decoder_step", "encoder_full", "decoder_full"}
    for name, g in meta["graphs"].items():
        model = onnx.load(str(d / g["file"]))
        onnx.checker.check_model(model, full_check=True)
        ins = [i.name for i in model.graph.input]
        outs = [o.name for o in model.graph.output]
        assert ins == [i["name"] for i in g["inputs"]] and outs == [o["name"] for o in g["outputs"]]
        spec = meta["encoder_state" if name.startswith("encoder") else "decoder_state"]
        assert [i for i in ins if i.startswith("state_in.")] == [e["input"] for e in spec]
        assert [o for o in outs if o.startswith("state_out.")] == [e["output"] for e in spec]
        batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
        assert batch_dim.dim_param, f"{name}: batch axis is not dynamic"
    enc = onnx.load(str(d / "encoder_step.onnx"))
    codes_out = enc.graph.output[0]
    assert codes_out.name == "codes"
    assert codes_out.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert enc.graph.output[1].name == "latents"
    assert enc.graph.input[0].type.tensor_type.shape.dim[2].dim_value == codec.hop_length


@pytest.mark.parametrize("batch", [1, 3])
def test_dynamic_batch_matches_torch_step(batch: int) -> None:
    codec, rt = tiny_codec(), OnnxCodec(exported())
    g = torch.Generator().manual_seed(batch)
    state_t = zero_state(codec.encoder_state_spec(), batch)
    state_o = rt.initial_encoder_state(batch)
    for _ in range(5):
        audio = 0.3 * torch.randn(batch, 1, codec.hop_length, generator=g)
        with torch.inference_mode():
            codes_t, state_t = codec.encoder_step(audio, state_t)
        codes_o, _, state_o = rt.encoder_step(audio.numpy(), state_o)
        assert codes_o.shape == codes_t.shape and codes_o.dtype == np.int64
        for k in state_t:
            np.testing.assert_allclose(state_o[k], state_t[k].numpy(), atol=ATOL, rtol=0)


def test_parity_tiny_500_steps_random_chunking() -> None:
    codec = tiny_codec()
    rep = run_parity(codec, exported(), speech(1.3), seed=0)  # 520 frames per stream, B=2
    assert rep["frames"] >= 500
    rep = run_parity(codec, exported(), speech(1.5, batch=1), seed=1, n_q_decode=2)
    assert rep["frames"] >= 600


@pytest.mark.parametrize("kind", ["lfq", "ema", "origin"])
def test_other_quantizer_kinds_export(kind: str) -> None:
    """All quantizer kinds export; latents/audio agree, codes agree but for rare near-ties."""
    codec, d = tiny_codec(kind), exported(kind, full_sequence=False)
    rt = OnnxCodec(d)
    x = speech(0.5)
    enc = OnnxStreamingEncoder(rt, 2)
    codes_o, lat_o = enc.push(x, with_latents=True)
    with torch.inference_mode():
        codes_t = codec.encode(torch.from_numpy(x)[:, None])
        lat_t = codec.encoder(torch.from_numpy(x)[:, None])
        audio_t = codec.decode(codes_t)[:, 0].numpy()
    np.testing.assert_allclose(lat_o, lat_t.numpy(), atol=ATOL, rtol=0)
    assert (codes_o != codes_t.numpy()).any(1).mean() < 0.01
    audio_o = OnnxStreamingDecoder(rt, 2).push(codes_t.numpy())
    np.testing.assert_allclose(audio_o, audio_t, atol=ATOL, rtol=0)


def test_frames_per_step_two() -> None:
    codec, d = tiny_codec(), exported(frames_per_step=2, full_sequence=False)
    rt = OnnxCodec(d)
    assert rt.frames_per_step == 2
    x = speech(0.2)[:1]
    enc = rt.streaming_encoder()
    pieces = [enc.push(x[:, i:i + 37]) for i in range(0, x.shape[1], 37)] + [enc.flush()]
    codes = np.concatenate(pieces, -1)
    with torch.inference_mode():
        ref = codec.encode(torch.from_numpy(x)[:, None]).numpy()
        audio_ref = codec.decode(torch.from_numpy(ref))[:, 0].numpy()
    assert codes.shape == ref.shape
    assert (codes != ref).any(1).mean() < 0.01
    dec = rt.streaming_decoder()
    out = [dec.push(ref[..., i:i + 3]) for i in range(0, ref.shape[-1], 3)]
    assert dec.pending_frames in (0, 1)
    audio = np.concatenate([*out, dec.flush()], -1)
    np.testing.assert_allclose(audio, audio_ref, atol=ATOL, rtol=0)


def test_default_config_export_parity() -> None:
    """The configuration that ships (the bundled model if present), dynamo exporter."""
    bundle = default_model_dir()
    if (bundle / "model.safetensors").exists():
        codec = Codec.from_pretrained(bundle)
    else:
        codec = Codec.from_config("default", seed=0)
    out = _root() / "default"
    res = export_onnx(codec, out, try_offline=False)
    assert res.sidecar["exporter"] == "dynamo"
    for g in res.sidecar["graphs"].values():
        onnx.checker.check_model(onnx.load(str(out / g["file"])), full_check=True)
    assert res.sidecar["optimizations"]["table_decode_stages"] == codec.num_codebooks
    rep = run_parity(codec, out, speech(10.4, batch=1), seed=2)
    assert rep["frames"] >= 500


def test_export_keeps_codec_and_strips_parametrizations() -> None:
    codec = tiny_codec()
    before = codec.identity()
    lin = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv1d(2, 3, 3))
    x = torch.randn(1, 2, 5)
    y = lin(x)
    assert strip_parametrizations(lin) == 1
    assert not torch.nn.utils.parametrize.is_parametrized(lin)
    torch.testing.assert_close(lin(x), y)
    legacy = torch.nn.utils.weight_norm(torch.nn.Linear(3, 3))
    assert strip_parametrizations(legacy) == 1 and not hasattr(legacy, "weight_g")
    exported()
    assert codec.identity() == before


def test_cli_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    tiny_codec().save_pretrained(bundle)
    out = tmp_path / "onnx"
    rc = main(["export", "--model", str(bundle), "--out", str(out), "--exporter", "torchscript",
               "--no-optimize", "--frames-per-step", "1", "-q"])
    assert rc == 0
    meta = json.loads((out / SIDECAR).read_text())
    assert meta["model"]["identity"] == tiny_codec().identity()
    assert meta["optimizations"]["table_decode_stages"] == 0  # --no-optimize: the plain graph
    assert (out / "encoder_step.onnx").exists() and (out / "decoder_step.onnx").exists()
    assert main(["export", "--model", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert main(["export", "--config", "tiny", "--out", str(out), "--frames-per-step", "0",
                 "--exporter", "torchscript"]) == 2
    assert main(["export", "--config", "tiny", "--out", str(out), "--n-q", "9",
                 "--exporter", "torchscript"]) == 2
    err = capsys.readouterr().err
    assert "frames_per_step" in err and "n_q" in err and "Traceback" not in err


def test_boundary_rule_accepts_only_boundary_flips() -> None:
    """The tolerance rule of the parity test: a one-step flip of a channel whose bounded latent
    sits on x.5 is explained; the same flip of a channel far from a boundary is not."""
    codec64 = copy.deepcopy(tiny_codec()).double()
    st = codec64.quantizer.stages[0]
    fsq = st.quantizer
    lv = fsq.levels.double()
    half_l = (lv - 1) * (1 + 1e-3) / 2
    offset = torch.where(fsq.levels % 2 == 0, 0.5, 0.0).double()
    target = torch.tensor([0.5 + 1e-5, 0.1, -0.8], dtype=torch.float64)  # ch 0 on a boundary
    z = torch.atanh((target + offset) / half_l) - torch.atanh(offset / half_l)
    w = st.project_in.weight[:, :, 0]  # [d, D]
    latent = torch.linalg.lstsq(w, (z - st.project_in.bias)[:, None]).solution  # [D, 1]
    latents = latent[None].float()  # [1, D, 1]
    with torch.inference_mode():
        codes = codec64.quantizer.encode(latents.double())
        assert torch.allclose(fsq.bound(st.project_in(latents.double()).transpose(1, 2))[0, 0],
                              target, atol=1e-9)
    digits = (codes[0, 0, 0] // fsq.basis) % fsq.levels
    for ch, expected in ((0, True), (1, False)):
        d = digits.clone()
        d[ch] += 1 if d[ch] + 1 < fsq.levels[ch] else -1
        flipped = codes.clone()
        flipped[0, 0, 0] = int((d * fsq.basis).sum())
        assert fsq_boundary_explained(codec64, latents, codes, flipped, 0, 0) is expected


def test_store_exact_half_is_lossless() -> None:
    """Few-valued tables -> uint8 + Gather, fp16-exact weights -> fp16 + Cast, the rest kept;
    ONNX Runtime computes bit for bit the same outputs from the smaller graph."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from dwancodec.export import store_exact_half

    rng = np.random.default_rng(0)
    w_half = rng.standard_normal((64, 32)).astype(np.float16).astype(np.float32)
    w_table = rng.choice(np.float32([-1 / 3, 0, 1 / 3, 2 / 3]), (64, 32)).astype(np.float32)
    w_plain = rng.standard_normal((64, 32)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", n], [f"y_{n}"]) for n in ("wh", "wt", "wp")]
    nodes += [helper.make_node("Sum", ["y_wh", "y_wt", "y_wp"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 32])],
        [numpy_helper.from_array(w, n) for w, n in ((w_half, "wh"), (w_table, "wt"),
                                                     (w_plain, "wp"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = {"x": rng.standard_normal((5, 64)).astype(np.float32)}

    def run(m: onnx.ModelProto) -> np.ndarray:
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, x)[0]

    before, size_before = run(model), model.ByteSize()
    res = store_exact_half(model)
    onnx.checker.check_model(model, full_check=True)
    assert res["initializers"] == 2
    dtypes = {t.name: t.data_type for t in model.graph.initializer}
    assert dtypes["wh__f16"] == TensorProto.FLOAT16 and dtypes["wt__index"] == TensorProto.UINT8
    assert dtypes["wp"] == TensorProto.FLOAT
    assert model.ByteSize() < size_before - res["bytes_saved"] + 512  # + a few nodes
    np.testing.assert_array_equal(run(model), before)


def test_half_bundle_exports_smaller_and_identical(tmp_path: Path) -> None:
    """A bundle saved in float16 loads as the model it names, and its graphs shrink."""
    half = tiny_codec().save_pretrained(tmp_path / "half", dtype=torch.float16)
    codec = Codec.from_pretrained(half)
    from safetensors import safe_open

    with safe_open(str(half / "model.safetensors"), "pt") as f:
        assert f.metadata()["identity"] == codec.identity()
    res = export_onnx(codec, tmp_path / "onnx", exporter="torchscript", try_offline=False)
    notes = [g["notes"]["half_storage"] for g in res.sidecar["graphs"].values()]
    assert all(n["initializers"] > 0 for n in notes)
    assert res.sidecar["verification"]  # the smaller graphs passed the torch parity check


def test_shipped_onnx_matches_shipped_weights() -> None:
    """The ONNX pair in the package was exported from the weights in the package: same model
    identity, and the runtime opens it with no argument. Shipping one without the other fails."""
    from dwancodec.runtime import shipped_onnx_dir

    has_weights = (default_model_dir() / "model.safetensors").exists()
    has_onnx = (shipped_onnx_dir() / SIDECAR).exists()
    assert has_weights == has_onnx, "ship the safetensors bundle and its ONNX export together"
    if not has_weights:
        with pytest.raises(FileNotFoundError, match="not installed"):
            OnnxCodec()
        pytest.skip("no default model installed")
    runtime = OnnxCodec()
    codec = Codec.from_pretrained(default_model_dir())
    assert runtime.identity == codec.identity()
    pcm = speech(2.0, batch=1)
    enc = runtime.streaming_encoder(1)
    codes = np.concatenate([enc.push(pcm), enc.flush()], -1)
    with torch.inference_mode():
        ref = codec.encode(torch.from_numpy(pcm)[:, None]).numpy()
    assert codes.shape == ref.shape
    assert (codes == ref).mean() > 0.99  # boundary ties aside (see test_parity_* for the rule)


def test_int8_variant_contract_is_measured_and_recorded(tmp_path: Path) -> None:
    """`export_onnx(int8=True)` measures the int8 graphs on speech and keeps them only with the
    contract met; kept files are among the verified digests (the runtime opens only those) and
    run; a failed contract leaves no int8 file and no digest of one behind."""
    pytest.importorskip("pesq")
    data = tmp_path / "val" / "speech-wb"
    data.mkdir(parents=True)
    shutil.copy(DATA / "speech_en.flac", data / "speech_en.flac")
    res = export_onnx(tiny_codec(), tmp_path / "onnx", exporter="torchscript",
                      try_offline=False, int8=True, int8_data=tmp_path / "val")
    meta = json.loads((tmp_path / "onnx" / SIDECAR).read_text())
    report = meta["int8"]
    assert report["clips"] == ["speech_en.flac"]
    assert report["passed"] == (report["pesq_wb_drop"] <= report["tolerance"])
    for name in ("encoder_step", "decoder_step"):
        g = meta["graphs"][name]
        digests = g["sha256"]
        if "int8" in g:
            assert report["passed"] and name in report["graphs"]
            assert (tmp_path / "onnx" / g["int8"]["file"]).exists()
            assert g["int8"]["file"] in digests
        else:
            assert not any(".int8." in f for f in digests)
    assert not [f for f in (tmp_path / "onnx").glob("*.int8.onnx")
                if not any(f.name == meta["graphs"][n].get("int8", {}).get("file")
                           for n in meta["graphs"])]
    if report["passed"]:
        q8, f32 = (OnnxCodec(tmp_path / "onnx", precision=p) for p in ("int8", "float32"))
        pcm = speech(1.0, batch=1)
        c8, c32 = q8.encode(pcm), f32.encode(pcm)
        assert c8.shape == c32.shape
        y8, y32 = q8.decode(c32), f32.decode(c32)
        assert np.isfinite(y8).all() and np.abs(y8 - y32).max() < 0.1
    assert res.sidecar["verification"]


@settings(max_examples=40, deadline=None)
@given(channels=st.integers(2, 40), kernel=st.integers(2, 9), extra=st.integers(0, 40),
       batch=st.integers(1, 5), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_depthwise_conv_rewrites_compute_the_conv(channels: int, kernel: int, extra: int,
                                                  batch: int, bias: bool, seed: int) -> None:
    """The graph pass turns a depthwise ``Conv`` into a one-step ``Mul`` + ``ReduceSum``
    (input length = kernel) or a banded ``MatMul`` (length up to BANDED_MAX_RATIO kernels), and
    keeps it beyond; every form gives the Conv's output (ONNX Runtime, atol 1e-5)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from dwancodec.export.passes import BANDED_MAX_RATIO, rewrite_single_step_convs

    rng = np.random.default_rng(seed)
    length = kernel + extra
    w = rng.standard_normal((channels, 1, kernel)).astype(np.float32)
    b = rng.standard_normal(channels).astype(np.float32)
    inits = [numpy_helper.from_array(w, "w")] + ([numpy_helper.from_array(b, "b")] if bias
                                                 else [])
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["y"], group=channels)],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", channels, length])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    ref_bytes = model.SerializeToString()
    counts = rewrite_single_step_convs(model)
    expect = ("depthwise" if length == kernel else "depthwise_banded"
              if length <= BANDED_MAX_RATIO * kernel else None)
    assert {k: v for k, v in counts.items() if v} == ({expect: 1} if expect else {})
    assert any(n.op_type == "Conv" for n in model.graph.node) == (expect is None)
    x = rng.standard_normal((batch, channels, length)).astype(np.float32)
    run = [ort.InferenceSession(m, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
           for m in (ref_bytes, model.SerializeToString())]
    assert run[0].shape == run[1].shape
    np.testing.assert_allclose(run[1], run[0], atol=1e-5)


def test_int8_keeps_the_synthesis_basis_float(tmp_path: Path) -> None:
    """The int8 decoder quantizes every learned MatMul weight but not the head's fixed
    synthesis basis (its rounding is noise on every output sample): the basis MatMul is still
    a float MatMul reading ``*.basis``, and the others are MatMulNBits. (The default dynamo
    exporter keeps the buffer's name; the TorchScript one folds it into a Constant node,
    which the quantizer never touches.)"""
    from dwancodec.export.passes import inline_stored_half
    from dwancodec.export.quantize import quantize_int8

    export_onnx(tiny_codec(), tmp_path, try_offline=False, int8=False)
    meta = json.loads((tmp_path / SIDECAR).read_text())
    src = tmp_path / meta["graphs"]["decoder_step"]["file"]
    float_model = onnx.load(str(src))
    inline_stored_half(float_model)
    consts = {t.name for t in float_model.graph.initializer}
    learned = [n for n in float_model.graph.node if n.op_type == "MatMul"
               and n.input[1] in consts and not n.input[1].endswith(".basis")]
    counts = quantize_int8(src, tmp_path / "q.onnx")
    assert counts["float_basis"] == 1
    q = onnx.load(str(tmp_path / "q.onnx"))
    basis = [n for n in q.graph.node if n.op_type == "MatMul"
             and any(i.endswith(".basis") for i in n.input)]
    assert len(basis) == 1
    assert counts["MatMulNBits"] == len(learned) > 0
