"""The .dwc container and packets: exact packing, bitrate, defensive parsing, fuzzing, loss."""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dwancodec import bitstream as bs
from dwancodec.bitstream import BitstreamError, Header
from dwancodec.model import Codec

from .conftest import make_codec

TINY = Header(model="dwancodec-tiny@0123456789abcdef", sample_rate=16000, hop_length=40, n_q=3,
              num_codebooks=3, codebook_size=60, levels=(5, 4, 3), source_rate=44100)
DEFAULT = Header(model="dwancodec-16k@0123456789abcdef", sample_rate=16000, hop_length=320,
                 n_q=8, num_codebooks=8, codebook_size=15360, levels=(8, 8, 8, 6, 5))
LFQ = Header(model="lfq@1", sample_rate=24000, hop_length=480, n_q=2, num_codebooks=4,
             codebook_size=1 << 14, kind="lfq")
# Format 2: the same with the codes identity (format-1 headers above have none).
TINY2 = Header(**{**TINY.__dict__, "codes": "00ff0123456789ab"})
LFQ2 = Header(**{**LFQ.__dict__, "codes": "fedcba9876543210"})


def _codes(h: Header, frames: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, h.codebook_size, (h.n_q, frames))


def _file(h: Header, frames: int, seed: int = 0, length: int | None = None) -> bytes:
    return bs.to_bytes(h, _codes(h, frames, seed), length)


# Packing ---------------------------------------------------------------------------------------
@given(k=st.integers(2, bs.MAX_CODEBOOK_SIZE), n_q=st.integers(1, 12), frames=st.integers(0, 40),
       split=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_pack_unpack_exact_any_codebook(k: int, n_q: int, frames: int, split: int,
                                        seed: int) -> None:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, k, (n_q, frames))
    codes[:, :1] = k - 1  # the largest values are the ones that could overflow
    payload = bs.pack_codes(codes, k)
    bits = bs.frame_bits(n_q, k)
    assert 2 ** (bits - 1) < k**n_q <= 2**bits  # the smallest width that holds K**n_q values
    assert len(payload) == (frames * bits + 7) // 8
    np.testing.assert_array_equal(bs.unpack_codes(payload, n_q, k, frames), codes)
    packer = bs.BitPacker(n_q, k)  # incremental packing gives the same bytes
    pieces = b"".join(packer.push(codes[:, s: s + split]) for s in range(0, frames, split))
    assert pieces + packer.flush() == payload
    if frames >= 3:  # random access to a block of frames
        np.testing.assert_array_equal(bs.unpack_codes(payload, n_q, k, 2, start=1),
                                      codes[:, 1:3])


def test_frame_bits_is_information_width() -> None:
    assert bs.frame_bits(8, 15360) == 112        # 8 * 13.907 = 111.26
    assert bs.frame_bits(1, 15360) == 14
    assert bs.frame_bits(3, 1024) == 30          # powers of two: exact
    assert bs.frame_bits(3, 60) == 18            # 17.72
    for k in (2, 3, 60, 1000, 15360, 1 << 14):
        for n_q in range(1, 9):
            assert 0 <= bs.frame_bits(n_q, k) - n_q * math.log2(k) < 1


def test_mixed_radix_layout_is_as_documented() -> None:
    # K = 60, n_q = 2: v = c0 + 60 * c1 in 12 bits, frames LSB-first back to back.
    codes = np.array([[1, 59], [2, 0]])
    v0, v1 = 1 + 60 * 2, 59
    assert bs.pack_codes(codes, 60) == (v0 | v1 << 12).to_bytes(3, "little")


# Files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("h", [TINY, DEFAULT, LFQ, TINY2, LFQ2],
                         ids=["tiny", "default", "lfq", "tiny-v2", "lfq-v2"])
