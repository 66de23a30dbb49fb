"""ONNX Runtime sessions and per-call timing (thread CPU time), offline optimization trial."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np


def ort_session(path: Path, threads: int = 1, level: str = "all") -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def median_run_us(sessions: list[Any], feeds: dict[str, np.ndarray], rounds: int = 7,
                   calls: int = 200) -> list[float]:
    """Per-session best-of-``rounds`` median call time in microseconds (interleaved rounds).

    Thread CPU time, not wall time: with one intra-op thread all work runs on the calling
    thread, and CPU time is far less disturbed by other processes on a shared machine.
    """
    best = [float("inf")] * len(sessions)
    for s in sessions:
        for _ in range(20):
            s.run(None, feeds)
    for _ in range(rounds):
        for i, s in enumerate(sessions):
            ts = np.empty(calls)
            for j in range(calls):
                t0 = time.thread_time_ns()
                s.run(None, feeds)
                ts[j] = time.thread_time_ns() - t0
            best[i] = min(best[i], float(np.median(ts)) / 1e3)
    return best


def random_feeds(session: Any, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Plausible inputs for any of our graphs (dynamic axes set to ``batch`` / 1 frame)."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for i in session.get_inputs():
        shape = [batch if d == "batch" else (d if isinstance(d, int) else 1) for d in i.shape]
        if i.name == "n_q":
            feeds[i.name] = np.array(1 << 30, dtype=np.int64)  # clamps to all stages
        elif "int64" in i.type:
            feeds[i.name] = np.zeros(shape, np.int64)
        else:
            feeds[i.name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    return feeds



def optimize_offline(path: Path, threads: int = 1) -> dict[str, Any]:
    """Try ONNX Runtime's offline optimization (level "extended", hardware independent).

    Writes ``<name>.ort.onnx`` beside ``path`` and keeps it only if a step runs at least 5 %
    faster than the plain graph in two measurements (both loaded with all online optimizations
    on, as the runtime does). Returns the measurements and whether the optimized copy was kept.
    """
    opt_path = path.with_name(path.stem + ".ort.onnx")
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(opt_path)
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    t0 = time.perf_counter()
    plain = ort_session(path, threads)
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    opt = ort_session(opt_path, threads)
    t_opt = time.perf_counter() - t0
    inputs = random_feeds(plain)
    us_plain, us_opt = median_run_us([plain, opt], inputs)
    kept = us_opt < 0.95 * us_plain
    if kept:  # confirm: a single measurement on a busy machine is not enough
        again_plain, again_opt = median_run_us([plain, opt], inputs)
        kept = again_opt < 0.95 * again_plain
        us_plain, us_opt = min(us_plain, again_plain), min(us_opt, again_opt)
    if not kept:
        opt_path.unlink()
    return {
        "optimizer": "onnxruntime offline (ORT_ENABLE_EXTENDED)",
        "step_us_plain": round(us_plain, 1), "step_us_optimized": round(us_opt, 1),
        "load_s_plain": round(t_plain, 3), "load_s_optimized": round(t_opt, 3),
        "kept": kept, "file": opt_path.name if kept else None,
    }



def environment_threads() -> int:
    """CPU threads available to this process."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
