"""recipes/ship_check.py: the ship rules (every-cell: every bitrate, every metric, strictly
better; unseen: every heldout cell better and no measured loss on val-16k) on as-shipped
(float16) weights, end to end on a tiny model."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dwancodec.model import Codec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))
import ship_check  # noqa: E402


def summary(scores: dict[int, tuple[float, float, float]]) -> dict:
    """quality.json-like result: n_q -> (PESQ-WB, STOI, mel), plus a peer row to be ignored."""
    rows = [{"codec": "DwanCodec", "label": f"DwanCodec n_q={k}",
             "scores": {"pesq_wb": p, "stoi": s, "mel_distance": m, "si_sdr": 0.0}}
            for k, (p, s, m) in scores.items()]
    rows.append({"codec": "Opus", "label": "Opus 6 kbps",
                 "scores": {"pesq_wb": 9.0, "stoi": 1.0, "mel_distance": 0.0}})
    return {"summary": rows}


def test_the_rule_needs_every_cell_strictly_better_and_mel_lower() -> None:
    old = summary({1: (1.30, 0.75, 0.23), 2: (1.76, 0.83, 0.19)})
    better = summary({1: (1.31, 0.76, 0.22), 2: (1.77, 0.84, 0.18)})
    assert ship_check.passes(ship_check.rule(old, better))
    tie = summary({1: (1.31, 0.76, 0.22), 2: (1.77, 0.84, 0.19)})  # mel at n_q 2 ties
    checks = ship_check.rule(old, tie)
    assert not ship_check.passes(checks)
    assert [(c.n_q, c.metric) for c in checks if not c.better] == [(2, "mel")]
    higher_mel = summary({1: (1.31, 0.76, 0.24), 2: (1.77, 0.84, 0.18)})
    assert [(c.n_q, c.metric) for c in ship_check.rule(old, higher_mel)
            if not c.better] == [(1, "mel")]
    fewer_stages = summary({1: (1.31, 0.76, 0.22)})
    assert not ship_check.passes(ship_check.rule(old, fewer_stages))


cell = st.tuples(st.floats(1, 4.5), st.floats(0, 1), st.floats(0, 1))


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.integers(1, 8), cell, min_size=1),
       st.dictionaries(st.integers(1, 8), cell, min_size=1))
def test_a_model_never_beats_itself_and_two_never_beat_each_other(a: dict, b: dict) -> None:
    sa, sb = summary(a), summary(b)
    assert not ship_check.passes(ship_check.rule(sa, sa))
    assert not (ship_check.passes(ship_check.rule(sa, sb))
                and ship_check.passes(ship_check.rule(sb, sa)))


def cells(gains: list[tuple[float, float, float]]) -> list[ship_check.Check]:
    """PESQ-WB cells at n_q 1.. with a gain (new - old) and its interval (low, high)."""
    return [ship_check.Check(i + 1, "PESQ-WB", 2.0, 2.0 + g, g > 0, (lo, hi))
            for i, (g, lo, hi) in enumerate(gains)]


def test_the_unseen_rule_wants_every_heldout_cell_and_no_measured_loss_on_the_rule_set() -> None:
    heldout_better = cells([(0.05, 0.02, 0.08), (0.03, 0.01, 0.05)])
    # val-16k: one cell worse by noise (its interval spans 0): passes
    noisy = cells([(-0.02, -0.05, 0.01), (0.01, -0.02, 0.04)])
    assert ship_check.unseen_verdict(noisy, heldout_better) == (True, "")
    # one val-16k cell whose whole interval is below 0: fails, and the reason names it
    worse = cells([(-0.04, -0.07, -0.01), (0.01, -0.02, 0.04)])
    ok, why = ship_check.unseen_verdict(worse, heldout_better)
    assert not ok and why == "measurably worse on the rule's clips in 1 cell (PESQ-WB at n_q 1)"
    # a heldout cell not better fails, however good val-16k is
    heldout_tie = cells([(0.05, 0.02, 0.08), (0.0, -0.01, 0.01)])
    ok, why = ship_check.unseen_verdict(cells([(0.1, 0.05, 0.15)] * 2), heldout_tie)
    assert not ok and why.startswith("heldout not better in 1 cell (PESQ-WB at n_q 2)")
    # no interval: cannot be decided, so it does not pass
    unknown = [ship_check.Check(1, "PESQ-WB", 2.0, 2.1, True)]
    assert not ship_check.unseen_verdict(unknown, heldout_better[:1])[0]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.floats(-1, 1), st.floats(0, 0.5)), min_size=1, max_size=8),
       st.lists(st.tuples(st.floats(-1, 1), st.floats(0, 0.5)), min_size=1, max_size=8))
def test_the_unseen_rule_implies_heldout_every_cell_and_is_refused_by_a_tie(
        rule_set: list[tuple[float, float]], heldout: list[tuple[float, float]]) -> None:
    r = cells([(g, g - w, g + w) for g, w in rule_set])
    h = cells([(g, g - w, g + w) for g, w in heldout])
    ok, why = ship_check.unseen_verdict(r, h)
    assert ok == (not why)
    if ok:
        assert ship_check.passes(h) and not any(c.measurably_worse for c in r)
    ties = cells([(0.0, -w, w) for _, w in heldout])
    assert not ship_check.unseen_verdict(r, ties)[0]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    audio, rate = sf.read(str(ROOT / "tests" / "data" / "speech_en.flac"), dtype="float32")
    sf.write(str(root / "one.flac"), audio[: int(1.2 * rate)], rate)
    return root


def test_end_to_end_a_copy_fails_a_better_model_passes_and_scores_are_cached(
        clips: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped = tmp_path / "shipped"
    Codec.from_config("tiny", seed=0).save_pretrained(shipped, dtype=torch.float16)
    work = tmp_path / "work"
    args = ["--shipped", str(shipped), "--clips", str(clips), "--work", str(work)]
    # the same weights (float32 in the candidate's file) round to the shipped model: all ties
    same = tmp_path / "same"
    Codec.from_pretrained(shipped).save_pretrained(same)
    assert ship_check.main([str(same), *args]) == 1
    out = capsys.readouterr().out
    assert f"{clips.name}: FAIL" in out and "✗" in out
    cached = sorted(p.name for p in work.iterdir())
    assert len(cached) == 1  # one identity: the candidate as shipped is the shipped model
    # a random model of another seed is a different model: scored in its own folder
    other = tmp_path / "other"
    Codec.from_config("tiny", seed=1).save_pretrained(other)
    heldout = tmp_path / "heldout-clips"
    shutil.copytree(clips, heldout)
    code = ship_check.main([str(other), "--heldout", str(heldout), *args])
    out = capsys.readouterr().out
    assert code in (0, 1) and "## heldout-clips (beside)" in out
    assert len(list(work.iterdir())) == 4  # shipped and candidate, on both clip sets
    assert "rule every-cell (issue 12): " in out and "rule unseen: " in out
    # the unseen rule on the same (cached) scores: a copy of the shipped model never passes it
    assert ship_check.main([str(same), "--heldout", str(heldout), "--rule", "unseen",
                            *args]) == 1
    assert "rule unseen: FAIL (heldout not better in" in capsys.readouterr().out


def test_bad_inputs_exit_2(clips: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    assert ship_check.main([str(tmp_path / "missing"), "--clips", str(clips)]) == 2
    assert "not a model bundle" in capsys.readouterr().err
    shipped = ROOT / "dwancodec" / "assets" / "default"
    assert ship_check.main([str(shipped), "--clips", str(clips), "--rule", "unseen"]) == 2
    assert "--rule unseen needs --heldout" in capsys.readouterr().err
    bundle = tmp_path / "b"
    Codec.from_config("tiny", seed=0).save_pretrained(bundle)
    assert ship_check.main([str(bundle), "--shipped", str(bundle),
                            "--clips", str(tmp_path / "none")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    empty = tmp_path / "no-clips"
    empty.mkdir()
    assert ship_check.main([str(bundle), "--shipped", str(bundle), "--clips", str(empty),
                            "--work", str(tmp_path / "w")]) == 2
    assert "no .flac or .wav" in capsys.readouterr().err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    (broken / "model.safetensors").write_bytes(b"garbage")
    assert ship_check.main([str(broken), "--shipped", str(bundle), "--clips", str(empty)]) == 2
    assert capsys.readouterr().err.startswith("ship_check: ")
