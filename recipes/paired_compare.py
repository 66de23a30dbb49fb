"""Two models on the same clips: the per-clip difference at every bitrate, with a paired
bootstrap interval, so that a ship decision can tell a gain from the noise of a few clips.

The ship rule (a candidate ships when it beats the shipped model at every bitrate in PESQ-WB,
STOI and mel distance on val-16k) compares means over 9 clips. Two models within +-0.02 PESQ-WB
of each other are then separated by chance at some bitrate. This prints, per number of stages
and metric, the mean difference NEW - OLD, its 95 % interval from resampling the clips (paired:
both models' scores of a clip move together), and on how many clips NEW is better.

Usage (repo root, venv active), on two ``benchmarks/quality.py`` results of the same clips::

    python recipes/paired_compare.py OLD/quality.json NEW/quality.json [--codec DwanCodec]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

# name in quality.json -> (label, +1 when higher is better)
METRICS = {"pesq_wb": ("PESQ-WB", 1), "stoi": ("STOI", 1), "mel_distance": ("mel", -1),
           "si_sdr": ("SI-SDR", 1)}


def per_clip(path: str | Path, codec: str) -> dict[str, dict[str, dict[str, float]]]:
    """quality.json -> label ("DwanCodec n_q=3") -> clip -> scores."""
    rows = json.loads(Path(path).read_text())["per_clip"]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for r in rows:
        if r["codec"] == codec:
            out.setdefault(r["label"], {})[r["clip"]] = r["scores"]
    return out


def paired_interval(diffs: np.ndarray, n_boot: int = 10000, seed: int = 0,
                    level: float = 0.95) -> tuple[float, float, float]:
    """``[n]`` per-clip differences -> (mean, low, high): the mean and the percentile bootstrap
    interval of the mean over clips drawn with replacement. Worked example: identical
    differences ``[0.1, 0.1, 0.1]`` give ``(0.1, 0.1, 0.1)``."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diffs), size=(n_boot, len(diffs)))
    means = diffs[idx].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(diffs.mean()), float(np.percentile(means, tail)), float(
        np.percentile(means, 100 - tail))


def compare(old: str | Path, new: str | Path, codec: str = "DwanCodec",
            n_boot: int = 10000) -> list[dict[str, object]]:
    """One row per (label, metric): mean, interval, wins, clips; sign so that > 0 = NEW better."""
    a, b = per_clip(old, codec), per_clip(new, codec)
    rows: list[dict[str, object]] = []
    for label in sorted(set(a) & set(b), key=lambda s: (len(s), s)):
        clips = sorted(set(a[label]) & set(b[label]))
        if not clips:
            continue
        for key, (name, sign) in METRICS.items():
            d = np.array([sign * (b[label][c][key] - a[label][c][key]) for c in clips])
            ok = np.isfinite(d)
            if not ok.any():
                continue
            mean, lo, hi = paired_interval(d[ok], n_boot)
            rows.append({"label": label, "metric": name, "mean": mean, "low": lo, "high": hi,
                         "wins": int((d[ok] > 0).sum()), "clips": int(ok.sum())})
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("old", help="quality.json of the shipped model")
    p.add_argument("new", help="quality.json of the candidate (same clips)")
    p.add_argument("--codec", default="DwanCodec")
    p.add_argument("--boot", type=int, default=10000, help="bootstrap draws")
    args = p.parse_args()
    try:
        rows = compare(args.old, args.new, args.codec, args.boot)
    except (OSError, KeyError, json.JSONDecodeError) as e:
        print(f"paired_compare: cannot read the results: {e}", file=sys.stderr)
        return 2
    if not rows:
        print(f"paired_compare: no {args.codec} rows on common clips", file=sys.stderr)
        return 2
    print("Differences NEW - OLD, signed so that > 0 means NEW is better (mel: lower); "
          "95 % paired bootstrap interval over clips; wins = clips where NEW is better.\n")
    print("| stages | metric | mean | 95 % interval | wins |")
    print("|---|---|---:|---|---:|")
    for r in rows:
        flag = " **" if float(r["low"]) > 0 else (" (worse)" if float(r["high"]) < 0 else "")
        print(f"| {str(r['label']).split('=')[-1]} | {r['metric']} | {r['mean']:+.4f} | "
              f"[{r['low']:+.4f}, {r['high']:+.4f}]{flag} | {r['wins']}/{r['clips']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
