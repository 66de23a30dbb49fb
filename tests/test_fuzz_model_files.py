"""Hostile model folders (issue 14): config.json, the safetensors header, the ONNX sidecar and
the graph files. Every case is refused with a ``ValueError`` / ``FileNotFoundError`` naming the
problem, or loads and works; nothing else escapes, and nothing large is allocated.

The fuzz loops run in a child interpreter so that its peak memory (``ru_maxrss``) measures the
loads alone, not what earlier tests of this process allocated.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dwancodec.model import Codec
from dwancodec.runtime import SIDECAR, OnnxCodec

from .test_onnx_export import exported

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "dwancodec" / "assets" / "default"

# The mutator shared by both fuzz loops: random edits of a JSON document.
MUTATOR = textwrap.dedent("""
    import copy, json, math, random

    JUNK = [0, -1, 1, 2, 3, 7, 64, 2**31, 10**8, 10**18, -10**9, 0.5, -0.0, 1e300, math.nan,
            math.inf, -math.inf, "", "abc", "x" * 300, "../../etc/passwd", "/etc/passwd",
            "a/b.onnx", ".hidden.onnx", "..", None, True, False, [], [1], [0] * 20, [[1]],
            ["a"], [2**40], {}, {"a": 1}, {"file": "../x.onnx"}]

    def paths(node, prefix=()):
        yield prefix
        if isinstance(node, dict):
            for k, v in node.items():
                yield from paths(v, prefix + (k,))
        elif isinstance(node, list):
            for i, v in enumerate(node[:6]):
                yield from paths(v, prefix + (i,))

    def mutate(doc, rng):
        doc = copy.deepcopy(doc)
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            all_paths = [p for p in paths(doc) if p]
            if not all_paths:
                break
            p = rng.choice(all_paths)
            parent = doc
            for k in p[:-1]:
                parent = parent[k]
            r = rng.random()
            if r < 0.15 and isinstance(parent, dict):
                del parent[p[-1]]
            elif r < 0.2 and isinstance(parent, dict):
                parent["unknown_" + str(rng.randint(0, 9))] = rng.choice(JUNK)
            elif r < 0.35 and isinstance(parent[p[-1]], (int, float)) \\
                    and not isinstance(parent[p[-1]], bool):
                parent[p[-1]] = parent[p[-1]] * rng.choice([2, 8, 1000, -1, 0]) + rng.choice([0, 1])
            else:
                parent[p[-1]] = copy.deepcopy(rng.choice(JUNK))
        return doc

    def raw_case(text, rng):
        r = rng.random()
        if r < 0.3:
            return text[: rng.randint(0, len(text))]
        if r < 0.5:
            return "[" * rng.choice([10, 100000])
        if r < 0.7:
            return bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))).decode("latin-1")
        return json.dumps(rng.choice([[], 1, "x", None, {"format": "dwancodec-onnx"}]))