@pytest.mark.parametrize("frames", [0, 1, 7, 250])
def test_file_round_trip(h: Header, frames: int, tmp_path: Path) -> None:
    codes = _codes(h, frames)
    length = max(0, frames * h.hop_length - 3)
    data = bs.to_bytes(h, codes, length)
    header, back = bs.from_bytes(data)
    np.testing.assert_array_equal(back, codes)
    assert header == Header(**{**h.__dict__, "num_frames": frames, "length": length})
    assert len(data) == header.file_size == header.header_size + header.payload_bytes + 4
    assert data[4] == header.version == (2 if h.codes else 1)
    path = tmp_path / "x.dwc"
    bs.write_dwc(path, h, codes, length)
    assert path.read_bytes() == data
    f = bs.read_dwc(path)
    assert f.header == header
    blocks = list(f.iter_codes(block_frames=3))
    joined = np.concatenate(blocks, axis=1) if blocks else np.zeros((h.n_q, 0))
    np.testing.assert_array_equal(joined, codes)


@pytest.mark.parametrize("config,n_q", [("tiny", 1), ("tiny", 3), ("default", 1),
                                        ("default", 4), ("default", 8)])
def test_file_bitrate_matches_codec_bitrate(config: str, n_q: int, speech: torch.Tensor
                                            ) -> None:
    """File bits = header + codes at codec.bitrate(n_q) + < 1 bit/frame rounding + padding."""
    codec = make_codec(config)
    with torch.inference_mode():
        codes = codec.encode(speech, n_q)[0].numpy()
    length = speech.shape[-1]
    data = bs.to_bytes(Header.for_engine(codec, n_q, 16000), codes, length)
    header = bs.DwcFile.parse(data).header
    frames = codes.shape[1]
    seconds = frames / codec.frame_rate
    overhead_bits = 8 * (header.header_size + 4)
    payload_bits = 8 * len(data) - overhead_bits
    ideal = codec.bitrate(n_q) * seconds
    assert header.bitrate == pytest.approx(codec.bitrate(n_q))
    assert ideal <= payload_bits < ideal + frames + 8  # < 1 bit per frame + byte padding
    measured = 8 * len(data) / seconds
    assert abs(measured - codec.bitrate(n_q)) <= (overhead_bits + frames + 8) / seconds
    rounding = header.frame_bits * frames - ideal  # < 1 bit per frame
    assert 0 <= rounding / ideal < 1 / (n_q * math.log2(codec.codebook_size))


def test_header_for_engine_and_model_check() -> None:
    codec = make_codec("tiny")
    h = Header.for_engine(codec, 2, source_rate=48000)
    assert (h.model, h.n_q, h.codebook_size, h.levels) == (codec.identity(), 2, 60, (5, 4, 3))
    assert (h.codes, h.version) == (codec.codes_identity(), 2)
    assert h.check_model(codec) is True
    other = make_codec("tiny", seed=1)  # same config, other weights
    with pytest.raises(BitstreamError, match=r"encoded with model .* \(codes .*loaded model is"):
        h.check_model(other)
    with pytest.raises(BitstreamError, match=r"sample_rate 24000 .*model: 16000"):
        Header(**{**h.__dict__, "sample_rate": 24000}).check_model(codec)


def _nudged(codec: Codec, part: str, name: str | None = None) -> Codec:
    """A copy of ``codec`` with one tensor of ``part`` moved (the first, or ``name``)."""
    other = copy.deepcopy(codec)
    with torch.no_grad():
        state = other.state_dict()
        key = name or next(k for k in state if k.startswith(part + ".")
                           and state[k].is_floating_point())
        state[key].add_(0.01)
    return other


@pytest.mark.parametrize("kind", ["fsq", "ema"])
def test_codes_identity_names_encoder_and_quantizer_only(kind: str, speech: torch.Tensor
                                                         ) -> None:
    codec = make_codec("tiny", kind)
    decoder_only = _nudged(codec, "decoder")
    assert decoder_only.identity() != codec.identity()
    assert decoder_only.codes_identity() == codec.codes_identity()
    for part in ("encoder", "quantizer"):
        assert _nudged(codec, part).codes_identity() != codec.codes_identity(), part
    if kind == "ema":  # EMA statistics move in training while the codebook stays
        for stat in ("cluster_size", "embed_sum"):
            moved = _nudged(codec, "quantizer", f"quantizer.stages.0.quantizer.{stat}")
            assert moved.codes_identity() == codec.codes_identity(), stat
    renamed = Codec(codec.config.replace(name="renamed"))
    renamed.load_state_dict(codec.state_dict())
    assert renamed.codes_identity() == codec.codes_identity()  # codes do not depend on a name
    # The property the identity stands for: same codes in, same latents out.
    x = speech[..., :4000]
    with torch.inference_mode():
        codes = codec.encode(x)
        assert torch.equal(decoder_only.encode(x), codes)
        assert torch.equal(decoder_only.quantizer.decode(codes), codec.quantizer.decode(codes))


