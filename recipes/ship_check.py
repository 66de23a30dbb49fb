"""The ship rule as one command: does a candidate bundle beat the shipped model, as it would ship?

Usage (repo root, venv active)::

    python recipes/ship_check.py /work/runs/X-bundles/step-16000 \\
        [--heldout /work/data-extra/heldout-16k] [--shipped dwancodec/assets/default]

The rule (issue 12): a candidate ships when it beats the shipped model **at every bitrate** in
PESQ-WB, STOI and mel distance on the full val-16k clips. Two details decide it and are easy
to get wrong by hand, so they live here:

- The candidate is scored **as it would ship**: its weights rounded to float16 exactly as
  ``recipes/ship_model.py`` stores them. The rounding moved a score by up to 0.007 (round 14),
  which is the size of the margins the rule decides on.
- Means over a few clips separate two close models by chance, so every difference is printed
  with its 95 % paired bootstrap interval over clips (``paired_compare.py``). The rule itself
  stays on the means; the intervals say how much it rests on.

The shipped model's scores are cached under ``--work`` by model identity and clip folder, so
checking several candidates scores it once. Heldout clips (``--heldout``) are scored and
printed beside, and their verdict is reported, but the exit status is val-16k's. Exit status:
0 the candidate passes, 1 it does not, 2 a bad input (no bundle, no clips).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import paired_compare

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import quality  # noqa: E402

DEFAULT_CLIPS = ROOT.parent / "shared" / "data" / "val-16k"
CODEC = "DwanCodec"
# metric key in quality.json -> (label, +1 when higher is better); the rule's three metrics
RULE_METRICS = {"pesq_wb": ("PESQ-WB", 1), "stoi": ("STOI", 1), "mel_distance": ("mel", -1)}
RULE_SIGN = {name: sign for name, sign in RULE_METRICS.values()}


@dataclass(frozen=True)
class Check:
    """One (bitrate, metric) cell of the rule."""

    n_q: int
    metric: str
    old: float
    new: float
    better: bool  # strictly better in the metric's direction

    @property
    def delta(self) -> float:
        return self.new - self.old


def n_q_of(label: str) -> int:
    """``"DwanCodec n_q=3"`` -> 3."""
    return int(label.rsplit("=", 1)[1])


def means(result: dict) -> dict[int, dict[str, float]]:
    """quality.json's summary -> n_q -> metric -> mean over clips (DwanCodec rows only)."""
    return {n_q_of(r["label"]): r["scores"] for r in result["summary"] if r["codec"] == CODEC}


def rule(old: dict, new: dict) -> list[Check]:
    """Every (n_q, metric) cell of two quality.json results of the same clips.

    A cell needs ``new`` strictly better than ``old`` (a tie does not beat). Bitrates present in
    only one result fail: a candidate with fewer stages does not replace the shipped one.
    Worked example: PESQ-WB 2.05 -> 2.06 at n_q 1 passes; mel 0.17 -> 0.17 fails (a tie).
    """
    a, b = means(old), means(new)
    checks = []
    for n_q in sorted(set(a) | set(b)):
        for key, (name, sign) in RULE_METRICS.items():
            o = a.get(n_q, {}).get(key, float("nan"))
            n = b.get(n_q, {}).get(key, float("nan"))
            checks.append(Check(n_q, name, o, n, bool(sign * (n - o) > 0)))
    return checks


def passes(checks: list[Check]) -> bool:
    return bool(checks) and all(c.better for c in checks)


def score(bundle: Path, clips: Path, out: Path) -> dict:
    """benchmarks/quality.py (DwanCodec only) of ``bundle`` on ``clips``, cached in ``out``."""
    cached = out / "quality.json"
    if cached.exists():
        result = json.loads(cached.read_text())
        if result.get("clips_dir") == str(clips):  # else the folder's name was reused: rescore
            return result
    args = quality.build_parser().parse_args(
        ["--clips", str(clips), "--model", str(bundle), "--out", str(out),
         "--codecs", "dwancodec"])
    print(f"scoring {bundle} on {clips} ...", file=sys.stderr)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # its tables: this prints its own
            return quality.run(args)
    except quality.BenchmarkError as e:  # no clips, a bad bundle: one line, exit 2 (main)
        raise ValueError(str(e)) from e


def as_shipped(bundle: Path, stage: Path) -> str:
    """Write ``bundle``'s weights rounded to float16 (as ship_model.py stores them) to
    ``stage``; returns the identity of the rounded model."""
    import torch

    from dwancodec.model import Codec

    Codec.from_pretrained(bundle).save_pretrained(stage, dtype=torch.float16)
    return Codec.from_pretrained(stage).identity()


