"""State geometry, masked reset, flat memory on long runs, and bad-input errors."""

from __future__ import annotations

import gc

import numpy as np
import psutil
import pytest
import torch

from dwancodec.streaming import StreamingDecoder, StreamingEncoder
from dwancodec.streaming.state import check_state

from .conftest import make_codec


def test_state_spec_is_geometry_only() -> None:
    codec = make_codec("tiny")
    spec = codec.encoder_state_spec() | codec.decoder_state_spec()
    assert all(k.startswith(("encoder.", "decoder.")) for k in spec)
    for length in (1, 7, 1000):
        enc = StreamingEncoder(codec)
        enc.push(torch.randn(1, length) * 0.1)
        check_state(codec.encoder_state_spec(), enc._state, 1)
    assert spec["decoder.head.tail"].shape == (codec.config.decoder.n_fft
                                               - codec.config.decoder.istft_hop,)


def test_masked_reset_touches_only_chosen_stream() -> None:
    codec = make_codec("tiny")
    hop = codec.hop_length
    x = 0.3 * torch.randn(3, 10 * hop + 7)
    y = 0.3 * torch.randn(6 * hop)
    enc = StreamingEncoder(codec, batch_size=3)
    before = enc.push(x[:, : 4 * hop + 7])
    enc.reset([1])
    # stream 1 restarts with a new signal; 7 pending samples of it were zeroed
    rest = x[:, 4 * hop + 7:].clone()
    rest[1, : 6 * hop] = y
    after = torch.cat([enc.push(rest), enc.flush()], -1)
    with torch.inference_mode():
        ref = codec.encode(x[:, None])
        restarted = codec.encode(torch.cat([torch.zeros(7), y])[None, None])
    got = torch.cat([before, after], -1)
    assert torch.equal(got[[0, 2]], ref[[0, 2]])
    assert torch.equal(after[1:2, :, :6], restarted[..., :6])

    dec = StreamingDecoder(codec, batch_size=3)
    dec.push(ref[..., :4])
    dec.reset(torch.tensor([False, True, False]))
    out = dec.push(ref[..., 4:])
    with torch.inference_mode():
        full = codec.decode(ref)[:, 0]
        fresh = codec.decode(ref[1:2, :, 4:])[:, 0]
    torch.testing.assert_close(out[[0, 2]], full[[0, 2], 4 * hop:], atol=1e-5, rtol=0)
    torch.testing.assert_close(out[1:2], fresh, atol=1e-5, rtol=0)


def test_ten_minutes_in_small_chunks_keeps_memory_flat() -> None:
    codec = make_codec("tiny")
    enc, dec = StreamingEncoder(codec), StreamingDecoder(codec)
    chunk = 0.1 * torch.randn(1, 1601)  # 100 ms, not a multiple of the hop
    n_chunks = int(600 * 16000 / chunk.shape[-1])
    proc = psutil.Process()
    rss = []
    for i in range(n_chunks):
        dec.push(enc.push(chunk))
        if i % (n_chunks // 10) == 0:
            gc.collect()
            rss.append(proc.memory_info().rss)
    growth_mb = (max(rss[2:]) - rss[2]) / 2**20
    print(f"RSS growth over 10 min of audio after warm-up: {growth_mb:.2f} MB")
    assert growth_mb < 20


BAD_AUDIO = [
    (torch.zeros(1, 16000), "shape"),
    (torch.zeros(1, 2, 16000), "mono"),
    (torch.zeros(1, 1, 16000, dtype=torch.int16), "floating point"),
    (torch.zeros(1, 1, 0), "empty"),
    (torch.full((1, 1, 100), float("nan")), "NaN"),
    (torch.full((1, 1, 100), float("inf")), "Inf"),
]


@pytest.mark.parametrize(("audio", "message"), BAD_AUDIO)
def test_bad_audio_is_a_clear_value_error(audio: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_codec("tiny").encode(audio)


def test_bad_codes_and_sessions() -> None:
    codec = make_codec("tiny")
    n, k = codec.num_codebooks, codec.codebook_size
    for codes, msg in [
        (torch.full((1, n, 4), k), "out of range"),
        (torch.full((1, n, 4), -1), "out of range"),
        (torch.zeros(1, n + 1, 4, dtype=torch.long), "codebooks"),
        (torch.zeros(n, 4, dtype=torch.long), "shape"),
        (torch.zeros(1, n, 4), "integer"),
    ]:
        with pytest.raises(ValueError, match=msg):
            codec.decode(codes)
        with pytest.raises(ValueError, match=msg):
            StreamingDecoder(codec).push(codes)
    with pytest.raises(ValueError, match="n_q"):
        codec.encode(torch.zeros(1, 1, 100), n_q=n + 1)
    with pytest.raises(ValueError, match="shape"):
        StreamingEncoder(codec, batch_size=2).push(torch.zeros(3, 10))
    with pytest.raises(ValueError, match="floating point"):
        StreamingEncoder(codec).push(np.zeros(10, dtype=np.int16))
    with pytest.raises(ValueError, match="NaN"):
        StreamingEncoder(codec).push(np.full(10, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="below the lowest"):
        codec.n_q_for_bitrate(0.1)


def test_wrong_sample_rate_is_resampled_or_rejected(tmp_path) -> None:
    from dwancodec.api import DwanCodec
    from dwancodec.audio import save_audio

    with pytest.warns(UserWarning, match="random"):
        api = DwanCodec("tiny")
    path = tmp_path / "a48k.wav"
    save_audio(path, 0.1 * np.sin(np.arange(48000) / 10), 48000)
    codes = api.encode(path)  # resampled 48k -> 16k on load
    assert codes.shape[-1] == -(-16000 // api.model.hop_length)
    with pytest.raises(ValueError, match=r"sample_rate must be an integer number of Hz"):
        api.encode(np.zeros(100, dtype=np.float32), sample_rate=0)
