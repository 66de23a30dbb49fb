"""``dwancodec fit-entropy``: fit a model's entropy tables on a folder of audio
(:func:`fit_entropy`), so that its ``.dwc`` files are written entropy-coded (format 3).

The tables count, over every frame the model's encoder makes of the given audio, how often each
FSQ digit follows its two contexts (:mod:`dwancodec.bitstream.entropy`); files are cut into
blocks of ``block_frames`` as the writer cuts them. Fit them on the audio the model trained on
(or audio like what it will code) and measure them on other audio: ``--eval`` prints the
mean coded rate per ``n_q`` on a second folder. Torch-free where the model has ONNX graphs.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import probe_audio, scan_audio, stream_audio
from ..bitstream import DEFAULT_ENTROPY_BLOCK, EntropyTables, context_counts
from ..bitstream.entropy import FILE
from ..engine import StreamingEncoder, as_engine
from .common import BLOCK_SECONDS, Progress, as_numpy


def file_codes(engine: Any, path: Path) -> np.ndarray:
    """All the encoder's codes of one file, ``[N, F]`` (every stage it makes)."""
    enc = StreamingEncoder(engine, 1, engine.encoder_n_q)
    parts = [as_numpy(enc.push(block[None]))[0]
             for block, _ in stream_audio(path, engine.sample_rate, BLOCK_SECONDS)]
    parts.append(as_numpy(enc.flush())[0])
    return np.concatenate(parts, axis=1)


def blocks_of(codes: np.ndarray, block_frames: int) -> list[np.ndarray]:
    """``[N, F]`` -> the blocks a writer codes, ``block_frames`` frames each (last shorter)."""
    return [codes[:, i:i + block_frames] for i in range(0, codes.shape[1], block_frames)]


@dataclass(frozen=True)
class RateReport:
    """Mean coded bits per frame of each stage (``bits[s]``) over ``frames`` frames."""

    frames: int
    bits: tuple[float, ...]
    frame_rate: float

    def kbps(self, n_q: int) -> float:
        """Mean coded rate with ``n_q`` stages (state bytes and byte rounding aside)."""
        return sum(self.bits[:n_q]) * self.frame_rate / 1000.0


def measure(tables: EntropyTables, blocks: Iterable[np.ndarray], frame_rate: float
            ) -> RateReport:
    """The tables' ideal cost per stage over ``blocks`` (``[N, f]`` each)."""
    bits = np.zeros(tables.num_stages)
    frames = 0
    for b in blocks:
        frames += b.shape[1]
        bits[:b.shape[0]] += tables.stage_bits_of(b)
    return RateReport(frames, tuple(float(v) / max(frames, 1) for v in bits), frame_rate)


def fit_entropy(engine: Any, data: Sequence[str | Path], block_frames: int = DEFAULT_ENTROPY_BLOCK,
                progress: bool = False) -> tuple[EntropyTables, RateReport]:
    """Fit entropy tables for ``engine``'s codes on the audio files under ``data``; returns
    them with their rate on that same audio (an optimistic figure: measure on other audio)."""
    e = as_engine(engine)
    q = getattr(e, "quantizer", None) or {}
    if q.get("kind", "fsq") != "fsq" or not q.get("levels"):
        raise ValueError("entropy tables are for FSQ models; this model's quantizer is "
                         f"{q.get('kind')!r}")
    if not e.codes_identity:
        raise ValueError("the model names no codes identity (graphs exported before it "
                         "existed): re-export it")
    levels = tuple(int(v) for v in q["levels"])
    files = scan_audio(list(data))
    seconds = [probe_audio(p).duration for p in files]
    counts = None
    blocks: list[np.ndarray] = []
    bar = Progress(sum(seconds), "fit", progress)
    done = False
    try:
        for path, s in zip(files, seconds, strict=True):
            bs = blocks_of(file_codes(e, path), block_frames)
            blocks += bs
            c = context_counts(bs, levels, e.encoder_n_q)
            counts = c if counts is None else counts + c
            bar.update(s)
        done = True
    finally:
        bar.close(done)
    tables = EntropyTables.fit(counts, levels, e.codes_identity)
    fit = measure(tables, blocks, e.sample_rate / e.hop_length)
    tables.stage_bits = fit.bits
    return tables, fit


