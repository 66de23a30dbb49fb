"""Whole-command cost of ``dwancodec encode`` / ``decode`` on a long file, per engine.

Usage::

    python benchmarks/file_coding.py                         # the shipped model, 60 s, 3 reps
    python benchmarks/file_coding.py --model DIR --seconds 300 --reps 5 --out results/files
    python benchmarks/file_coding.py --backends onnx,onnx-steps   # block vs step graphs

What a user of the command waits for and what it holds: each rep runs the real command in a
fresh process (``python -m dwancodec.cli``), so the figures include the interpreter, the
imports (torch's is the large one) and the model load, not only the steps. Per command it
records the wall time and the peak resident memory of that process (``os.wait4``'s
``ru_maxrss``). The backends' reps are interleaved, so a loaded machine loads each alike:
compare the rows of one run.

Cells (``--backends``): ``onnx`` (ONNX Runtime as ``--backend onnx`` runs it: files on the
block graphs of ``MODEL/onnx/blocks/`` where the model has them), ``onnx-steps`` (the same
engine on the step graphs alone, one frame per call: a temporary copy of the model without
``onnx/blocks/``, i.e. what the commands ran before block graphs shipped) and ``torch``.

It also reports how far the cells' codes agree: the codes of each cell's file against the
first cell's, frame by frame (they differ only where a latent sits at a rounding tie, README
"How it works"), and that each decode has the input's length.

The input is a clip (default: the shipped French demo clip) and its time reverse, tiled to
``--seconds``: real speech, and no repeated frame boundary at the tile edges.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "dwancodec" / "assets" / "demo" / "speech_fr.flac"
CELLS = ("onnx", "onnx-steps", "torch")


def steps_only_model(model: str | None, out: Path) -> Path:
    """A copy of ``model`` (default: the shipped one) without ``onnx/blocks/``: the same
    weights and step graphs, so files are coded one frame per call. Copied, not linked: the
    runtime opens only graph files inside the folder its sidecar is in."""
    # not dwancodec.api, which imports torch: a child's peak RSS counts this process's at fork
    from dwancodec.bundled import default_model_dir

    src = Path(model) if model else default_model_dir()
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("blocks"))
    return out


def tiled_clip(clip: Path, seconds: float, out: Path) -> tuple[int, int]:
    """Write ``clip`` and its reverse, alternately, to ``out`` until ``seconds`` long; returns
    (samples, sample rate). E.g. a 4.26 s clip, 60 s: 15 tiles, the last one cut."""
    x, sr = sf.read(clip, dtype="float32", always_2d=False)
    if x.ndim > 1:
        x = x.mean(axis=1)
    n = round(seconds * sr)
    reps = -(-n // x.size)
    y = np.concatenate([x if i % 2 == 0 else x[::-1] for i in range(reps)])[:n]
    sf.write(out, y, sr, subtype="PCM_16")
    return n, sr


def run_command(args: list[str]) -> tuple[float, float]:
    """Run ``python -m dwancodec.cli ARGS`` to the end; (wall seconds, peak RSS in MB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "dwancodec.cli", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"dwancodec {' '.join(args)} failed: {err.decode(errors='replace')}")
    return wall, usage.ru_maxrss / 1024.0  # Linux: kilobytes