def test_stream_decodes_with_a_model_of_the_same_codes() -> None:
    codec = make_codec("tiny")
    h = Header.for_engine(codec, 2)
    newer = _nudged(codec, "decoder")
    assert h.check_model(newer) is False  # format 2: the codes identity says it
    with pytest.raises(BitstreamError, match=r"\(codes [0-9a-f]{16}; the model's codes are"):
        h.check_model(_nudged(codec, "encoder"))
    v1 = Header(**{**h.__dict__, "codes": ""})  # a format-1 stream names the model alone
    assert v1.version == 1 and v1.check_model(codec) is True
    with pytest.raises(BitstreamError, match="encoded with model"):
        v1.check_model(newer)
    newer.compatible_identities = (codec.identity(),)  # ... unless the newer model lists it
    assert v1.check_model(newer) is False
    assert bs.decodes(v1, "x@1", "", ("y@2",)) is None
    assert bs.decodes(h, "x@1", h.codes) is False and bs.decodes(h, h.model, "") is True


def test_compatible_identities_round_trip_and_bad_metadata(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    codec = make_codec("tiny")
    codec.compatible_identities = ("dwancodec-tiny@0123456789abcdef", "old@1")
    back = Codec.from_pretrained(codec.save_pretrained(tmp_path / "m"))
    assert back.compatible_identities == codec.compatible_identities
    assert back.identity() == codec.identity()  # history is not part of the model
    for bad in ("nope", '["ok", 3]', json.dumps(["x"] * 65), '["bad\\u00e9"]'):
        weights = tmp_path / "m" / "model.safetensors"
        state = {k: v.numpy() for k, v in codec.state_dict().items()}
        save_file(state, str(weights), metadata={"compatible": bad})
        with pytest.raises(ValueError, match="metadata 'compatible' must be a JSON list"):
            Codec.from_pretrained(tmp_path / "m")


# Bad files: each gives a clear BitstreamError ----------------------------------------------------
def _with_header_field(data: bytes, offset: int, fmt: str, value: int, fix_crc: bool = True
                       ) -> bytes:
    """Overwrite a header field, re-computing the header CRC (so deeper checks are reached)."""
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    if fix_crc:
        size = struct.unpack_from("<H", b, 6)[0]
        if 4 <= size <= len(b):
            struct.pack_into("<I", b, size - 4, zlib.crc32(bytes(b[: size - 4])))
    return bytes(b)


def _fix_payload_crc(data: bytes) -> bytes:
    h = Header.unpack(data)
    b = bytearray(data)
    payload = bytes(b[h.header_size: len(b) - 4])
    struct.pack_into("<I", b, len(b) - 4, zlib.crc32(payload))
    return bytes(b)


GOOD = _file(TINY, 20, length=20 * 40 - 5)

BAD_FILES = {
    "empty": (b"", "not a .dwc file"),
    "wav file": (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40), "not a .dwc file"),
    "magic only": (bs.MAGIC, "truncated"),
    "truncated header": (GOOD[:30], "truncated"),
    "truncated payload": (GOOD[:-10], "truncated"),
    "missing checksum": (GOOD[:-4], "truncated"),
    "trailing bytes": (GOOD + b"\0", "unexpected bytes"),
    "version 4": (_with_header_field(GOOD, 4, "<B", 4), "unsupported .dwc format version 4"),
    "version 1 says 2": (_with_header_field(GOOD, 4, "<B", 2), "header size field"),
    "version 0": (_with_header_field(GOOD, 4, "<B", 0), "unsupported .dwc format version 0"),
    "flags set": (_with_header_field(GOOD, 5, "<B", 1), "unsupported .dwc header flags"),
    "header crc": (GOOD[:50] + bytes([GOOD[50] ^ 1]) + GOOD[51:], "header: checksum"),
    "payload crc": (GOOD[:-20] + bytes([GOOD[-20] ^ 4]) + GOOD[-19:], "payload checksum"),
    "header size field": (_with_header_field(GOOD, 6, "<H", 9999), "header size field"),
    "sample rate 0": (_with_header_field(GOOD, 8, "<I", 0), "sample rate 0"),
    "hop 0": (_with_header_field(GOOD, 16, "<I", 0), "hop length 0"),
    "kind 9": (_with_header_field(GOOD, 20, "<B", 9), "unknown quantizer kind"),
    "n_q 0": (_with_header_field(GOOD, 22, "<B", 0), "n_q 0"),
    "n_q > codebooks": (_with_header_field(GOOD, 22, "<B", 4), "n_q 4 is not in"),
    "codebook size 1": (_with_header_field(GOOD, 24, "<I", 1), "codebook size 1"),
    "codebook 2^31": (_with_header_field(GOOD, 24, "<I", 1 << 31), "codebook size"),
    "levels disagree": (_with_header_field(GOOD, 24, "<I", 61), "do not multiply"),
    "frames 2^32-1": (_with_header_field(GOOD, 28, "<I", 2**32 - 1), "does not fit|truncated"),
    "length 2^64-1": (_with_header_field(GOOD, 32, "<Q", 2**64 - 1), "original length"),
    "length > frames": (_with_header_field(GOOD, 32, "<Q", 20 * 40 + 1), "original length"),
    "identity length 0": (_with_header_field(GOOD, 40, "<B", 0), "header size field"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_file_gives_clear_error(name: str, tmp_path: Path) -> None:
    data, message = BAD_FILES[name]
    with pytest.raises(BitstreamError, match=message):
        bs.DwcFile.parse(data)
    path = tmp_path / "bad.dwc"
    path.write_bytes(data)
    with pytest.raises(BitstreamError, match=message):
        bs.read_dwc(path)


def test_absurd_frame_count_is_rejected_before_allocating(tmp_path: Path) -> None:
    """A header announcing 2^32 - 1 frames of 8 x 24-bit codes (~800 GB): caught by size."""
    h = Header(model="m@1", sample_rate=16000, hop_length=1, n_q=255, num_codebooks=255,
               codebook_size=1 << 24, kind="lfq")
    data = bytearray(bs.to_bytes(h, np.zeros((255, 1), dtype=np.int64)))
    struct.pack_into("<I", data, 28, 2**32 - 1)
    struct.pack_into("<Q", data, 32, 2**32 - 1)
    size = h.header_size
    struct.pack_into("<I", data, size - 4, zlib.crc32(bytes(data[: size - 4])))
    path = tmp_path / "huge.dwc"
    path.write_bytes(bytes(data))
    with pytest.raises(BitstreamError, match=r"truncated .* announces \d{13} "):
        bs.read_dwc(path)


def test_invalid_code_combination_and_padding_are_rejected() -> None:
    # K = 60, n_q = 3: 18 bits per frame hold values up to 262143 > 60**3 - 1 = 215999.
    h = Header(**{**TINY.__dict__, "num_frames": 0})
    good = _file(h, 4, length=4 * 40)
    b = bytearray(good)
    start = h.header_size
    b[start], b[start + 1] = 0xFF, 0xFF  # frame 0 = 2**18 - 1 (its 18 bits all set)
    b[start + 2] |= 0x03
    with pytest.raises(BitstreamError, match="frame 0 holds an invalid code combination"):
        bs.DwcFile.parse(_fix_payload_crc(bytes(b))).codes()
    good3 = _file(h, 3, length=3 * 40)  # 54 bits -> 2 padding bits in the last byte
    b = bytearray(good3)
    b[-5] |= 0x80
    with pytest.raises(BitstreamError, match="padding"):
        bs.DwcFile.parse(_fix_payload_crc(bytes(b)))


def test_read_dwc_path_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        bs.read_dwc(tmp_path / "missing.dwc")
    with pytest.raises(IsADirectoryError):
        bs.read_dwc(tmp_path)


def test_writer_rejects_bad_codes() -> None:
    with pytest.raises(ValueError, match="out of range"):
        bs.to_bytes(TINY, np.full((3, 2), 60))
    with pytest.raises(ValueError, match="stages"):
        bs.to_bytes(TINY, np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="integers"):
        bs.to_bytes(TINY, np.zeros((3, 2)))
    with pytest.raises(BitstreamError, match="original length"):
        bs.to_bytes(TINY, np.zeros((3, 2), dtype=np.int64), length=81)


# Fuzzing ---------------------------------------------------------------------------------------
SEEDS = [_file(TINY, 20, length=795), _file(DEFAULT, 6, 1, length=6 * 320),
         _file(LFQ, 3, 2), _file(TINY, 0), _file(TINY2, 9, 3, length=9 * 40),
         _file(LFQ2, 2, 4)]
FIELDS = [(4, "<B"), (5, "<B"), (6, "<H"), (8, "<I"), (12, "<I"), (16, "<I"), (20, "<B"),
          (21, "<B"), (22, "<B"), (23, "<B"), (24, "<I"), (28, "<I"), (32, "<Q"), (40, "<B")]


@st.composite
def mutated_files(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "field",
                                   "field", "field", "random"]))
        n = len(data)
        lo = min(4, n - 1)  # positions after the magic (broken magic is tested on its own)
        if op == "flip" and n:
            i = draw(st.sampled_from(range(lo, n)))
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and n:
            data[draw(st.sampled_from(range(lo, n)))] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[draw(st.integers(min(4, n), n)):]  # keep the magic: reach deeper
        elif op == "insert":
            i = draw(st.sampled_from(range(max(lo, 0), n + 1)))
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and n:
            i = draw(st.sampled_from(range(lo, n)))
            del data[i: i + draw(st.integers(1, 8))]
        elif op == "field" and n >= 48:
            off, fmt = draw(st.sampled_from(FIELDS))
            bits = 8 * struct.calcsize(fmt)
            top = 2**bits - 1
            value = draw(st.one_of(st.integers(0, top), st.integers(0, min(300, top))))
            data = bytearray(_with_header_field(bytes(data), off, fmt, value,
                                                fix_crc=draw(st.booleans())))
        elif op == "random":
            data = bytearray(draw(st.binary(max_size=200)))
    if draw(st.booleans()) and len(data) > 8:  # often fix the payload CRC too
        with contextlib.suppress(BitstreamError):
            data = bytearray(_fix_payload_crc(bytes(data)))
    return bytes(data)