""")

CONFIG_CHILD = MUTATOR + textwrap.dedent("""
    import resource, shutil, sys, traceback, warnings
    from pathlib import Path
    from dwancodec.model import Codec

    src, work, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    shutil.copytree(src, work)
    text = (src / "config.json").read_text()
    doc = json.loads(text)
    rng = random.Random(14)
    outcome = {"loaded": 0, "refused": 0, "unexpected": []}
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(n):
        if rng.random() < 0.1:
            (work / "config.json").write_text(raw_case(text, rng))
        else:
            (work / "config.json").write_text(json.dumps(mutate(doc, rng)))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Codec.from_pretrained(work)
            outcome["loaded"] += 1
        except (ValueError, FileNotFoundError) as e:
            outcome["refused"] += 1
            assert str(e) and "\\n" not in str(e).strip(), repr(e)
        except BaseException as e:
            outcome["unexpected"].append(traceback.format_exc()[-2000:])
    outcome["maxrss_growth_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    print(json.dumps(outcome))
""")

SIDECAR_CHILD = MUTATOR + textwrap.dedent("""
    import resource, shutil, sys, traceback
    from pathlib import Path
    import numpy as np
    from dwancodec.runtime import OnnxCodec, load_sidecar

    src, work, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    shutil.copytree(src, work)
    text = (src / "dwancodec_onnx.json").read_text()
    doc = json.loads(text)
    used = ("model", "sample_rate", "hop_length", "frames_per_step", "num_codebooks",
            "encoder_n_q", "codebook_size", "latent_dim", "latency_samples", "latency_ms",
            "encoder_state", "decoder_state", "graphs")
    base_files = {n: (g.get("file"), g.get("optimized")) for n, g in doc["graphs"].items()}
    rng = random.Random(14)
    outcome = {"loaded": 0, "refused": 0, "sessions": 0, "unexpected": []}
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    x = np.zeros((1, 100), np.float32)
    for i in range(n):
        case = raw_case(text, rng) if rng.random() < 0.1 else json.dumps(mutate(doc, rng))
        (work / "dwancodec_onnx.json").write_text(case)
        try:
            meta = load_sidecar(work)
            files = {n: (g.get("file"), g.get("optimized")) for n, g in meta["graphs"].items()}
            same = all(meta.get(k) == doc.get(k) for k in used if k != "graphs") \
                and files == base_files
            if not same and outcome["sessions"] < 150:  # a change a runtime acts on: open
                # the graphs and run them (the first 150 such cases: sessions cost ~50 ms)
                outcome["sessions"] += 1
                codec = OnnxCodec(work, use_full_graphs=rng.random() < 0.5)
                codec.decode(codec.encode(x))
                enc = codec.streaming_encoder(2)
                enc.push(np.zeros((2, 3 * codec.hop_length), np.float32))
            outcome["loaded"] += 1
        except (ValueError, FileNotFoundError) as e:
            outcome["refused"] += 1
            assert str(e) and "\\n" not in str(e).strip(), repr(e)
        except BaseException as e:
            outcome["unexpected"].append(case[:300] + "\\n" + traceback.format_exc()[-2000:])
    outcome["maxrss_growth_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    print(json.dumps(outcome))
""")


def _child(script: str, *args: str | Path, timeout: float = 600) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True,
                       text=True, timeout=timeout, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_fuzz_config_json(tmp_path: Path) -> None:
    """3000 hostile config.json files beside the tiny model's weights."""
    bundle = Codec.from_config("tiny", seed=0).save_pretrained(tmp_path / "tiny")
    out = _child(CONFIG_CHILD, bundle, tmp_path / "work", 3000)
    print(out | {"unexpected": len(out["unexpected"])})
    assert out["unexpected"] == [], out["unexpected"][0]
    assert out["refused"] > 2000 and out["loaded"] > 50  # both kinds are exercised
    assert out["maxrss_growth_kb"] < 100_000


def test_fuzz_onnx_sidecar(tmp_path: Path) -> None:
    """3000 hostile sidecars beside the tiny model's graphs (the graphs are opened and run for
    the first 150 that pass the sidecar checks with a field a runtime uses changed)."""
    out = _child(SIDECAR_CHILD, exported(), tmp_path / "work", 3000)
    print(out | {"unexpected": len(out["unexpected"])})
    assert out["unexpected"] == [], out["unexpected"][0]
    assert out["refused"] > 500 and out["sessions"] > 20 and out["loaded"] > 500
    assert out["maxrss_growth_kb"] < 150_000


# The cases of the issue, one by one ------------------------------------------------------------
BIG = textwrap.dedent("""
    import json, resource, shutil, sys
    from pathlib import Path
    from dwancodec.model import Codec
    src, work, field = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    value = json.loads(sys.argv[4])
    shutil.copytree(src, work, ignore=shutil.ignore_patterns("onnx"))
    cfg = json.loads((work / "config.json").read_text())
    section, _, name = field.rpartition(".")
    (cfg[section] if section else cfg)[name] = value
    (work / "config.json").write_text(json.dumps(cfg))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        Codec.from_pretrained(work)
        msg = "loaded"
    except ValueError as e:
        msg = str(e)
    growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    print(json.dumps({"msg": msg, "growth_kb": growth}))
""")


@pytest.mark.parametrize(("field", "value", "message"), [
    ("decoder.dim", 2048, "tensor decoder.embed.conv.weight has shape [256, 256, 3] in the file, "
                          "the config gives [2048, 256, 3]"),
    ("decoder.dim", 100_000_000, "config field decoder.dim must be an integer in [1, 4096]"),
    ("decoder.depth", 64, "does not match"),
    ("sample_rate", "abc", "config field sample_rate must be an integer in [1, 768000], got 'abc'"),
    ("quantizer.levels", [8, 8, 8, 6], "does not match"),
    ("encoder.strides", [4, 4, 4, 5.0], "config field encoder.strides must be a list of 1 to 16 "
                                        "integers"),
], ids=["dim-2048", "dim-1e8", "depth-64", "rate-abc", "levels", "float-stride"])
def test_bad_shipped_config_is_refused_before_building(tmp_path: Path, field: str,
                                                       value: object, message: str) -> None:
    """The shipped model's folder with one config field changed: a one-line error naming the
    field or the first mismatching tensor, and no model built (was: a traceback after building
    834 MB, or trying 307 GB)."""
    out = _child(BIG, DEFAULT, tmp_path / "m", field, json.dumps(value))
    assert message in out["msg"], out
    assert out["growth_kb"] < 60_000, out  # the default model itself is ~16 MB of float32


def test_corrupt_safetensors_headers(tmp_path: Path) -> None:
    bundle = Codec.from_config("tiny", seed=0).save_pretrained(tmp_path / "b")
    weights = bundle / "model.safetensors"
    data = weights.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    key = next(k for k in header if k != "__metadata__")
    cases = {
        "short": data[:5],
        "huge header length": (2**62).to_bytes(8, "little") + data[8:],
        "not json": data[:8] + b"{" * n + data[8 + n:],
        "offsets outside": None,
        "wrong byte count": None,
    }
    h2 = json.loads(json.dumps(header))
    h2[key]["data_offsets"] = [0, 10**12]
    cases["offsets outside"] = _with_header(h2, data[8 + n:])
    h3 = json.loads(json.dumps(header))
    h3[key]["shape"] = [*h3[key]["shape"], 1000]
    cases["wrong byte count"] = _with_header(h3, data[8 + n:])
    for name, blob in cases.items():
        weights.write_bytes(blob)
        with pytest.raises(ValueError, match="is not a valid safetensors file"):
            Codec.from_pretrained(bundle)
        print(name, "refused")


def _with_header(header: dict, body: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + body


def test_sidecar_file_entries_cannot_leave_the_folder(tmp_path: Path) -> None:
    d = tmp_path / "export"
    shutil.copytree(exported(), d)
    meta = json.loads((d / SIDECAR).read_text())
    outside = tmp_path / "outside.onnx"
    shutil.copy(d / "encoder_step.onnx", outside)
    for bad in ("../outside.onnx", "../../etc/passwd", "/etc/passwd", str(outside),
                "sub/encoder_step.onnx", ".."):
        m = json.loads(json.dumps(meta))
        m["graphs"]["encoder_step"]["file"] = bad
        (d / SIDECAR).write_text(json.dumps(m))
        with pytest.raises(ValueError, match=r"must be the name of an \.onnx file in the folder"):
            OnnxCodec(d)  # was: the file outside the folder was opened
    (d / SIDECAR).write_text(json.dumps(meta))
    (d / "decoder_step.onnx").unlink()
    os.symlink(outside, d / "decoder_step.onnx")  # a link out of the folder
    with pytest.raises(ValueError, match="is not a file inside"):
        OnnxCodec(d)


def test_corrupt_graph_files_and_missing_keys(tmp_path: Path) -> None:
    d = tmp_path / "export"
    shutil.copytree(exported(), d)
    meta = json.loads((d / SIDECAR).read_text())
    for g in meta["graphs"].values():  # digests would refuse every edit below first
        g.pop("sha256")  # (tests/test_export_verification.py); here: the checks behind them
    (d / SIDECAR).write_text(json.dumps(meta))
    good = (d / "encoder_step.onnx").read_bytes()
    for blob in (b"", b"garbage" * 100, good[: len(good) // 2]):
        (d / "encoder_step.onnx").write_bytes(blob)
        with pytest.raises(ValueError, match=r"encoder_step\.onnx is not a valid ONNX graph"):
            OnnxCodec(d)  # was: a raw InvalidProtobuf
    (d / "encoder_step.onnx").write_bytes((d / "decoder_step.onnx").read_bytes())
    with pytest.raises(ValueError, match=r"does not match dwancodec_onnx\.json"):
        OnnxCodec(d)  # the decoder graph under the encoder's name
    (d / "encoder_step.onnx").write_bytes(good)
    meta = json.loads((d / SIDECAR).read_text())
    for key in ("hop_length", "encoder_state", "graphs", "model", "latent_dim"):
        m = {k: v for k, v in meta.items() if k != key}
        (d / SIDECAR).write_text(json.dumps(m))
        with pytest.raises(ValueError, match=f"is corrupt: {key}"):
            OnnxCodec(d)  # was: KeyError
    m = json.loads(json.dumps(meta))
    m["encoder_state"][0]["shape"] = [*m["encoder_state"][0]["shape"][:-1], 99]
    (d / SIDECAR).write_text(json.dumps(m))
    with pytest.raises(ValueError, match=r"does not match dwancodec_onnx\.json"):
        OnnxCodec(d)  # state shape vs graph, caught when opening (not inside a step)
