"""Issue 12's ablation table from the runs' ``metrics.csv`` (and the shipped model as step 0).

    python recipes/ablation_report.py [--runs /work/runs] [--prefix abl-] [--steps 500,1000]
                                      [--shipped]

Prints a markdown table: val-16k (9 segments of 4 s, the trainer's validation batch) PESQ-WB,
STOI, SI-SDR and mel distance at n_q 2/4/8, steps, CPU seconds per step (process time, so two
runs side by side on two cores compare fairly), wall time, and the PESQ-WB gain over the shipped
model per CPU hour. ``--shipped`` also scores the shipped model on the same batch.
``--prefix scratch-`` reads the from-scratch runs of ``recipes/scratch.sh`` instead of the
fine-tunes of ``recipes/ablation.sh``. ``frame mod`` is the 50 Hz buzz diagnostic at n_q 8
(``val/frame_mod``; the input scores 0.055).
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from pathlib import Path

NQ = (2, 4, 8)


def read_metrics(path: Path) -> dict[int, dict[str, float]]:
    rows: dict[int, dict[str, float]] = defaultdict(dict)
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows[int(r["step"])][r["name"]] = float(r["value"])
    return rows


def cost(rows: dict[int, dict[str, float]], upto: int, batch_seconds: float = 8.0
         ) -> tuple[float, float]:
    """(CPU seconds, wall seconds) spent up to step ``upto``, from the logged rates."""
    cpu = wall = 0.0
    last = 0
    for step in sorted(rows):
        if step > upto:
            break
        m = rows[step]
        if "train/cpu_seconds_per_step" in m:
            n = step - last
            cpu += n * m["train/cpu_seconds_per_step"]
            wall += n * batch_seconds / max(m["train/audio_seconds_per_second"], 1e-9)
            last = step
    return cpu, wall


def shipped_scores() -> dict[str, float]:
    import torch

    from dwancodec.bundled import default_model_dir
    from dwancodec.model import Codec
    from dwancodec.training.data import AudioCorpus, validation_segments
    from dwancodec.training.validate import validate

    torch.set_num_threads(1)
    model = Codec.from_pretrained(default_model_dir())
    corpus = AudioCorpus(["../shared/data/val-16k"], 16000)
    batch = validation_segments(corpus, 9, 4 * 16000 // 320 * 320)
    return {f"val/{k}": v for k, v in validate(model, batch).items()}


def fmt_row(name: str, step: int, m: dict[str, float], cpu: float, wall: float,
            base_pesq: float | None) -> str:
    cells = [name, str(step)]
    for key in ("pesq", "stoi", "si_sdr", "mel"):
        vals = [m.get(f"val/{key}.nq{n}", math.nan) for n in NQ]
        digits = {"pesq": 2, "stoi": 3, "si_sdr": 1, "mel": 3}[key]
        cells.append(" / ".join(f"{v:.{digits}f}" for v in vals))
    cells.append(f"{m.get('val/frame_mod.nq8', math.nan):.2f}")
    cells += [f"{cpu / max(step, 1):.2f}" if step else "", f"{wall / 60:.0f}" if step else ""]
    if base_pesq is not None and step and cpu > 0:
        gain = m.get("val/pesq.nq8", math.nan) - base_pesq
        cells.append(f"{gain / (cpu / 3600):+.3f}")
    else:
        cells.append("")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="/work/runs")
    ap.add_argument("--prefix", default="abl-", help="run folder prefix: abl- or scratch-")
    ap.add_argument("--steps", default="")
    ap.add_argument("--shipped", action="store_true")
    args = ap.parse_args()
    print("| variant | step | PESQ-WB n_q 2/4/8 | STOI 2/4/8 | SI-SDR dB 2/4/8 | mel 2/4/8 "
          "| frame mod | CPU s/step | wall min | PESQ-WB n_q 8 gain per CPU h |")
    print("|---|---:|---|---|---|---|---:|---:|---:|---:|")
    base_pesq = None
    if args.shipped:
        m = shipped_scores()
        base_pesq = m["val/pesq.nq8"]
        print(fmt_row("shipped default-v1", 0, m, 0, 0, None))
    wanted = {int(s) for s in args.steps.split(",") if s}
    for run in sorted(Path(args.runs).glob(f"{args.prefix}*/metrics.csv")):
        rows = read_metrics(run)
        val_steps = [s for s in sorted(rows) if "val/pesq.nq8" in rows[s]]
        for step in val_steps:
            if wanted and step not in wanted and step != val_steps[-1]:
                continue
            cpu, wall = cost(rows, step)
            print(fmt_row(run.parent.name.removeprefix(args.prefix), step, rows[step], cpu, wall,
                          base_pesq))


if __name__ == "__main__":
    main()