def _check_parse(data: bytes) -> None:
    """Either a valid file that re-encodes to the same bytes, or a BitstreamError."""
    try:
        f = bs.DwcFile.parse(data)
        codes = f.codes()
    except BitstreamError as e:
        assert str(e)
        return
    assert codes.shape == (f.header.n_q, f.header.num_frames)
    assert bs.to_bytes(f.header, codes, f.header.length) == data


FUZZ_SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}


@settings(max_examples=1000, **FUZZ_SETTINGS)
@given(mutated_files())
def test_fuzz_parser(data: bytes) -> None:
    _check_parse(data)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("DWANCODEC_SLOW"), reason="set DWANCODEC_SLOW=1")
@settings(max_examples=20000, **FUZZ_SETTINGS)
@given(mutated_files())
def test_fuzz_parser_thorough(data: bytes) -> None:
    _check_parse(data)


# Packets ---------------------------------------------------------------------------------------
@given(k=st.sampled_from([2, 60, 1024, 15360, 1 << 24]), n_q=st.integers(1, 8),
       frames=st.integers(1, 12), seq=st.integers(0, 10**6))
def test_packet_round_trip(k: int, n_q: int, frames: int, seq: int) -> None:
    codes = np.random.default_rng(seq).integers(0, k, (n_q, frames))
    pkt = bs.encode_packet(codes, seq, k)
    assert len(pkt) == bs.PACKET_OVERHEAD + bs.payload_bytes(frames, n_q, k)
    got = bs.decode_packet(pkt, k, n_q)
    assert got.seq == seq % 2**16
    np.testing.assert_array_equal(got.codes, codes)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzz_packets(data: st.DataObject) -> None:
    pkt = bytearray(bs.encode_packet(_codes(TINY, 5), 7, 60))
    for _ in range(data.draw(st.integers(1, 3))):
        op = data.draw(st.sampled_from(["flip", "truncate", "insert", "random"]))
        if op == "flip" and pkt:
            pkt[data.draw(st.integers(0, len(pkt) - 1))] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "truncate":
            del pkt[data.draw(st.integers(0, len(pkt))):]
        elif op == "insert":
            pkt[data.draw(st.integers(0, len(pkt))):0] = data.draw(st.binary(min_size=1,
                                                                             max_size=4))
        else:
            pkt = bytearray(data.draw(st.binary(max_size=40)))
    try:
        got = bs.decode_packet(bytes(pkt), 60, 3)
    except BitstreamError:
        return
    assert bs.encode_packet(got.codes, got.seq, 60) == bytes(pkt)


