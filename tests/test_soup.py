"""recipes/soup.py: weight averages of bundles of one architecture, on tiny models."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from dwancodec.model import Codec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "recipes"))
import soup  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.01, 10), min_size=2, max_size=5), st.integers(0, 2**31 - 1))
def test_soup_state_is_the_normalised_weighted_mean(weights: list[float], seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    states = [{"a": torch.randn(3, 4, generator=g), "b": torch.randn(5, generator=g)}
              for _ in weights]
    out = soup.soup_state(states, weights)
    total = sum(weights)
    for name in ("a", "b"):
        want = sum(s[name].double() * (w / total) for s, w in zip(states, weights, strict=True))
        torch.testing.assert_close(out[name].double(), want, rtol=1e-5, atol=1e-6)
        # a mean lies between the smallest and largest ingredient, element by element
        stack = torch.stack([s[name] for s in states])
        assert (out[name] >= stack.min(0).values - 1e-5).all()
        assert (out[name] <= stack.max(0).values + 1e-5).all()


def test_soup_state_refuses_mismatches() -> None:
    a = {"w": torch.zeros(2)}
    with pytest.raises(ValueError, match="other tensors"):
        soup.soup_state([a, {"v": torch.zeros(2)}], [1, 1])
    with pytest.raises(ValueError, match="shape"):
        soup.soup_state([a, {"w": torch.zeros(3)}], [1, 1])
    with pytest.raises(ValueError, match="float"):
        soup.soup_state([{"w": torch.zeros(2, dtype=torch.long)}] * 2, [1, 1])
    with pytest.raises(ValueError, match="non-negative"):
        soup.soup_state([a, a], [1, -1])
    with pytest.raises(ValueError, match="two or more"):
        soup.soup_state([a], [1])


def test_soup_of_two_tiny_models_loads_and_a_soup_of_one_model_with_itself_is_that_model(
        tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    Codec.from_config("tiny", seed=0).save_pretrained(a)
    Codec.from_config("tiny", seed=1).save_pretrained(b)

    same = tmp_path / "same"
    soup.soup([a, a], same)
    wa, ws = load_file(str(a / "model.safetensors")), load_file(str(same / "model.safetensors"))
    assert wa.keys() == ws.keys()
    for k in wa:
        torch.testing.assert_close(ws[k], wa[k])

    mid = tmp_path / "mid"
    soup.soup([a, b], mid, [3.0, 1.0])
    wb, wm = load_file(str(b / "model.safetensors")), load_file(str(mid / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wm[k], 0.75 * wa[k] + 0.25 * wb[k])
    model = Codec.from_pretrained(mid)  # a soup is an ordinary bundle, with its own identity
    assert model.identity() not in {Codec.from_pretrained(a).identity(),
                                     Codec.from_pretrained(b).identity()}
    x = torch.randn(1, 1, 3200) * 0.1
    with torch.no_grad():
        y = model.decode(model.encode(x))
    assert y.shape == x.shape and torch.isfinite(y).all()


def test_training_only_config_fields_may_differ_and_the_first_bundle_s_are_kept(
        tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    Codec.from_config("tiny", seed=0).save_pretrained(a)
    Codec.from_config("tiny", seed=1).save_pretrained(b)
    cfg = json.loads((b / "config.json").read_text())
    first = cfg["quantizer"]["quantizer_dropout"]
    cfg["quantizer"]["quantizer_dropout"] = 1.0 if first != 1.0 else 0.25
    (b / "config.json").write_text(json.dumps(cfg))
    soup.soup([a, b], tmp_path / "s")
    kept = json.loads((tmp_path / "s" / "config.json").read_text())
    assert kept["quantizer"]["quantizer_dropout"] == first
    cfg["decoder"]["depth"] += 1  # an architecture field is refused, and named
    (b / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=r"decoder\.depth"):
        soup.soup([a, b], tmp_path / "t")
    assert not (tmp_path / "t").exists()


def test_cli_refuses_bad_input_with_exit_2_and_overwrites_nothing(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    Codec.from_config("tiny", seed=0).save_pretrained(a)
    Codec.from_config("tiny", seed=1).save_pretrained(b)
    other = tmp_path / "other"
    Codec.from_config("tiny", seed=0).save_pretrained(other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["name"] = "renamed"
    (other / "config.json").write_text(json.dumps(cfg))
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")

    def run(*args: object) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "recipes" / "soup.py"),
                               *map(str, args)], capture_output=True, text=True)

    corrupt = tmp_path / "corrupt"
    Codec.from_config("tiny", seed=2).save_pretrained(corrupt)
    (corrupt / "model.safetensors").write_bytes(b"not safetensors")
    cases = {
        "corrupt weights": (tmp_path / "o4", a, corrupt),
        "exists": (existing, a, b),
        "differs": (tmp_path / "o1", a, other),
        "not a bundle": (tmp_path / "o2", a, tmp_path),
        "weight": (tmp_path / "o3", a, b, "--weights", "1"),
    }
    for what, args in cases.items():
        r = run(*args)
        assert r.returncode == 2, (what, r.stderr)
        assert r.stderr.startswith("soup: error:") and "Traceback" not in r.stderr, what
        assert len(r.stderr.strip().splitlines()) == 1, what
    assert (existing / "keep.txt").read_text() == "mine"
    assert not any((tmp_path / f"o{i}").exists() for i in (1, 2, 3, 4))
    assert run(tmp_path / "ok", a, b).returncode == 0
    assert (tmp_path / "ok" / "model.safetensors").is_file()
