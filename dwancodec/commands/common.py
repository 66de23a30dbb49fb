"""What the codec commands share: the model and engine they run, how many stages, threads,
progress bars, notes, and the scores and figures they print.

:func:`load_model` and :func:`choose_n_q` are usable from Python; the rest serves the command
modules (:mod:`~dwancodec.commands.encode`, :mod:`~dwancodec.commands.decode`,
:mod:`~dwancodec.commands.roundtrip`, :mod:`~dwancodec.commands.info`,
:mod:`~dwancodec.commands.demo`).
"""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from importlib import import_module
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import Notify
from ..checks import check_threads
from ..engine import Engine, check_model_path, open_engine
from ..engine import choose_n_q as engine_n_q

if TYPE_CHECKING:
    from ..model import Codec

BLOCK_SECONDS = 5.0          # audio read / decoded per block (bounds memory)
PROGRESS_MIN_SECONDS = 30.0  # files shorter than this get no progress bar


def notifier(args: argparse.Namespace) -> Notify:
    def note(msg: str) -> None:
        if not getattr(args, "quiet", False):
            print(f"dwancodec {args.command}: note: {msg}", file=sys.stderr)
    return note


def load_model(model: str | None, device: str = "cpu") -> Codec:
    """The bundle at ``model``, or the shipped default model (clear error if not installed)."""
    from ..api import load_codec

    check_model_path(model)
    return load_codec(model, device=device)


def choose_n_q(codec: Codec | Engine, n_q: int | None = None,
               bitrate_kbps: float | None = None, coded: bool = False) -> int:
    """Stages to use: ``n_q``, or the most that fit ``bitrate_kbps``, or all of them (the rule
    of :func:`dwancodec.engine.choose_n_q`, for a codec or an engine). ``coded``: the rates
    are those of entropy-coded files where the model's tables know them (``encode``)."""
    n = getattr(codec, "encoder_n_q", None) or codec.num_codebooks
    tables = getattr(codec, "entropy_tables", None) if coded else None
    return engine_n_q(n, codec.sample_rate / codec.hop_length, codec.codebook_size, n_q,
                      bitrate_kbps, getattr(tables, "stage_bits", None))


def engine_from_args(args: argparse.Namespace, note: Notify, purpose: str = "stream"
                     ) -> Engine:
    """The engine ``--backend`` names (``auto``: ONNX Runtime when the model has graphs; a
    note says why it fell back to torch), with ``--threads`` threads. ``purpose``:
    ``"stream"`` (the step graphs) or ``"files"`` (whole files: the block graphs where the
    model has them; :func:`dwancodec.engine.open_engine`)."""
    threads = getattr(args, "threads", None)
    threads = check_threads(1 if threads is None else threads, "--threads")  # 0 is refused
    engine, why = open_engine(getattr(args, "backend", None) or "auto", args.model, None,
                              getattr(args, "device", "cpu") or "cpu", threads,
                              int8=bool(getattr(args, "int8", False)), purpose=purpose,
                              note=note)
    if why is not None:
        note(f"torch engine: {why}")
    return engine


def engine_label(engine: Engine) -> str:
    """``torch``, ``ONNX Runtime`` or ``ONNX Runtime int8``; graphs of more than one frame per
    call (the block graphs files are coded on) add how many, e.g. ``ONNX Runtime, 25 frames
    per call``."""
    if engine.name != "onnx":
        return "torch"
    int8 = getattr(getattr(engine, "codec", None), "precision", "float32") == "int8"
    label = "ONNX Runtime int8" if int8 else "ONNX Runtime"
    k = engine.frames_per_step
    return label if k == 1 else f"{label}, {k} frames per call"


def engine_threads(engine: Engine, args: argparse.Namespace) -> int:
    return _threads() if engine.name == "torch" else int(getattr(args, "threads", 1) or 1)


def engine_line(engine: Engine, args: argparse.Namespace) -> str:
    other = "torch" if engine.name == "onnx" else "onnx"
    return (f"{engine_label(engine)} ({engine.name}), {engine_threads(engine, args)} "
            f"thread(s); --backend {other} for the other")


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def as_numpy(x: Any) -> np.ndarray:
    """A session result (numpy, or a torch tensor of the torch engine) as numpy."""
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


class Progress:
    """A tqdm bar on stderr in seconds of audio (no-op when disabled or tqdm is missing)."""

    def __init__(self, total_s: float, desc: str, enabled: bool) -> None:
        self.bar = None
        if enabled and total_s >= PROGRESS_MIN_SECONDS:
            try:
                from tqdm import tqdm
            except ImportError:  # a torch-free install (README) may lack it: no bar, same work
                return
            self.bar = tqdm(total=round(total_s, 1), desc=desc, unit="s", file=sys.stderr,
                            mininterval=0.5, dynamic_ncols=True,
                            bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio "
                                       "[{elapsed}<{remaining}]")

    def update(self, seconds: float) -> None:
        if self.bar is not None:
            self.bar.update(seconds)

    def close(self, done: bool = True) -> None:
        """Close the bar; at 100 % only when the work is ``done`` (not on an error)."""
        if self.bar is not None:
            if done:
                self.bar.n = self.bar.total
                self.bar.refresh()
            else:
                self.bar.leave = False
            self.bar.close()
            self.bar = None


SCORES = (("pesq_wb", "pesq", "PESQ-WB"), ("stoi", "pystoi", "STOI"))  # optional packages


def available_scores() -> list[str]:
    """The optional scores whose package can be imported (``pesq_wb``, ``stoi``)."""
    out = []
    for name, module, _ in SCORES:
        try:
            import_module(module)
        except ImportError:
            continue
        out.append(name)
    return out


def missing_scores_note(note: Notify) -> None:
    missing = [(label, module) for name, module, label in SCORES
               if name not in available_scores()]
    if missing:
        note(f"{' and '.join(lbl for lbl, _ in missing)} left out: "
             f"{', '.join(m for _, m in missing)} not installed (pip install "
             "'dwancodec[all]')")


def compute_scores(ref: np.ndarray, est: np.ndarray, sr: int, note: Notify) -> dict[str, float]:
    """SI-SDR and mel distance, plus PESQ-WB and STOI when their packages are installed (left
    out otherwise: never a ``nan`` for a missing package)."""
    from .. import metrics

    out = {"si_sdr": metrics.si_sdr(ref, est), "mel_distance": metrics.mel_distance(ref, est, sr)}
    for name, fn in (("pesq_wb", metrics.pesq_wb), ("stoi", metrics.stoi)):
        if name not in available_scores():
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out[name] = fn(ref, est, sr)
        for w in caught:
            note(str(w.message))
    return out


def fmt_score(value: float | None, spec: str, width: int = 0) -> str:
    """A score, or ``n/a`` (right-aligned to ``width``) when it could not be computed."""
    text = format(value, spec) if value is not None and math.isfinite(value) else "n/a"
    return text.rjust(width)


__all__ = ["available_scores", "choose_n_q", "engine_from_args", "load_model"]