@pytest.mark.parametrize("data,message", [
    (b"", "too short"), (b"\xd7\x01\x03\x01\x00\x00", "too short"),
    (b"\x00\x01\x03\x01\x00\x00\x00\x00\x00\x00", "not a dwancodec packet"),
    (b"\xd7\x02\x03\x01\x00\x00\x00\x00\x00\x00", "unsupported packet version 2"),
    (b"\xd7\x01\x09\x01\x00\x00\x00\x00\x00\x00", "n_q=9"),
    (b"\xd7\x01\x03\x00\x00\x00\x00\x00\x00\x00", "no frames"),
    (b"\xd7\x01\x03\x01\x00\x00\x00\x00", "packet size 8 does not match"),
])
def test_bad_packets(data: bytes, message: str) -> None:
    with pytest.raises(BitstreamError, match=message):
        bs.decode_packet(data, 60, 3)


def test_packet_checksum() -> None:
    pkt = bytearray(bs.encode_packet(_codes(TINY, 2), 5, 60))
    pkt[7] ^= 0x10
    with pytest.raises(BitstreamError, match="checksum"):
        bs.decode_packet(bytes(pkt), 60, 3)


def test_sender_groups_frames_and_numbers_packets() -> None:
    codes = _codes(TINY, 11)
    sender = bs.PacketSender(60, frames_per_packet=4, start_seq=65534)
    packets = sender.push(codes[:, :5]) + sender.push(codes[:, 5:]) + sender.flush()
    got = [bs.decode_packet(p, 60) for p in packets]
    assert [g.seq for g in got] == [65534, 65535, 0]  # wraps around
    assert [g.codes.shape[1] for g in got] == [4, 4, 3]
    np.testing.assert_array_equal(np.concatenate([g.codes for g in got], axis=1), codes)


