"""The torch-free runtime: sessions re-frame like the torch ones, masked resets, explicit-state
steps, whole-array coding, buffers, and loud errors on bad input (same rules as the torch API)."""

from __future__ import annotations

import gc
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dwancodec.audio import load_audio
from dwancodec.engine import Engine
from dwancodec.runtime import (
    SIDECAR,
    OnnxCodec,
    OnnxStreamingDecoder,
    OnnxStreamingEncoder,
    OrtEngine,
    session_options,
)
from dwancodec.streaming import StreamingDecoder, StreamingEncoder, TorchEngine

from .conftest import DATA
from .test_onnx_export import ATOL, exported, tiny_codec


def runtime(**kw: object) -> OnnxCodec:
    return OnnxCodec(exported(), **kw)  # type: ignore[arg-type]


RT_STEP = None


def rt_step() -> OnnxCodec:
    """Step graphs only (whole-array coding loops the step graph): exact comparisons."""
    global RT_STEP
    if RT_STEP is None:
        RT_STEP = runtime(use_full_graphs=False)
    return RT_STEP


def stream(enc: OnnxStreamingEncoder, x: np.ndarray, chunks: list[int]) -> np.ndarray:
    out, pos = [], 0
    for c in chunks:
        out.append(enc.push(x[:, pos:pos + c]))
        pos += c
    out.append(enc.push(x[:, pos:]))
    out.append(enc.flush())
    return np.concatenate(out, -1)


