"""Entropy-coded ``.dwc`` (format 3): the rANS coder, the context tables, the container, the
shipped default's tables and the ``fit-entropy`` / ``encode`` / ``decode`` / ``info`` commands.

The coder is lossless by construction; these tests show it over random codes, tables, block
sizes and write chunkings (hypothesis), and that every way a file can be damaged or paired
with the wrong tables is a clear error.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from dwancodec import bitstream as bs
from dwancodec.bitstream.entropy import FILE, PRECISION, EntropyTables, find_tables
from dwancodec.bundled import default_model_dir, demo_clip
from dwancodec.cli import main
from dwancodec.model import Codec

from .conftest import DATA

SPEECH = DATA / "speech_en.flac"  # 4 s, 16 kHz


def _tables(levels: tuple[int, ...], stages: int, seed: int, skew: float) -> EntropyTables:
    """Tables fitted on random codes drawn from a skewed distribution (``skew`` 0: uniform)."""
    rng = np.random.default_rng(seed)
    k = int(np.prod(levels))
    p = np.exp(-skew * np.arange(k) / k)
    codes = [rng.choice(k, size=(stages, 30), p=p / p.sum()) for _ in range(4)]
    return EntropyTables.fit(bs.context_counts(codes, levels, stages), levels)


levels_st = st.lists(st.integers(2, 9), min_size=1, max_size=4).map(tuple)


@settings(max_examples=60, deadline=None)
@given(levels=levels_st, n_q=st.integers(1, 4), frames=st.integers(1, 90),
       seed=st.integers(0, 2**16), skew=st.sampled_from([0.0, 3.0, 30.0]))
def test_a_block_decodes_to_its_codes_and_ends_where_it_ends(
        levels: tuple[int, ...], n_q: int, frames: int, seed: int, skew: float) -> None:
    """Any codes, any tables (even ones that never saw them): the block decodes exactly,
    consuming exactly its bytes (the next block starts there), at its ideal cost + its state."""
    tables = _tables(levels, 4, seed, skew)
    rng = np.random.default_rng(seed + 1)
    codes = rng.integers(0, int(np.prod(levels)), size=(n_q, frames))
    data = tables.encode_block(codes)
    got, end = tables.decode_block(data + b"\x00\xff", 0, n_q, frames)
    np.testing.assert_array_equal(got, codes)
    assert end == len(data)
    assert 4 <= len(data) <= 4 + tables.block_bits(codes) / 8 + 2


def test_the_tables_follow_their_rules() -> None:
    t = _tables((8, 5, 3), 2, 0, 3.0)
    assert (t.freq.astype(np.int64).sum(-1) == 1 << PRECISION).all()
    assert (t.freq[:, 1, ..., 5:] == 0).all() and (t.freq[:, 1, ..., :5] >= 1).all()
    with pytest.raises(ValueError, match="sum to"):
        EntropyTables(t.freq.astype(np.int64) + 1, (8, 5, 3))
    bad = t.freq.copy()
    bad[0, 1, 0, 0, 5], bad[0, 1, 0, 0, 0] = 1, bad[0, 1, 0, 0, 0] - 1
    with pytest.raises(ValueError, match="above it 0"):
        EntropyTables(bad, (8, 5, 3))
    with pytest.raises(ValueError, match="freq must be"):
        EntropyTables(t.freq[:, :2], (8, 5, 3))


def test_tables_save_and_load_with_their_identity(tmp_path: Path) -> None:
    t = _tables((4, 3), 3, 1, 3.0)
    t.codes = "0123456789abcdef"
    p = t.save(tmp_path / FILE)
    u = EntropyTables.load(p)
    assert u.identity() == t.identity() and u.codes == t.codes and u.levels == t.levels
    assert _tables((4, 3), 3, 2, 3.0).identity() != t.identity()
    p.write_bytes(p.read_bytes()[:-7])
    with pytest.raises(ValueError, match=str(p)):
        EntropyTables.load(p)


@settings(max_examples=40, deadline=None)
@given(frames=st.integers(0, 130), block=st.integers(1, 70), n_q=st.integers(1, 3),
       chunks=st.lists(st.integers(1, 40), min_size=1, max_size=8), seed=st.integers(0, 999))
def test_a_file_is_the_same_bytes_whatever_the_write_chunking(
        frames: int, block: int, n_q: int, chunks: list[int], seed: int) -> None:
    levels = (5, 4, 3)
    tables = _tables(levels, 3, seed, 3.0)
    header = bs.Header(model="m@0123456789abcdef", sample_rate=16000, hop_length=320, n_q=n_q,
                       num_codebooks=3, codebook_size=60, levels=levels,
                       codes="0123456789abcdef").entropy_coded(tables, block)
    codes = np.random.default_rng(seed).integers(0, 60, size=(n_q, frames))
    whole = bs.to_bytes(header, codes, None, tables)
    buf = io.BytesIO()
    w = bs.DwcWriter(buf, header, tables)
    i = 0
    for n in chunks * (frames // max(sum(chunks), 1) + 1):
        w.write(codes[:, i:i + n])
        i += n
    w.finish()
    assert buf.getvalue() == whole
    h, got = bs.from_bytes(whole, tables)
    np.testing.assert_array_equal(got, codes)
    assert (h.version, h.num_frames, h.block_frames, h.num_blocks) == (
        3, frames, block, -(-frames // block))
    parts = list(bs.DwcFile.parse(whole, tables).iter_codes(7))
    np.testing.assert_array_equal(np.concatenate(parts, 1) if parts else codes, codes)


def _file(frames: int = 120) -> tuple[bytes, EntropyTables, np.ndarray]:
    levels = (8, 6)
    tables = _tables(levels, 2, 3, 30.0)
    header = bs.Header(model="m@0123456789abcdef", sample_rate=16000, hop_length=320, n_q=2,
                       num_codebooks=2, codebook_size=48, levels=levels,
                       codes="0123456789abcdef").entropy_coded(tables)
    codes = np.random.default_rng(0).integers(0, 48, size=(2, frames))
    return bs.to_bytes(header, codes, None, tables), tables, codes


def test_damaged_or_mismatched_files_are_clear_errors() -> None:
    data, tables, _ = _file()
    other = _tables((8, 6), 2, 4, 30.0)
    for bad, message in [
        (data[:-9], "truncated"),
        (data[:60] + bytes([data[60] ^ 1]) + data[61:], "checksum"),
        (data + b"\x00", "unexpected bytes"),
    ]:
        with pytest.raises(bs.BitstreamError, match=message):
            bs.from_bytes(bad, tables)
    with pytest.raises(bs.BitstreamError, match=f"tables {tables.identity()}.*has tables"):
        bs.from_bytes(data, other)
    f = bs.DwcFile.parse(data)  # no tables: header and checksums only
    with pytest.raises(bs.BitstreamError, match="need the model's tables"):
        f.codes()
    # a payload whose checksum was recomputed: the coder's own checks still refuse it
    h = bs.Header.unpack(data)
    payload = bytearray(data[h.header_size:-4])
    payload[-1] ^= 0x55
    import zlib
    forged = data[:h.header_size] + bytes(payload) + zlib.crc32(payload).to_bytes(4, "little")
    try:
        _, got = bs.from_bytes(forged, tables)
    except bs.BitstreamError as e:
        assert "entropy-coded block" in str(e)
    else:  # the last bytes may decode to other codes in rare cases; never to the same ones
        assert not np.array_equal(got, _file()[2])


def test_header_fields_of_format_3_are_checked() -> None:
    h = bs.Header.unpack(_file()[0])
    for change, message in [({"block_frames": 0}, "entropy block"),
                             ({"entropy_bytes": 3}, "cannot hold"),
                             ({"codes": ""}, "needs a codes identity"),
                             ({"entropy": "xyz"}, "hex digits")]:
        from dataclasses import replace

        with pytest.raises(bs.BitstreamError, match=message):
            replace(h, **change).validate()


def test_the_shipped_tables_are_the_shipped_codes_and_save_a_fifth() -> None:
    """The default model's tables were fitted for its codes (a new encoder without new tables
    fails here), and on the demo clip (not in the fitting data) an entropy-coded file is
    smaller than the fixed-rate one at every n_q, by a fifth with every stage, with the same
    codes."""
    codec = Codec.from_pretrained(default_model_dir())
    tables = codec.entropy_tables
    assert tables is not None and tables.codes == codec.codes_identity()
    assert find_tables(default_model_dir() / "onnx" / "blocks").identity() == tables.identity()
    audio, sr = sf.read(demo_clip(), dtype="float32")
    assert sr == codec.sample_rate
    import torch

    with torch.inference_mode():
        codes = codec.encode(torch.from_numpy(audio)[None, None]).numpy()[0]
    template = bs.Header.for_engine(codec)
    from dataclasses import replace

    for n_q in range(1, codec.num_codebooks + 1):
        fixed = replace(template, n_q=n_q)
        a = bs.to_bytes(fixed, codes[:n_q])
        b = bs.to_bytes(fixed.entropy_coded(tables), codes[:n_q], None, tables)
        assert len(b) < (0.8 if n_q == codec.num_codebooks else 1.0) * len(a), (n_q, len(b))
        np.testing.assert_array_equal(bs.from_bytes(b)[1], codes[:n_q])  # shipped: by identity


def test_fit_encode_decode_info_through_the_cli(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A model without tables writes format 2; fit-entropy gives it tables, after which encode
    writes format 3 (the same codes, smaller), decode gives the same audio, --fixed-rate
    writes format 2 again, and a model without those tables refuses the file in one line."""
    bundle = Codec.from_config("tiny", seed=0).save_pretrained(tmp_path / "tiny")
    other = Codec.from_config("tiny", seed=0).save_pretrained(tmp_path / "same")
    assert main(["encode", str(SPEECH), str(tmp_path / "fixed.dwc"), "--model", str(bundle),
                 "-q"]) == 0
    assert bs.read_dwc(tmp_path / "fixed.dwc").header.version == 2
    assert main(["fit-entropy", str(DATA), "--model", str(bundle), "-q"]) == 0
    assert "tables" in capsys.readouterr().out and (bundle / FILE).is_file()
    assert main(["fit-entropy", str(DATA), "--model", str(bundle), "-q"]) == 2
    assert "exists (--force replaces it)" in capsys.readouterr().err
    assert main(["encode", str(SPEECH), str(tmp_path / "e.dwc"), "--model", str(bundle),
                 "-q"]) == 0
    tables = EntropyTables.load(bundle / FILE)
    e, f = bs.read_dwc(tmp_path / "e.dwc", tables), bs.read_dwc(tmp_path / "fixed.dwc")
    assert e.header.version == 3 and e.header.entropy == tables.identity()
    assert e.header.file_size < f.header.file_size
    np.testing.assert_array_equal(e.codes(), f.codes())
    for name in ("e", "fixed"):
        assert main(["decode", str(tmp_path / f"{name}.dwc"), str(tmp_path / f"{name}.wav"),
                     "--model", str(bundle), "-q"]) == 0
    np.testing.assert_array_equal(sf.read(tmp_path / "e.wav")[0],
                                  sf.read(tmp_path / "fixed.wav")[0])
    assert main(["encode", str(SPEECH), str(tmp_path / "again.dwc"), "--model", str(bundle),
                 "--fixed-rate", "-q"]) == 0
    assert (tmp_path / "again.dwc").read_bytes() == (tmp_path / "fixed.dwc").read_bytes()
    assert main(["decode", str(tmp_path / "e.dwc"), str(tmp_path / "no.wav"), "--model",
                 str(other), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "entropy-coded with tables" in err and "has none" in err and "\n" not in err
    assert not (tmp_path / "no.wav").exists()
    assert main(["info", str(tmp_path / "e.dwc"), "--model", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "format version 3" in out and "every frame holds a valid code" in out
    assert f"tables {tables.identity()}" in out


def test_an_export_carries_the_tables_and_onnx_runtime_writes_format_3(tmp_path: Path) -> None:
    """A standalone export gets a copy of the model's tables (its block graphs find them); an
    export inside the bundle uses the bundle's (no copy); the ONNX Runtime engine then writes
    the same format-3 stream as torch (codes equal but at rounding ties) and decodes torch's."""
    pytest.importorskip("onnxruntime")
    from dwancodec.commands.files import decode_file, encode_file
    from dwancodec.export import export_onnx
    from dwancodec.runtime import OnnxCodec

    bundle = Codec.from_config("tiny", seed=0).save_pretrained(tmp_path / "tiny")
    assert main(["fit-entropy", str(DATA), "--model", str(bundle), "-q"]) == 0
    codec = Codec.from_pretrained(bundle)
    ident = codec.entropy_tables.identity()
    export_onnx(codec, tmp_path / "alone", exporter="torchscript", try_offline=False,
                block_frames=4, int8=False)
    export_onnx(codec, bundle / "onnx", exporter="torchscript", try_offline=False,
                block_frames=None, int8=False)
    assert (tmp_path / "alone" / FILE).is_file() and not (bundle / "onnx" / FILE).exists()
    assert not (tmp_path / "alone" / "blocks" / FILE).exists()
    for d in (tmp_path / "alone", tmp_path / "alone" / "blocks", bundle / "onnx"):
        assert OnnxCodec(d).entropy_tables.identity() == ident, d
    a = encode_file(OnnxCodec(tmp_path / "alone"), SPEECH, tmp_path / "o.dwc")
    b = encode_file(codec, SPEECH, tmp_path / "t.dwc")
    assert a.version == b.version == 3 and a.entropy == b.entropy == ident
    t = codec.entropy_tables
    co, ct = bs.read_dwc(tmp_path / "o.dwc", t).codes(), bs.read_dwc(tmp_path / "t.dwc", t).codes()
    assert (co == ct).all(axis=0).mean() > 0.95
    decode_file(OnnxCodec(tmp_path / "alone"), tmp_path / "t.dwc", tmp_path / "t.wav")
    assert sf.info(tmp_path / "t.wav").frames == b.length


@settings(max_examples=200, deadline=None)
@given(edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), min_size=1,
                      max_size=3),
       cut=st.integers(0, 3))
def test_fuzzed_payloads_are_refused_or_are_their_own_encoding(
        edits: list[tuple[int, int]], cut: int) -> None:
    """Byte edits and truncations of a format-3 payload, its checksum fixed up so that only
    the coder's own checks stand: every input is refused with a BitstreamError, or decodes to
    codes whose encoding is byte for byte that input (a valid stream of other codes)."""
    import zlib

    data, tables, _ = _file(90)
    h = bs.Header.unpack(data)
    payload = bytearray(data[h.header_size:-4])
    for at, x in edits:
        payload[at % len(payload)] ^= x
    del payload[len(payload) - cut:]
    from dataclasses import replace

    head = replace(h, entropy_bytes=len(payload))
    try:
        head.validate()
    except bs.BitstreamError:
        return
    forged = head.pack() + bytes(payload) + zlib.crc32(payload).to_bytes(4, "little")
    try:
        got_h, got = bs.from_bytes(forged, tables)
    except bs.BitstreamError:
        return
    assert bs.to_bytes(got_h, got, got_h.length, tables) == forged


def test_encode_bitrate_picks_stages_by_the_coded_rate(tmp_path: Path) -> None:
    """--bitrate counts the coded rate the tables record (the default model: 5 stages in
    3 kbps, 2.9 kbps coded) and the fixed rate with --fixed-rate (4 stages, 2.78 kbps); the
    file it writes stays within the rate asked for on real speech."""
    tables = EntropyTables.load(default_model_dir() / FILE)
    assert len(tables.stage_bits) == 8 and 50 * sum(tables.stage_bits[:5]) / 1000 <= 3.0
    assert main(["encode", str(SPEECH), str(tmp_path / "c.dwc"), "--bitrate", "3", "-q"]) == 0
    assert main(["encode", str(SPEECH), str(tmp_path / "f.dwc"), "--bitrate", "3",
                 "--fixed-rate", "-q"]) == 0
    c, f = bs.read_dwc(tmp_path / "c.dwc").header, bs.read_dwc(tmp_path / "f.dwc").header
    assert (c.n_q, c.version, f.n_q, f.version) == (5, 3, 4, 2)
    assert c.packed_bitrate <= 3000 and f.packed_bitrate <= 3000
    with pytest.raises(ValueError, match="entropy-coded"):
        from dwancodec.lengths import n_q_for_bitrate

        n_q_for_bitrate(0.3, 50, 15360, 8, tables.stage_bits)


def test_the_worked_examples_hold() -> None:
    """The docstrings' examples (digits, payload bounds, the coded-rate stage choice)."""
    import doctest

    from dwancodec import lengths
    from dwancodec.bitstream import container, entropy

    for module in (entropy, container, lengths):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__