@st.composite
def channels(draw: st.DrawFn) -> tuple[int, list[int]]:
    """A packet count and an arrival order: drops, duplicates, local reordering; packet 0
    arrives first."""
    n = draw(st.integers(2, 60))
    order = [s for s in range(1, n) if not draw(st.booleans()) or draw(st.booleans())]
    for _ in range(draw(st.integers(0, 5))):  # swap nearby packets
        if len(order) > 2:
            i = draw(st.integers(0, len(order) - 2))
            j = min(len(order) - 1, i + draw(st.integers(1, 3)))
            order[i], order[j] = order[j], order[i]
    for _ in range(draw(st.integers(0, 3))):  # duplicates
        if order:
            i = draw(st.integers(0, len(order) - 1))
            order.insert(draw(st.integers(i, len(order))), order[i])
    return n, [0, *order]


@given(channels(), st.integers(0, 2**16 - 1))
def test_receiver_detects_loss_reordering_duplicates(channel: tuple[int, list[int]],
                                                     start: int) -> None:
    n, order = channel
    sender = bs.PacketSender(60, 1, start_seq=start)
    packets = [sender.push(_codes(TINY, 1, s))[0] for s in range(n)]
    rx = bs.PacketReceiver(60, 3)
    statuses = [rx.receive(packets[s]).status for s in order]
    # Expected, from the arrival order alone.
    seen: set[int] = set()
    highest = -1
    exp_late = exp_dup = 0
    for s in order:
        if s in seen:
            exp_dup += 1
        elif s < highest:
            exp_late += 1
        seen.add(s)
        highest = max(highest, s)
    exp_lost = sum(1 for s in range(highest) if s not in seen)
    st_ = rx.stats
    assert (st_.received, st_.lost, st_.reordered, st_.duplicates) == (
        len(seen), exp_lost, exp_late, exp_dup)
    assert statuses.count("late") == exp_late and statuses.count("duplicate") == exp_dup
    assert st_.corrupt == st_.stale == 0


