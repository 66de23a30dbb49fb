"""Shape and session rules (issue 14): one rule for the torch API and the runtime.

The expected outcome of every case is computed here from the documented rules alone (the
oracles below), and both the torch side (``DwanCodec``, ``Codec``, torch sessions) and the
torch-free runtime (``OnnxCodec``, its sessions) must agree with it, with the same message.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dwancodec.api import DwanCodec
from dwancodec.model import Codec
from dwancodec.runtime import OnnxCodec
from dwancodec.streaming import StreamingDecoder, StreamingEncoder

from .test_onnx_export import exported, tiny_codec

HOP, N, K = 40, 3, 60  # the tiny model: hop, stages, codes per stage
MAX_CHANNELS = 8


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> DwanCodec:
    bundle = tiny_codec().save_pretrained(tmp_path_factory.mktemp("tiny"))
    return DwanCodec(checkpoint_path=bundle)


@pytest.fixture(scope="module")
def rt() -> OnnxCodec:
    return OnnxCodec(exported(), use_full_graphs=False)


def _outcome(fn, *args, **kwargs) -> tuple[str, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return "ok", fn(*args, **kwargs)
        except ValueError as e:
            return "error", str(e)


# Offline layouts -------------------------------------------------------------------------------
def expected_signals(shape: tuple[int, ...], kind: str) -> tuple[int, int] | None:
    """(signals, samples) the documented layouts give, or None when the input is refused."""
    if kind not in "iuf" or 0 in shape:
        return None
    if len(shape) == 1:
        return 1, shape[0]
    if len(shape) == 2:
        c, t = shape
        return (1, t) if c == 1 or c <= MAX_CHANNELS < t else None
    if len(shape) == 3 and shape[1] == 1:
        return shape[0], shape[2]
    return None


shapes = st.one_of(
    st.tuples(st.integers(0, 300)),
    st.tuples(st.integers(0, 12), st.integers(0, 300)),
    st.tuples(st.integers(9, 300), st.integers(0, 12)),    # [T, C]: channels last
    st.tuples(st.integers(0, 4), st.integers(0, 3), st.integers(0, 200)),
    st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 50)),
)
dtypes = st.sampled_from(["float32", "float64", "float16", "int16", "int32", "uint8", "bool",
                          "complex64"])


@given(shape=shapes, dtype=dtypes, seed=st.integers(0, 100))
@settings(max_examples=120, deadline=None)
def test_offline_layouts_are_one_rule_for_torch_and_runtime(
        api: DwanCodec, rt: OnnxCodec, shape: tuple[int, ...], dtype: str, seed: int) -> None:
    x = (np.random.default_rng(seed).uniform(-0.5, 0.5, shape) * (
        30000 if dtype in ("int16", "int32") else 200 if dtype == "uint8" else 1)).astype(dtype)
    want = expected_signals(shape, np.dtype(dtype).kind)
    got_np = _outcome(rt.encode, x)
    got_torch = _outcome(api.encode, x)
    if want is None:
        assert got_np[0] == got_torch[0] == "error", (got_np, got_torch)
        assert got_np[1] == got_torch[1]  # the same message from both sides
        assert "audio" in str(got_np[1])
        return
    frames = -(-want[1] // HOP)
    assert got_np[0] == "ok" and got_np[1].shape == (want[0], N, frames)
    assert got_torch[0] == "ok" and tuple(got_torch[1].shape) == (want[0], N, frames)
    if dtype in ("float32", "float64", "float16") and x.ndim == 3:  # torch tensors: same rule
        t = _outcome(api.encode, torch.from_numpy(x))
        assert t[0] == "ok" and torch.equal(t[1], got_torch[1])


def test_the_issue_cases(api: DwanCodec, rt: OnnxCodec) -> None:
    stereo = np.zeros((2, 32000), "f4")
    with pytest.warns(UserWarning, match="downmixing 2 channels"):
        assert api.encode(stereo).shape == (1, N, 800)  # was: 32 000 channels, 1 frame
    assert api.encode(np.zeros((2, 1, 32000), "f4")).shape == (2, N, 800)  # was: 1 frame
    for codec in (api, rt):
        with pytest.raises(ValueError, match=r"channels last \[T, C\]: pass audio.T"):
            codec.encode(np.zeros((32000, 2), "f4"))  # the runtime read it as 32 000 streams
    with pytest.raises(ValueError, match="length must be None or an integer number"):
        api.decode(np.zeros((1, N, 4), np.int64), length=-5)  # dropped 5 samples
    with pytest.raises(ValueError, match="length"):
        rt.decode(np.zeros((1, N, 4), np.int64), length=-5)
    for rate in (1.5, 0, -16000, True, "16000"):
        for codec in (api, rt):
            with pytest.raises(ValueError, match="sample_rate must be an integer number of Hz"):
                codec.encode(np.zeros(3200, "f4"), sample_rate=rate)  # was 106 667 frames
    with pytest.raises(ValueError, match="sample_rate"), pytest.warns(UserWarning):
        DwanCodec(checkpoint_path=None, config="tiny", sample_rate=22050.5)


def test_torch_decode_of_empty_unsigned_and_non_array_codes(api: DwanCodec) -> None:
    model = api.model
    assert model.decode(torch.zeros(1, N, 0, dtype=torch.long)).shape == (1, 1, 0)
    audio, _ = api.decode(torch.zeros(1, N, 0, dtype=torch.long))
    assert audio.shape == (1, 0)
    codes = torch.randint(0, K, (1, N, 5))
    ref = model.decode(codes)
    for dtype in (torch.uint8, torch.uint16, torch.uint32, torch.uint64, torch.int32):
        torch.testing.assert_close(model.decode(codes.to(dtype)), ref)  # was NotImplementedError
    torch.testing.assert_close(model.decode(codes.numpy().astype(np.uint16)), ref)
    for bad in ([[1, 2]], None, "codes", 3):
        with pytest.raises(ValueError, match=r"codes must be a torch.Tensor or numpy array"):
            api.decode(bad)  # type: ignore[arg-type]  # was AttributeError
    with pytest.raises(ValueError, match="out of range"):
        model.decode(torch.full((1, N, 2), 2**40, dtype=torch.uint64))
    with pytest.raises(ValueError, match="integer"):
        model.decode(torch.zeros(1, N, 2, dtype=torch.bool))


def test_bfloat16_and_half_audio(api: DwanCodec) -> None:
    x = torch.from_numpy(np.random.default_rng(0).uniform(-0.5, 0.5, 3200).astype("f4"))
    ref = api.encode(x.to(torch.bfloat16).float())
    assert torch.equal(api.encode(x.to(torch.bfloat16)), ref)  # was TypeError
    assert api.model.encode(x.to(torch.bfloat16)[None, None]).shape == (1, N, 80)
    assert api.encode(x.half()).shape == (1, N, 80)


# Sessions ---------------------------------------------------------------------------------------
def expected_batch_ok(b: object) -> bool:
    return isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 4096


@given(st.one_of(st.integers(-2, 6), st.sampled_from([1.5, 2.0, True, False, None, "2",
                                                       5000])))
@settings(max_examples=40, deadline=None)
def test_session_batch_size(rt: OnnxCodec, b: object) -> None:
    codec = tiny_codec()
    for make in (lambda: StreamingEncoder(codec, b), lambda: StreamingDecoder(codec, b),  # type: ignore[arg-type]
                 lambda: rt.streaming_encoder(b), lambda: rt.streaming_decoder(b)):  # type: ignore[arg-type]
        got = _outcome(make)
        assert (got[0] == "ok") == expected_batch_ok(b), (b, got)
        if got[0] == "error":
            assert "batch_size must be an integer in [1, 4096]" in str(got[1])


def expected_mask(streams: object, b: int) -> list[bool] | None:
    """The documented reset(streams) rule: None = all; a [B] bool mask; integer indices."""
    if streams is None:
        return [True] * b
    items = list(streams)  # type: ignore[call-overload]
    if items and all(isinstance(s, bool) for s in items):
        return items if len(items) == b else None
    if not all(isinstance(s, int) and not isinstance(s, bool) for s in items):
        return None
    if any(not 0 <= s < b for s in items):
        return None
    return [i in items for i in range(b)]


stream_args = st.one_of(
    st.none(),
    st.lists(st.integers(-1, 4), max_size=4),
    st.lists(st.booleans(), min_size=1, max_size=4),
    st.lists(st.sampled_from([0.5, 1.0, 0, 1, "1", True]), min_size=1, max_size=3),
)


@given(b=st.integers(1, 3), streams=stream_args, seed=st.integers(0, 50))
@settings(max_examples=80, deadline=None)
def test_reset_streams_rule(rt: OnnxCodec, b: int, streams: object, seed: int) -> None:
    """Only the chosen streams restart: compare with fresh sessions, torch and runtime."""
    codec = tiny_codec()
    want = expected_mask(streams, b)
    x = np.random.default_rng(seed).uniform(-0.3, 0.3, (b, 3 * HOP)).astype("f4")
    for enc in (StreamingEncoder(codec, b), rt.streaming_encoder(b)):
        first = enc.push(x)
        got = _outcome(enc.reset, streams)
        if want is None:
            assert got[0] == "error", (streams, got)
            assert "stream" in str(got[1])
            continue
        assert got[0] == "ok", got
        again = enc.push(x)
        again = again.numpy() if isinstance(again, torch.Tensor) else again
        first = first.numpy() if isinstance(first, torch.Tensor) else first
        for i in range(b):  # a reset stream starts over: the first codes again
            if want[i]:
                np.testing.assert_array_equal(again[i], first[i])


codes_cases = st.tuples(st.integers(0, 4), st.integers(0, 5), st.integers(0, 3),
                        st.sampled_from(["int64", "int32", "uint8", "float32", "bool"]),
                        st.sampled_from([0, K - 1, K, -1]))


@given(b=st.integers(1, 3), case=codes_cases)
@settings(max_examples=120, deadline=None)
def test_decoder_push_checks_every_push_even_zero_frames(rt: OnnxCodec, b: int,
                                                         case: tuple) -> None:
    nb, nq, f, dtype, value = case
    if dtype == "uint8" and value < 0:
        value = 0
    codes = np.full((nb, nq, f), value).astype(dtype)
    ok = (nb == b and 1 <= nq <= N and dtype in ("int64", "int32", "uint8")
          and (f == 0 or 0 <= value < K))
    got_t = _outcome(StreamingDecoder(tiny_codec(), b).push, codes)
    got_o = _outcome(rt.streaming_decoder(b).push, codes)
    assert got_t[0] == got_o[0] == ("ok" if ok else "error"), (codes.shape, dtype, value,
                                                               got_t, got_o)
    if ok:
        assert got_t[1].shape == got_o[1].shape == (b, f * HOP)
    else:
        assert got_t[1] == got_o[1].replace("a numpy array", "a torch.Tensor or numpy array")


def test_pcm_rules_are_shared(rt: OnnxCodec) -> None:
    codec = tiny_codec()
    for pcm in (np.zeros((2, 40), "f4"), np.zeros((1, 2, 40), "f4"), np.zeros(40, np.int16),
                np.full((1, 40), np.nan, "f4"), [0.0] * 40):
        t = _outcome(StreamingEncoder(codec).push, pcm)
        o = _outcome(rt.streaming_encoder().push, pcm)
        assert t[0] == o[0] == "error"
        assert t[1] == str(o[1]).replace("a numpy array", "a torch.Tensor or numpy array")


def test_runtime_imports_no_torch_module() -> None:
    """The one check module is numpy only (the runtime imports it)."""
    src = (Path(__file__).parents[1] / "dwancodec" / "checks.py").read_text()
    assert "import torch" not in src and "from torch" not in src
    assert not (Path(__file__).parents[1] / "dwancodec" / "runtime" / "checks.py").exists()


def test_codec_from_pretrained_device_errors(tmp_path: Path) -> None:
    bundle = Codec.from_config("tiny", seed=0).save_pretrained(tmp_path / "b")
    with pytest.raises(ValueError, match="unknown device 'foo'"):
        Codec.from_pretrained(bundle, "foo")  # was: "... is not a valid safetensors file"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device 'cuda'"):
            Codec.from_pretrained(bundle, "cuda")