def table(checks: list[Check], intervals: dict[tuple[int, str], dict]) -> str:
    """Markdown: one row per n_q, each metric as ``old -> new (delta) [interval]``."""
    head = "| n_q | " + " | ".join(n for n, _ in RULE_METRICS.values()) + " |"
    lines = [head, "|---:|" + "---|" * len(RULE_METRICS)]
    for n_q in sorted({c.n_q for c in checks}):
        cells = []
        for c in (c for c in checks if c.n_q == n_q):
            iv = intervals.get((n_q, c.metric))
            span = ""
            if iv:  # paired_compare signs "better" > 0; shown here as new - old, like delta
                lo, hi = ((iv["low"], iv["high"]) if RULE_SIGN[c.metric] > 0
                          else (-iv["high"], -iv["low"]))
                span = f" [{lo:+.3f}, {hi:+.3f}]"
            mark = "" if c.better else " ✗"
            cells.append(f"{c.old:.3f} → {c.new:.3f} ({c.delta:+.4f}){span}{mark}")
        lines.append(f"| {n_q} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def check_set(name: str, shipped: Path, shipped_id: str, candidate: Path, clips: Path,
              work: Path, cand_id: str) -> bool:
    tag = clips.resolve().name
    old_dir = work / f"{shipped_id.replace('@', '-')}-{tag}"
    new_dir = work / f"{cand_id.replace('@', '-')}-{tag}"
    old, new = score(shipped, clips, old_dir), score(candidate, clips, new_dir)
    checks = rule(old, new)
    intervals = {(n_q_of(str(r["label"])), str(r["metric"])): r for r in paired_compare.compare(
        old_dir / "quality.json", new_dir / "quality.json", CODEC, n_boot=2000)}
    ok = passes(checks)
    failed = [f"{c.metric} at n_q {c.n_q}" for c in checks if not c.better]
    print(f"\n## {name}: {clips} ({len(new['clips'])} clips)\n")
    print(table(checks, intervals))
    print(f"\n{name}: {'PASS' if ok else 'FAIL'}"
          + ("" if ok else f" ({len(failed)} of {len(checks)} cells not better: "
             + ", ".join(failed) + ")"))
    return ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("candidate", help="a training bundle (config.json + model.safetensors)")
    p.add_argument("--shipped", default=str(ROOT / "dwancodec" / "assets" / "default"),
                   help="the model to beat (default: %(default)s)")
    p.add_argument("--clips", default=str(DEFAULT_CLIPS), help="the rule's clips "
                   "(default: %(default)s)")
    p.add_argument("--heldout", default=None, help="more clips, reported beside (not the rule)")
    p.add_argument("--work", default=str(ROOT / "benchmarks" / "results" / "ship-check"),
                   help="where scores are cached (default: %(default)s)")
    args = p.parse_args(argv)
    candidate, shipped = Path(args.candidate), Path(args.shipped)
    for what, path in (("candidate", candidate), ("shipped model", shipped)):
        if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
            print(f"ship_check: the {what} {path} is not a model bundle "
                  "(config.json + model.safetensors)", file=sys.stderr)
            return 2
    # named by their folders (the cache too): "val-16k" and "heldout-16k" by default
    sets = [(Path(args.clips).resolve().name, Path(args.clips))] + (
        [(Path(args.heldout).resolve().name + " (beside)", Path(args.heldout))]
        if args.heldout else [])
    for name, clips in sets:
        if not clips.is_dir():
            print(f"ship_check: {name} clips {clips} is not a folder", file=sys.stderr)
            return 2
    from dwancodec.model import Codec

    work = Path(args.work)
    try:
        shipped_id = Codec.from_pretrained(shipped).identity()
        with tempfile.TemporaryDirectory(prefix="dwc-ship-check-") as tmp:
            stage = Path(tmp) / "candidate"
            cand_id = as_shipped(candidate, stage)
            print(f"shipped {shipped_id} ({shipped}); candidate as shipped (float16) "
                  f"{cand_id} ({candidate})")
            print("cells: old → new (new − old) [its 95 % paired bootstrap interval over "
                  "clips]; ✗ = not better (mel: lower is better)")
            results = [check_set(name, shipped, shipped_id, stage, clips, work, cand_id)
                       for name, clips in sets]
    except (ValueError, OSError) as e:  # a corrupt bundle, a folder without clips
        print(f"ship_check: {e}", file=sys.stderr)
        return 2
    return 0 if results[0] else 1


if __name__ == "__main__":
    sys.exit(main())