def test_receiver_reports_gap_size_and_corrupt_packets() -> None:
    sender = bs.PacketSender(60, 1, start_seq=65533)
    packets = [sender.push(_codes(TINY, 1, s))[0] for s in range(6)]
    rx = bs.PacketReceiver(60, 3)
    assert rx.receive(packets[0]).status == "ok"
    r = rx.receive(packets[4])  # 65534, 65535, 0 missing (across the wrap)
    assert (r.status, r.lost_before, r.seq) == ("gap", 3, 1)
    assert rx.receive(packets[2]).status == "late"
    bad = rx.receive(packets[5][:-1])
    assert bad.status == "corrupt" and bad.codes is None and "size" in (bad.error or "")
    assert (rx.stats.lost, rx.stats.reordered, rx.stats.corrupt) == (2, 1, 1)


# Receiver resynchronisation (issue 14) -------------------------------------------------------
PLAYED = ("ok", "gap", "late", "resync")


@functools.cache
def _stream(n: int, start: int, seed: int) -> list[bytes]:
    """``n`` one-frame packets numbered from ``start``; ``seed`` makes the content its own."""
    sender = bs.PacketSender(60, 1, start_seq=start)
    codes = _codes(TINY, n, seed)
    return [sender.push(codes[:, i:i + 1])[0] for i in range(n)]


def test_one_stray_packet_far_ahead_does_not_stall_the_stream() -> None:
    good = _stream(1100, 100, seed=1)
    stray = _stream(1, 30100, seed=2)[0]  # valid CRC, 30 000 ahead
    rx = bs.PacketReceiver(60, 3)
    statuses = [rx.receive(p).status for p in good[:100]]
    statuses.append(rx.receive(stray).status)
    statuses += [rx.receive(p).status for p in good[100:]]
    assert statuses[100] == "stale"
    assert statuses[:100] + statuses[101:] == ["ok"] * 1100  # was: 1000 x "stale"
    assert (rx.stats.received, rx.stats.lost, rx.stats.stale, rx.stats.resyncs) == (1100, 0, 1, 0)


@pytest.mark.parametrize("sent_before", [5, 700, 5000])
def test_sender_restart_at_zero_resyncs_after_three_packets(sent_before: int) -> None:
    old = _stream(sent_before, 0, seed=3)
    new = _stream(600, 0, seed=4)  # restarted: numbers 0, 1, ... again, new content
    rx = bs.PacketReceiver(60, 3)
    assert all(rx.receive(p).status in ("ok", "gap") for p in old)
    got = [rx.receive(p) for p in new]
    statuses = [g.status for g in got]
    assert statuses[:2] == ["stale", "stale"] and statuses[2] == "resync"  # was: 500 x duplicate
    assert statuses[3:] == ["ok"] * 597
    assert got[2].lost_before == 0 and rx.stats.resyncs == 1 and rx.stats.duplicates == 0


