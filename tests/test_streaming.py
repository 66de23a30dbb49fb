"""Streaming == offline, for random chunkings (property tests), every quantizer kind, through
the shared sessions over the torch and the ONNX Runtime engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from dwancodec.config import QUANTIZER_KINDS
from dwancodec.streaming import StreamingDecoder, StreamingEncoder

from .conftest import make_codec

CODECS = {kind: make_codec("tiny", kind) for kind in QUANTIZER_KINDS}


@st.composite
def chunking(draw: st.DrawFn, max_total: int = 24000) -> list[int]:
    """Chunk sizes: 1-sample runs, odd sizes, and chunks above one second."""
    sizes = st.one_of(
        st.just(1), st.integers(1, 50), st.integers(51, 3000), st.integers(16001, 20000)
    )
    chunks = draw(st.lists(sizes, min_size=1, max_size=40))
    out, total = [], 0
    for c in chunks:
        if total + c > max_total:
            break
        out.append(c)
        total += c
    return out or [1]


def stream_encode(codec, signal, chunks: list[int], n_q=None):
    """Push ``signal`` ``[B, T]`` in ``chunks``; the codes in the engine's array type."""
    enc = StreamingEncoder(codec, batch_size=signal.shape[0], n_q=n_q)
    pieces, pos = [], 0
    for c in chunks:
        pieces.append(enc.push(signal[:, pos:pos + c]))
        pos += c
    pieces.append(enc.flush())
    if isinstance(pieces[0], np.ndarray):
        return np.concatenate(pieces, axis=-1)
    return torch.cat(pieces, dim=-1)


ENGINES = ("torch", "onnx")
_ORT: dict[str, object] = {}


def session_codec(kind: str, engine: str) -> object:
    """What the sessions run on: the torch codec, or its ONNX export on ONNX Runtime (step
    graphs only, so that its offline coding is the same graph as its streaming)."""
    if engine == "torch":
        return CODECS[kind]
    if kind not in _ORT:
        from dwancodec.runtime import OnnxCodec

        from .test_onnx_export import exported

        _ORT[kind] = OnnxCodec(exported(kind), use_full_graphs=False)
    return _ORT[kind]


def as_numpy(x: object) -> np.ndarray:
    return x.numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("kind", QUANTIZER_KINDS)
@given(chunks=chunking(),
       frame_chunks=st.lists(st.integers(0, 7), min_size=1, max_size=30).filter(any),
       seed=st.integers(0, 2**16))
def test_streaming_equals_offline(engine: str, kind: str, chunks: list[int],
                                  frame_chunks: list[int], seed: int) -> None:
    """The shared sessions over either engine: any chunking gives the offline codes and audio
    of that engine (the ONNX graphs against torch: see tests/test_runtime.py)."""
    codec = session_codec(kind, engine)
    g = torch.Generator().manual_seed(seed)
    signal = 0.3 * torch.randn(2, sum(chunks), generator=g)
    with torch.inference_mode():
        offline_codes = as_numpy(codec.encode(signal[:, None] if engine == "torch"
                                              else signal[:, None].numpy()))
        offline_audio = as_numpy(codec.decode(offline_codes))
    if offline_audio.ndim == 3:
        offline_audio = offline_audio[:, 0]
    codes = as_numpy(stream_encode(codec, signal if engine == "torch" else signal.numpy(),
                                   chunks))
    np.testing.assert_array_equal(codes, offline_codes)

    dec = StreamingDecoder(codec, batch_size=2)
    pieces, pos, i = [], 0, 0
    while pos < codes.shape[-1]:
        f = frame_chunks[i % len(frame_chunks)]
        pieces.append(as_numpy(dec.push(codes[..., pos:pos + f])))
        pos, i = pos + f, i + 1
    audio = np.concatenate(pieces, axis=-1)
    assert audio.shape == offline_audio.shape
    np.testing.assert_allclose(audio, offline_audio, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["default", "lowlatency", "24k"])
@given(chunks=chunking(max_total=30000), seed=st.integers(0, 2**16))
def test_named_configs_stream_equal_offline(name: str, chunks: list[int], seed: int) -> None:
    codec = NAMED.setdefault(name, make_codec(name))
    g = torch.Generator().manual_seed(seed)
    signal = 0.3 * torch.randn(1, sum(chunks), generator=g)
    with torch.inference_mode():
        offline_codes = codec.encode(signal[:, None], n_q=3)
        offline_audio = codec.decode(offline_codes)[:, 0]
    codes = stream_encode(codec, signal, chunks, n_q=3)
    assert torch.equal(codes, offline_codes)
    dec = StreamingDecoder(codec)
    audio = torch.cat([dec.push(codes[..., i:i + 3]) for i in range(0, codes.shape[-1], 3)], -1)
    torch.testing.assert_close(audio, offline_audio, atol=1e-5, rtol=0)


NAMED: dict = {}


@pytest.mark.parametrize("engine", ENGINES)
def test_real_speech_streams_like_offline(engine: str, speech: torch.Tensor) -> None:
    """torch: the default config; ONNX Runtime: the shipped model's graphs."""
    chunks = [1] * 500 + [333] * 30 + [20000]
    chunks.append(speech.shape[-1] - sum(chunks))
    if engine == "onnx":
        from dwancodec.bundled import shipped_onnx_dir
        from dwancodec.runtime import OnnxCodec

        if not (shipped_onnx_dir() / "dwancodec_onnx.json").exists():
            pytest.skip("the shipped graphs are not installed")
        rt = OnnxCodec()
        x = speech[:, 0].numpy()
        np.testing.assert_array_equal(stream_encode(rt, x, chunks), rt.encode(x[:, None]))
        return
    codec = make_codec("default")
    with torch.inference_mode():
        offline = codec.encode(speech)
    codes = stream_encode(codec, speech[:, 0], chunks)
    assert torch.equal(codes, offline)


def test_fewer_stages_is_a_prefix() -> None:
    """Codes at n_q stages are the first n_q rows of the full codes (one model, many rates)."""
    codec = CODECS["fsq"]
    x = 0.3 * torch.randn(1, 1, 4000)
    with torch.inference_mode():
        full = codec.encode(x)
        for n in range(1, codec.num_codebooks + 1):
            assert torch.equal(codec.encode(x, n_q=n), full[:, :n])