def measure(model: str | None, clip: Path, seconds: float, reps: int, backends: list[str],
            threads: int, n_q: int | None) -> dict[str, Any]:
    from dwancodec.bitstream import read_dwc

    with tempfile.TemporaryDirectory(prefix="dwc-files-") as tmp:
        d = Path(tmp)
        wav = d / "input.wav"
        n, sr = tiled_clip(clip, seconds, wav)
        unknown = sorted(set(backends) - set(CELLS))
        if unknown:
            raise ValueError(f"unknown cell(s) {unknown}; expected some of {CELLS}")
        steps_model = str(steps_only_model(model, d / "steps-only")) \
            if "onnx-steps" in backends else None

        def common(b: str) -> list[str]:
            m = steps_model if b == "onnx-steps" else model
            return ["--backend", b.removesuffix("-steps"), "--threads", str(threads),
                    "--quiet"] + (["--model", m] if m else [])

        times: dict[str, dict[str, list[float]]] = {
            b: {"encode_s": [], "decode_s": [], "encode_mb": [], "decode_mb": []}
            for b in backends}
        for _ in range(reps):
            for b in backends:
                enc = ["encode", str(wav), str(d / f"{b}.dwc"), *common(b)]
                if n_q is not None:
                    enc += ["--n-q", str(n_q)]
                s, mb = run_command(enc)
                times[b]["encode_s"].append(s)
                times[b]["encode_mb"].append(mb)
                s, mb = run_command(["decode", str(d / f"{b}.dwc"), str(d / f"{b}.wav"),
                                     *common(b)])
                times[b]["decode_s"].append(s)
                times[b]["decode_mb"].append(mb)
        codes = {b: read_dwc(d / f"{b}.dwc").codes() for b in backends}
        lengths = {b: sf.info(str(d / f"{b}.wav")).frames for b in backends}
    agree = None
    if len(backends) >= 2:  # each cell's codes against the first cell's
        ref = codes[backends[0]]
        differing = {}
        for b in backends[1:]:
            same = (codes[b] == ref).all(axis=0) if codes[b].shape == ref.shape \
                else np.zeros(0, bool)
            differing[b] = int(ref.shape[-1] - same.sum())
        agree = {"reference": backends[0], "frames": int(ref.shape[-1]),
                 "frames_differing": differing}
    return {"seconds": seconds, "samples": n, "sample_rate": sr, "reps": reps,
            "threads": threads, "clip": str(clip), "model": model or "shipped default",
            "cells": times, "decoded_samples": lengths, "codes": agree}


def report(r: dict[str, Any]) -> str:
    rows = ["| backend | encode s (median, min-max) | decode s | encode peak MB | "
            "decode peak MB | x real time (encode + decode) |", "|---|---|---|---|---|---|"]
    for b, c in r["cells"].items():
        e, dd = np.median(c["encode_s"]), np.median(c["decode_s"])
        rows.append(
            f"| {b} | {e:.2f} ({min(c['encode_s']):.2f}-{max(c['encode_s']):.2f}) | "
            f"{dd:.2f} ({min(c['decode_s']):.2f}-{max(c['decode_s']):.2f}) | "
            f"{max(c['encode_mb']):.0f} | {max(c['decode_mb']):.0f} | "
            f"{r['seconds'] / (e + dd):.0f} |")
    lines = [f"{r['seconds']:.0f} s of speech ({Path(r['clip']).name} and its reverse, tiled), "
             f"model: {r['model']}, {r['threads']} thread(s), {r['reps']} reps per cell, whole "
             "commands (interpreter, imports, model load, coding, writing)", "", *rows, ""]
    lens = r["decoded_samples"]
    equal = "equal" if set(lens.values()) == {r["samples"]} else "NOT equal"
    lines.append("decoded length: " + ", ".join(f"{b} {v} samples" for b, v in lens.items())
                 + f" (input {r['samples']}: {equal})")
    if r["codes"] is not None:
        c = r["codes"]
        lines.append(f"codes against {c['reference']}'s file, frames differing (rounding "
                     "ties): " + ", ".join(f"{b} {k} of {c['frames']}"
                                           for b, k in c["frames_differing"].items()))
    if "onnx-steps" in r["cells"]:
        lines.append("onnx-steps: the same ONNX engine on the step graphs alone (one frame per "
                     "call; the model copied without onnx/blocks/)")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="model bundle (default: the shipped one)")
    p.add_argument("--clip", type=Path, default=DEMO, help="speech clip to tile")
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--backends", default=",".join(CELLS),
                   help="cells, interleaved: onnx (block graphs where the model has them), "
                        "onnx-steps (step graphs only), torch (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--n-q", type=int, default=None, help="stages (default: all)")
    p.add_argument("--out", type=Path, help="folder for file_coding.md and .json")
    a = p.parse_args()
    if a.seconds <= 0 or a.reps < 1:
        p.error("--seconds must be > 0 and --reps >= 1")
    r = measure(a.model, a.clip, a.seconds, a.reps, a.backends.split(","), a.threads, a.n_q)
    text = report(r)
    print(text, end="")
    if a.out:
        a.out.mkdir(parents=True, exist_ok=True)
        (a.out / "file_coding.md").write_text(text)
        (a.out / "file_coding.json").write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
