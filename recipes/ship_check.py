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

Two rules; ``--rule`` picks the one that sets the exit status, and both verdicts are printed
when both can be decided:

- ``every-cell`` (the default; issue 12's rule): every cell strictly better on val-16k.
- ``unseen`` (needs ``--heldout``): every cell strictly better on the heldout clips, *and* no
  cell measurably worse on val-16k, i.e. no cell whose paired interval lies entirely on the
  worse side. Why a second rule: eight of val-16k's nine clips are voices the model trains on
  (``../shared/data/README.md``: "same voices, other utterances"), so the first rule measures
  in-distribution fit, and a change that makes the codec generalise (more voices in the
  training data) can lose a few of its 24 cells by noise-sized amounts while gaining on every
  unseen voice (round 17). The data README says the project's quality is judged on unseen
  voices; this rule asks for better there everywhere and no measured loss on the training
  voices. Worked example: soup-I of round 17 (heldout better in all 24 cells) fails it,
  because PESQ-WB at n_q 2 on val-16k is -0.038 [-0.067, -0.010].

The shipped model's scores are cached under ``--work`` by model identity and clip folder, so
checking several candidates scores it once. Exit status: 0 the candidate passes the chosen
rule, 1 it does not, 2 a bad input (no bundle, no clips, ``--rule unseen`` without
``--heldout``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import sys
import tempfile
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


@dataclasses.dataclass(frozen=True)
class Check:
    """One (bitrate, metric) cell of the rule."""

    n_q: int
    metric: str
    old: float
    new: float
    better: bool  # strictly better in the metric's direction
    # the paired 95 % interval of the gain, signed so that > 0 is better (None: not computed)
    gain_interval: tuple[float, float] | None = None

    @property
    def delta(self) -> float:
        return self.new - self.old

    @property
    def where(self) -> str:
        """``"PESQ-WB at n_q 2"``: how verdicts name the cell."""
        return f"{self.metric} at n_q {self.n_q}"

    @property
    def measurably_worse(self) -> bool:
        """The whole interval of the gain lies below 0 (worse beyond the clips' noise)."""
        return self.gain_interval is not None and self.gain_interval[1] < 0


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
    """Issue 12's rule on one clip set: every cell strictly better."""
    return bool(checks) and all(c.better for c in checks)


def with_intervals(checks: list[Check], intervals: dict[tuple[int, str], dict]) -> list[Check]:
    """``checks`` with each cell's paired interval from ``paired_compare.compare`` rows
    (already signed there so that > 0 is better)."""
    out = []
    for c in checks:
        iv = intervals.get((c.n_q, c.metric))
        out.append(dataclasses.replace(
            c, gain_interval=(float(iv["low"]), float(iv["high"])) if iv else None))
    return out


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


def table(checks: list[Check]) -> str:
    """Markdown: one row per n_q, each metric as ``old -> new (delta) [interval]``."""
    head = "| n_q | " + " | ".join(n for n, _ in RULE_METRICS.values()) + " |"
    lines = [head, "|---:|" + "---|" * len(RULE_METRICS)]
    for n_q in sorted({c.n_q for c in checks}):
        cells = []
        for c in (c for c in checks if c.n_q == n_q):
            span = ""
            if c.gain_interval:  # signed "better" > 0; shown here as new - old, like delta
                lo, hi = (c.gain_interval if RULE_SIGN[c.metric] > 0
                          else (-c.gain_interval[1], -c.gain_interval[0]))
                span = f" [{lo:+.3f}, {hi:+.3f}]"
            mark = "" if c.better else " ✗"
            cells.append(f"{c.old:.3f} → {c.new:.3f} ({c.delta:+.4f}){span}{mark}")
        lines.append(f"| {n_q} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def check_set(name: str, shipped: Path, shipped_id: str, candidate: Path, clips: Path,
              work: Path, cand_id: str) -> list[Check]:
    """Score both models on ``clips`` (cached), print the table and the every-cell verdict."""
    tag = clips.resolve().name
    old_dir = work / f"{shipped_id.replace('@', '-')}-{tag}"
    new_dir = work / f"{cand_id.replace('@', '-')}-{tag}"
    old, new = score(shipped, clips, old_dir), score(candidate, clips, new_dir)
    intervals = {(n_q_of(str(r["label"])), str(r["metric"])): r for r in paired_compare.compare(
        old_dir / "quality.json", new_dir / "quality.json", CODEC, n_boot=2000)}
    checks = with_intervals(rule(old, new), intervals)
    ok = passes(checks)
    failed = [c.where for c in checks if not c.better]
    print(f"\n## {name}: {clips} ({len(new['clips'])} clips)\n")
    print(table(checks))
    print(f"\n{name}: {'PASS' if ok else 'FAIL'}"
          + ("" if ok else f" ({len(failed)} of {len(checks)} cells not better: "
             + ", ".join(failed) + ")"))
    return checks


def _cells(checks: list[Check]) -> str:
    """``"2 cells (STOI at n_q 1, PESQ-WB at n_q 2)"``."""
    return (f"{len(checks)} cell{'s' * (len(checks) != 1)} "
            f"({', '.join(c.where for c in checks)})")


def unseen_verdict(rule_checks: list[Check], heldout_checks: list[Check]) -> tuple[bool, str]:
    """The ``unseen`` rule: every heldout cell better, no rule-set cell measurably worse
    (a rule-set cell without an interval cannot be judged, and fails).

    Returns (passes, why not: empty when it passes)."""
    not_better = [c for c in heldout_checks if not c.better]
    worse = [c for c in rule_checks if c.measurably_worse]
    unknown = [c for c in rule_checks if c.gain_interval is None]
    ok = passes(heldout_checks) and bool(rule_checks) and not worse and not unknown
    why = "; ".join(filter(None, [
        f"heldout not better in {_cells(not_better)}" if not_better else "",
        f"measurably worse on the rule's clips in {_cells(worse)}" if worse else "",
        f"no interval on the rule's clips in {_cells(unknown)}" if unknown else ""]))
    return ok, why


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("candidate", help="a training bundle (config.json + model.safetensors)")
    p.add_argument("--shipped", default=str(ROOT / "dwancodec" / "assets" / "default"),
                   help="the model to beat (default: %(default)s)")
    p.add_argument("--clips", default=str(DEFAULT_CLIPS), help="the rule's clips "
                   "(default: %(default)s)")
    p.add_argument("--heldout", default=None, help="unseen-voice clips: reported beside, and "
                   "the main half of --rule unseen")
    p.add_argument("--rule", choices=("every-cell", "unseen"), default="every-cell",
                   help="which rule sets the exit status (default: %(default)s, issue 12's)")
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
    if args.rule == "unseen" and not args.heldout:
        print("ship_check: --rule unseen needs --heldout (the unseen-voice clips)",
              file=sys.stderr)
        return 2
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
    every_cell = passes(results[0])
    print(f"\nrule every-cell (issue 12): {'PASS' if every_cell else 'FAIL'}")
    if len(results) < 2:
        return 0 if every_cell else 1
    unseen, why = unseen_verdict(results[0], results[1])
    print(f"rule unseen: {'PASS' if unseen else 'FAIL (' + why + ')'}")
    return 0 if (unseen if args.rule == "unseen" else every_cell) else 1


if __name__ == "__main__":
    sys.exit(main())