def test_outage_longer_than_the_window_counts_the_loss_and_resyncs() -> None:
    pkts = _stream(3000, 65000, seed=5)  # wraps around 2**16
    rx = bs.PacketReceiver(60, 3, window=256)
    first = [rx.receive(p).status for p in pkts[:100]]
    after = [rx.receive(p) for p in pkts[1100:]]  # 1000 packets lost: more than the window
    assert first == ["ok"] * 100
    assert [g.status for g in after[:3]] == ["stale", "stale", "resync"]
    assert after[2].lost_before == 1000
    assert all(g.status == "ok" for g in after[3:])
    assert rx.stats.lost == 1000 and rx.stats.received == 100 + len(after) - 2


@st.composite
def impaired(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, int]], int]:
    """(window, first number, arrivals as (stream, index), resync events): loss bursts (some
    longer than the window), local reordering (within 2 numbers), duplicates, maybe a sender
    restart at 0. The 5 packets after a long outage arrive in order and without loss (so the
    resync costs exactly R - 1 = 2); a restarted sender's numbers are far from the old ones
    (a restarted packet under a number still missing would be taken for a late one)."""
    window = draw(st.sampled_from([8, 16, 64]))
    n = draw(st.integers(20, 300))
    keep, after_outage, calm, fixed = [0], [], 0, {0}
    i = 1
    while i < n:
        if calm == 0 and draw(st.integers(0, 9)) == 0:  # a loss burst
            i += draw(st.one_of(st.integers(1, 5), st.integers(window, 2 * window)))
            continue
        if i - keep[-1] - 1 >= window:  # the bursts since the last packet: a long outage
            after_outage.append(i)
            calm = 5
        if calm:
            fixed.add(len(keep))
        keep.append(i)
        calm = max(0, calm - 1)
        i += 1
    for _ in range(draw(st.integers(0, 8))):  # swap neighbours <= 2 numbers apart
        a = draw(st.integers(0, len(keep) - 1))
        b = min(len(keep) - 1, a + draw(st.integers(1, 2)))
        if keep[b] - keep[a] == b - a and a and keep[a] - keep[a - 1] == 1 \
                and not {a, b} & fixed:  # within a stretch without loss
            keep[a], keep[b] = keep[b], keep[a]
    arrivals = [(0, k) for k in keep]
    for j in sorted(draw(st.lists(st.integers(0, len(arrivals) - 1), max_size=6)), reverse=True):
        arrivals.insert(j + 1, arrivals[j])  # a duplicate right after the original
    start = draw(st.sampled_from([0, 1234, 65400, 65535]))
    if draw(st.booleans()) and len(arrivals) > 10:
        start = 30000
        cut = draw(st.integers(5, len(arrivals) - 5))
        arrivals = arrivals[:cut] + [(1, k) for k in range(draw(st.integers(10, 60)))]
        after_outage = [k for k in after_outage if (0, k) in arrivals[:cut]] + [-1]
    return window, start, arrivals, len(after_outage)


@given(impaired())
@settings(max_examples=150, deadline=None)
def test_receiver_rules_under_reordering_loss_bursts_duplicates_restarts(
        case: tuple[int, int, list[tuple[int, int]], int]) -> None:
    window, start, arrivals, events = case
    streams = [_stream(400, start, seed=6), _stream(100, 0, seed=7)]
    rx = bs.PacketReceiver(60, 3, window=window)
    played: list[tuple[int, int]] = []
    for s, k in arrivals:
        r = rx.receive(streams[s][k])
        assert r.status in (*PLAYED, "duplicate", "stale"), r
        if r.status in PLAYED:
            played.append((s, k))
    # Nothing is played twice; every packet that arrived is played except R - 1 = 2 after
    # each long outage or restart (what the resync rule costs); copies are duplicates.
    assert len(played) == len(set(played))
    distinct = set(arrivals)
    assert len(distinct) - 2 * events <= len(played) <= len(distinct)
    assert rx.stats.resyncs <= events
    assert rx.stats.duplicates == len(arrivals) - len(distinct)
    if any(s == 1 for s, _ in arrivals):  # after a restart, the new stream plays to its end
        assert played[-1] == arrivals[-1]