def whole_coding(engine: str) -> tuple[Engine, Callable[[np.ndarray], np.ndarray],
                                      Callable[[np.ndarray], np.ndarray]]:
    """An engine with numpy results, and its offline encode ``[B, T] -> codes`` and decode
    ``codes -> [B, F * hop]``."""
    if engine == "onnx":
        rt = rt_step()
        return OrtEngine(rt), lambda x: rt.encode(x[:, None]), rt.decode
    codec = tiny_codec()

    def enc(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return codec.encode(torch.from_numpy(x)[:, None]).numpy()

    def dec(c: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return codec.decode(torch.from_numpy(c))[:, 0].numpy()

    return TorchEngine(codec, numpy_output=True), enc, dec


@pytest.mark.parametrize("engine", ["onnx", "torch"])
@given(chunks=st.lists(st.one_of(st.just(1), st.integers(1, 120), st.integers(121, 3000)),
                       min_size=1, max_size=25),
       frame_chunks=st.lists(st.integers(0, 6), min_size=1, max_size=20),
       seed=st.integers(0, 2**16))
def test_any_chunking_equals_whole(engine: str, chunks: list[int], frame_chunks: list[int],
                                   seed: int) -> None:
    """The shared sessions over either engine re-frame exactly: any chunking of the input and
    of the codes gives that engine's whole-array result."""
    e, encode, decode = whole_coding(engine)
    x = (0.3 * np.random.default_rng(seed).standard_normal((2, sum(chunks) + 7))).astype(
        np.float32)
    whole = encode(x)  # two signals
    got = stream(StreamingEncoder(e, 2), x, chunks)
    np.testing.assert_array_equal(got, whole)
    audio = decode(whole)
    dec, pieces, f = StreamingDecoder(e, 2), [], 0
    for n in frame_chunks * (whole.shape[-1] // max(1, sum(frame_chunks)) + 1):
        pieces.append(dec.push(whole[..., f:f + n]))
        f += n
    pieces += [dec.push(whole[..., f:]), dec.flush()]
    np.testing.assert_allclose(np.concatenate(pieces, -1), audio,
                               atol=0 if engine == "onnx" else 1e-5, rtol=0)


def test_full_graphs_match_step_graphs() -> None:
    x, _ = load_audio(DATA / "speech_en.flac", 16000)
    x = x[None, :16000]
    full, step = runtime(), rt_step()
    assert full.use_full_graphs and not step.use_full_graphs
    a, b = full.encode(x), step.encode(x)
    assert a.shape == b.shape == (1, 3, 400)
    assert (a != b).any(1).mean() < 0.01  # float-order differences may flip boundary codes
    np.testing.assert_allclose(full.decode(b), step.decode(b), atol=ATOL, rtol=0)


def test_masked_reset_matches_torch_sessions() -> None:
    codec, rt = tiny_codec(), rt_step()
    hop = codec.hop_length
    rng = np.random.default_rng(0)
    x = (0.3 * rng.standard_normal((3, 10 * hop + 7))).astype(np.float32)
    y = (0.3 * rng.standard_normal((3, 8 * hop))).astype(np.float32)
    t_enc, o_enc = StreamingEncoder(codec, 3), OnnxStreamingEncoder(rt, 3)
    t_out = [t_enc.push(torch.from_numpy(x))]
    o_out = [o_enc.push(x)]
    t_enc.reset([1])
    o_enc.reset([1])
    assert o_enc.pending_samples == 7
    t_out += [t_enc.push(torch.from_numpy(y)), t_enc.flush()]
    o_out += [o_enc.push(y), o_enc.flush()]
    np.testing.assert_array_equal(np.concatenate(o_out, -1), torch.cat(t_out, -1).numpy())

    codes = rt.encode(np.concatenate([x, y], -1)[:, None])
    t_dec, o_dec = StreamingDecoder(codec, 3), OnnxStreamingDecoder(rt, 3)
    t_a = [t_dec.push(torch.from_numpy(codes[..., :4]))]
    o_a = [o_dec.push(codes[..., :4])]
    mask = np.array([False, True, True])
    t_dec.reset(torch.from_numpy(mask))
    o_dec.reset(mask)
    t_a.append(t_dec.push(torch.from_numpy(codes[..., 4:])))
    o_a.append(o_dec.push(codes[..., 4:]))
    np.testing.assert_allclose(np.concatenate(o_a, -1), torch.cat(t_a, -1).numpy(), atol=ATOL,
                               rtol=0)


def test_fewer_stages_and_n_q() -> None:
    codec, rt = tiny_codec(), rt_step()
    x = (0.3 * np.random.default_rng(1).standard_normal((1, 2000))).astype(np.float32)
    c3 = rt.encode(x)
    c2 = rt.encode(x, n_q=2)
    np.testing.assert_array_equal(c2, c3[:, :2])  # residual: a prefix of the full code
    enc = rt.streaming_encoder(n_q=1)
    assert enc.push(x).shape == (1, 1, 2000 // codec.hop_length)
    with torch.inference_mode():
        ref = codec.decode(torch.from_numpy(c2))[:, 0].numpy()
    np.testing.assert_allclose(rt.decode(c2), ref, atol=ATOL, rtol=0)
    assert rt.bitrate(2) == pytest.approx(codec.bitrate(2))
    assert rt.n_q_for_bitrate(5.0) == codec.n_q_for_bitrate(5.0)


def test_step_api_with_explicit_state() -> None:
    codec, rt = tiny_codec(), runtime()
    hop = codec.hop_length
    x = (0.3 * np.random.default_rng(2).standard_normal((2, 1, 5 * hop))).astype(np.float32)
    state = rt.initial_encoder_state(2)
    codes = []
    for i in range(5):
        c, lat, state = rt.encoder_step(x[..., i * hop:(i + 1) * hop], state)
        assert lat.shape == (2, codec.config.latent_dim, 1)
        codes.append(c)
    np.testing.assert_array_equal(np.concatenate(codes, -1), rt_step().encode(x))
    whole, _, _ = rt.encoder_step(x, rt.initial_encoder_state(2))  # any length: full graph
    assert whole.shape == (2, 3, 5)
    audio, dstate = rt.decoder_step(whole[:, :, :1], rt.initial_decoder_state(2))
    assert audio.shape == (2, 1, hop) and set(dstate) == set(rt.decoder_state_spec)


def test_step_runner_buffers_equal_plain_run() -> None:
    rt = rt_step()
    runner = rt.encoder_runner(1)
    sess = rt.session("encoder_step")
    state = rt.initial_encoder_state(1)
    rng = np.random.default_rng(3)
    for _ in range(4):
        a = (0.3 * rng.standard_normal((1, 1, rt.hop_length))).astype(np.float32)
        runner.inputs["audio"][...] = a
        out = runner.run()
        names = [o.name for o in sess.get_outputs()]
        ref = dict(zip(names, sess.run(names, {"audio": a, **{f"state_in.{k}": v for k, v in
                                                                 state.items()}}), strict=True))
        np.testing.assert_array_equal(out["codes"], ref["codes"])
        np.testing.assert_array_equal(out["latents"], ref["latents"])
        state = {k: ref[f"state_out.{k}"] for k in state}
        for k, v in runner.state.items():
            np.testing.assert_array_equal(v, state[k])


def test_file_and_integer_input(tmp_path: Path) -> None:
    rt = runtime()
    codes = rt.encode(DATA / "speech_en.flac", n_q=2)
    x, _ = load_audio(DATA / "speech_en.flac", 16000)
    assert codes.shape == (1, 2, -(-len(x) // rt.hop_length))
    pcm16 = np.round(x[:4000] * 32767).astype(np.int16)
    np.testing.assert_array_equal(rt.encode(pcm16)[..., :5],
                                  rt.encode(pcm16.astype(np.float32) / 32768)[..., :5])
    at_8k = rt.encode(x[:8000:2], sample_rate=8000)
    assert at_8k.shape[-1] == 8000 // rt.hop_length
    audio = rt.decode(codes[0], length=len(x))
    assert audio.shape == (1, len(x)) and audio.dtype == np.float32


def test_threads_and_sidecar_errors(tmp_path: Path) -> None:
    rt2 = OnnxCodec(exported(), num_threads=2)
    assert rt2.num_threads == 2
    x = (0.3 * np.random.default_rng(4).standard_normal((1, 1000))).astype(np.float32)
    np.testing.assert_array_equal(rt2.encode(x), runtime().encode(x))
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="num_threads"):
            session_options(bad)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="dwancodec export"):
        OnnxCodec(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(exported(), broken)
    (broken / SIDECAR).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        OnnxCodec(broken)
    meta = json.loads((exported() / SIDECAR).read_text())
    (broken / SIDECAR).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ValueError, match="format version"):
        OnnxCodec(broken)
    for codes in ("XYZ", 7, "0123456789ABCDEF"):
        (broken / SIDECAR).write_text(json.dumps({**meta, "model": {**meta["model"],
                                                                    "codes": codes}}))
        with pytest.raises(ValueError, match=r"model\.codes must be 16 lower-case hex"):
            OnnxCodec(broken)
    old = {**meta, "model": {k: v for k, v in meta["model"].items() if k != "codes"}}
    (broken / SIDECAR).write_text(json.dumps(old))  # exported before codes identities
    assert OnnxCodec(broken).codes_identity == ""
    (broken / SIDECAR).write_text(json.dumps(meta))
    (broken / "decoder_step.onnx").unlink()
    with pytest.raises(FileNotFoundError, match="decoder_step"):
        OnnxCodec(broken)


F32 = np.float32
BAD_PCM = [
    ([0.0] * 40, "numpy array"),
    (np.zeros((1, 40), np.int16), "floating point"),
    (np.zeros((2, 40), F32), "shape"),
    (np.zeros((1, 2, 40), F32), "shape"),
    (np.full((1, 40), np.nan, F32), "NaN"),
    (np.full((1, 40), np.inf, F32), "NaN or Inf"),
]


@pytest.mark.parametrize(("pcm", "match"), BAD_PCM)
def test_bad_pcm(pcm: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rt_step().streaming_encoder().push(pcm)  # type: ignore[arg-type]


BAD_CODES = [
    (np.zeros((1, 3, 2), np.float32), "integer"),
    (np.zeros((1, 3, 2), np.bool_), "integer"),
    (np.zeros((3, 2), np.int64), "shape"),
    (np.zeros((1, 4, 2), np.int64), "codebooks"),
    (np.full((1, 3, 2), 60, np.int64), "out of range"),
    (np.full((1, 3, 2), -1, np.int64), "out of range"),
    (np.zeros((2, 3, 2), np.int64), "batch"),
    ([[[0]]], "numpy array"),
]


@pytest.mark.parametrize(("codes", "match"), BAD_CODES)
def test_bad_codes(codes: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rt_step().streaming_decoder().push(codes)  # type: ignore[arg-type]


def test_bad_step_inputs() -> None:
    rt = runtime()
    hop = rt.hop_length
    a = np.zeros((1, 1, hop), np.float32)
    s = rt.initial_encoder_state(1)
    with pytest.raises(ValueError, match="samples per step"):
        rt_step().encoder_step(np.zeros((1, 1, hop + 1), np.float32), s)
    with pytest.raises(ValueError, match="samples per step"):
        rt_step().encoder_step(np.zeros((1, 1, 2 * hop), np.float32), s)
    with pytest.raises(ValueError, match="floating point"):
        rt.encoder_step(a.astype(np.int32), s)
    with pytest.raises(ValueError, match=r"\[B, 1, T\]"):
        rt.encoder_step(a[:, 0], s)
    with pytest.raises(ValueError, match="NaN"):
        rt.encoder_step(a + np.nan, s)
    missing = dict(s)
    key = sorted(missing)[0]
    del missing[key]
    with pytest.raises(ValueError, match="missing"):
        rt.encoder_step(a, missing)
    with pytest.raises(ValueError, match="unknown"):
        rt.encoder_step(a, {**s, "encoder.nope": s[key]})
    with pytest.raises(ValueError, match="expected"):
        rt.encoder_step(a, {**s, key: s[key].astype(np.float64)})
    with pytest.raises(ValueError, match="expected"):
        rt.encoder_step(a, {**s, key: np.zeros((2, *s[key].shape[1:]), np.float32)})
    with pytest.raises(ValueError, match="frame"):
        rt_step().decoder_step(np.zeros((1, 3, 2), np.int64), rt.initial_decoder_state(1))
    with pytest.raises(ValueError, match="missing"):
        rt.decoder_step(np.zeros((1, 3, 1), np.int64), {})
    with pytest.raises(ValueError, match="n_q"):
        rt.streaming_encoder(n_q=4)
    with pytest.raises(ValueError, match="n_q"):
        rt.encode(np.zeros(100, np.float32), n_q=0)
    with pytest.raises(ValueError, match="batch_size"):
        rt.streaming_decoder(0)
    with pytest.raises(ValueError, match="empty"):
        rt.encode(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="stream indices"):
        rt.streaming_encoder().reset([1])


def test_long_run_keeps_memory_flat() -> None:
    rt = rt_step()
    enc, dec = rt.streaming_encoder(), rt.streaming_decoder()
    chunk = (0.1 * np.random.default_rng(5).standard_normal((1, 401))).astype(np.float32)
    proc = psutil.Process()
    rss = []
    for i in range(1200):  # 30 s of audio (12000 steps each way), 25 ms chunks
        dec.push(enc.push(chunk))
        if i % 120 == 0:
            gc.collect()
            rss.append(proc.memory_info().rss)
    growth_mb = (max(rss[2:]) - rss[2]) / 2**20
    print(f"runtime RSS growth over 30 s of audio after warm-up: {growth_mb:.2f} MB")
    assert growth_mb < 5
