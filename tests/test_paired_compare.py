"""recipes/paired_compare.py: the paired bootstrap of per-clip differences between two
benchmarks/quality.py results (training-log round 14)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "recipes"))
import paired_compare


def result(path: Path, scores: dict[str, list[float]]) -> Path:
    """A quality.json with one DwanCodec label and clips c0.. scored ``scores[metric][i]``."""
    n = len(next(iter(scores.values())))
    rows = [{"clip": f"c{i}", "codec": "DwanCodec", "label": "DwanCodec n_q=2",
             "scores": {k: v[i] for k, v in scores.items()}} for i in range(n)]
    rows.append({"clip": "c0", "codec": "Opus", "label": "Opus 6 kbps",
                 "scores": {k: 9.0 for k in scores}})
    path.write_text(json.dumps({"per_clip": rows}))
    return path


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=2, max_size=12))
def test_the_interval_holds_the_mean_within_the_range_of_the_clips(d: list[float]) -> None:
    diffs = np.array(d)
    mean, lo, hi = paired_compare.paired_interval(diffs, n_boot=500)
    assert mean == pytest.approx(diffs.mean())
    assert diffs.min() - 1e-12 <= lo <= mean + 1e-12 and mean - 1e-12 <= hi <= diffs.max() + 1e-12


def test_a_gain_on_every_clip_is_sure_and_mel_counts_lower_as_better(tmp_path: Path) -> None:
    base = {"pesq_wb": [2.0, 1.5, 2.5, 1.8], "stoi": [0.8, 0.9, 0.85, 0.7],
            "mel_distance": [0.2, 0.18, 0.17, 0.3], "si_sdr": [0.0, 1.0, -1.0, 2.0]}
    better = {"pesq_wb": [x + 0.05 for x in base["pesq_wb"]], "stoi": base["stoi"],
              "mel_distance": [x - 0.01 for x in base["mel_distance"]],
              "si_sdr": [2.0, -3.0, 4.0, -5.0]}
    rows = {r["metric"]: r for r in paired_compare.compare(
        result(tmp_path / "a.json", base), result(tmp_path / "b.json", better), n_boot=500)}
    assert rows["PESQ-WB"]["low"] == pytest.approx(0.05) and rows["PESQ-WB"]["wins"] == 4
    assert rows["mel"]["mean"] == pytest.approx(0.01) and rows["mel"]["wins"] == 4
    assert rows["STOI"]["mean"] == 0 and rows["STOI"]["wins"] == 0
    # mixed signs: the interval spans 0
    assert rows["SI-SDR"]["low"] < 0 < rows["SI-SDR"]["high"]


def test_unreadable_results_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    good = result(tmp_path / "a.json", {"pesq_wb": [1.0, 2.0]})
    monkeypatch.setattr(sys, "argv", ["paired_compare.py", str(good), str(tmp_path / "no.json")])
    assert paired_compare.main() == 2
    assert "cannot read" in capsys.readouterr().err
