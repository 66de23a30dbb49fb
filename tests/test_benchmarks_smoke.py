"""Quick checks of the benchmark scripts' measurements (no timing assertions)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dwancodec.config import QUANTIZER_KINDS

from .conftest import make_codec

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


latency = _load("latency")


@pytest.mark.parametrize("kind", QUANTIZER_KINDS)
def test_impulse_latency_matches_declared(kind: str) -> None:
    codec = make_codec("tiny", kind)
    r = latency.impulse_latency(codec)
    assert r["measured_samples"] == codec.latency_samples == r["declared_samples"]
    assert r["match"] and r["aligned"]
    assert r["measured_ms"] == pytest.approx(codec.latency_ms)


def test_latency_report_lists_every_model(tmp_path: Path) -> None:
    bundle = make_codec("tiny").save_pretrained(tmp_path / "tiny")
    rows = latency.algorithmic(str(bundle), ["tiny"])
    assert [r["model"].split()[0] for r in rows] == ["config", "bundle"]
    text = latency.report(rows, [], {})
    assert text.count("| yes | yes |") == 2


@settings(max_examples=20, deadline=None)
@given(lag=st.integers(0, 60), seed=st.integers(0, 2**16))
def test_envelope_lag_finds_a_known_delay(lag: int, seed: int) -> None:
    """The server-side check recovers a delay (5 ms steps) of a bursty signal."""
    rng = np.random.default_rng(seed)
    rate = 16000
    bursts = np.repeat(rng.random(400) < 0.3, 80).astype(np.float32)  # 2 s of 5 ms on/off
    a = bursts * rng.standard_normal(bursts.size).astype(np.float32)
    b = np.concatenate([np.zeros(lag * 80, np.float32), a])[: a.size]
    assert latency._envelope_lag_ms(a, b, rate) == pytest.approx(5.0 * lag)


def test_peers_report_puts_ratios_first() -> None:
    peers = _load("peers")
    row = {"enc_ms": 1.0, "dec_ms": 1.0, "p95_ms": 3.0, "peak_rss_mb": 90.0, "spread": 1.1}
    res = {"reps": 3, "seconds": 10.0, "dwancodec": {}, "rows": [
        {"cell": "dwancodec:ort-step", "threads": 1, **row, "ms_per_s": 20.0},
        {"cell": "mimi:step", "threads": 1, **row, "ms_per_s": 300.0}],
        "peers": {"mimi": {"label": "Mimi (moshi)", "params_m": 79.3, "sr": 24000,
                           "frame": 1920, "frame_ms": 80.0, "kbps": 1.1, "latency_ms": 80.0,
                           "streaming": "yes"}}}
    text = peers.report(res)
    assert text.index("Ratios") < text.index("Absolute")
    assert "15.0x faster than Mimi (step)" in text


def test_file_coding_runs_the_real_commands_on_both_engines() -> None:
    """benchmarks/file_coding.py on the shipped model, 2 s: the block graphs', the step
    graphs' and torch's files decode to the input's length and their codes agree except at
    rounding ties (a handful of frames)."""
    files = _load("file_coding")
    r = files.measure(None, files.DEMO, 2.0, 1, ["onnx", "onnx-steps", "torch"], 1, None)
    assert set(r["decoded_samples"].values()) == {r["samples"]} == {32000}
    for cell in r["cells"].values():
        assert all(v > 0 for series in cell.values() for v in series)
    c = r["codes"]
    assert (c["reference"], c["frames"]) == ("onnx", 100)
    assert set(c["frames_differing"]) == {"onnx-steps", "torch"}
    assert all(v <= 5 for v in c["frames_differing"].values())
    text = files.report(r)
    assert "| onnx |" in text and "| onnx-steps |" in text and "| torch |" in text
    assert "(input 32000: equal)" in text