def eval_rate(engine: Any, tables: EntropyTables, data: Sequence[str | Path],
              block_frames: int = DEFAULT_ENTROPY_BLOCK) -> RateReport:
    """The tables' mean rate on the audio under ``data``."""
    e = as_engine(engine)
    blocks = [b for p in scan_audio(list(data)) for b in blocks_of(file_codes(e, p), block_frames)]
    return measure(tables, blocks, e.sample_rate / e.hop_length)


def rate_table(reports: dict[str, RateReport], fixed_kbps: Sequence[float]) -> str:
    """A text table: n_q, fixed rate, and each report's mean coded rate."""
    head = "n_q  fixed kbps  " + "  ".join(f"{k} kbps" for k in reports)
    rows = [head]
    for n, fixed in enumerate(fixed_kbps, 1):
        cells = "  ".join(f"{r.kbps(n):{len(k) + 5}.2f}" for k, r in reports.items())
        rows.append(f"{n:3d}  {fixed:10.2f}  {cells}")
    return "\n".join(rows)


def run_fit_entropy(args: argparse.Namespace) -> int:
    from .common import engine_from_args, notifier

    note = notifier(args)  # before anything is written
    engine = as_engine(engine_from_args(args, note, purpose="files"))
    model_dir = Path(args.model) if args.model else None
    out = Path(args.out) if args.out else (model_dir / FILE if model_dir else None)
    if out is None:
        raise ValueError("give --out (the shipped model's folder is part of the package) or "
                         "--model")
    if out.exists() and not args.force:
        raise ValueError(f"{out} exists (--force replaces it)")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"no such folder: {out.parent}")
    if args.block_frames < 1 or args.block_frames > 65535:
        raise ValueError(f"--block-frames must be in 1..65535, got {args.block_frames}")
    tables, fit = fit_entropy(engine, args.data, args.block_frames, not args.quiet)
    if out.exists():  # --force: files coded with the tables it replaces need a copy of them
        try:
            old = EntropyTables.load(out).identity()
        except ValueError:  # a damaged file: nothing decodes with it anyway
            old = tables.identity()
        if old != tables.identity():
            note(f"replacing tables {old}: .dwc files written with them decode only with a "
                 f"copy of {out} as it was (their header names {old})")
    reports = {"fit": fit}
    if args.eval:
        reports["eval"] = eval_rate(engine, tables, args.eval, args.block_frames)
    tables.save(out)
    fixed = [engine.bitrate(n) / 1000.0 for n in range(1, engine.num_codebooks + 1)]
    if args.json:
        print(json.dumps({"tables": str(out), "identity": tables.identity(),
                          "codes": tables.codes, "fixed_kbps": fixed,
                          **{f"{k}_frames": r.frames for k, r in reports.items()},
                          **{f"{k}_kbps": [r.kbps(n) for n in range(1, len(fixed) + 1)]
                             for k, r in reports.items()}}, indent=2))
        return 0
    print(f"{out}: tables {tables.identity()} for codes {tables.codes}, fitted on "
          f"{fit.frames} frames ({fit.frames / (engine.sample_rate / engine.hop_length) / 60:.1f}"
          " min)")
    print(rate_table(reports, fixed))
    saved = 1 - reports.get("eval", fit).kbps(len(fixed)) / fixed[-1]
    if math.isfinite(saved):
        print(f"all stages: {100 * saved:.0f} % below the fixed rate "
              f"({'eval' if args.eval else 'fit'} audio)")
    return 0


__all__ = ["RateReport", "eval_rate", "fit_entropy", "measure", "run_fit_entropy"]
