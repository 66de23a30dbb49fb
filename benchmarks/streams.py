"""Speed per step and real-time streams per core: ONNX Runtime (float32, int8) and torch.

Usage::

    python benchmarks/streams.py                                # export the default model first
    python benchmarks/streams.py --onnx base=exported/ --onnx int8=exported/:int8 --torch
    python benchmarks/streams.py --batches 1,8,64 --rounds 5 --json out.json

Each engine steps ``B`` independent streams at once: one call of the encoder step
(``[B, 1, hop]`` audio) and one of the decoder step (``[B, N, 1]`` codes, all stages) per 20 ms
frame, on one thread (``intra_op_num_threads = 1`` / ``torch.set_num_threads(1)``). The ONNX
Runtime engine is the runtime's own :class:`~dwancodec.runtime.onnx_codec.StepRunner`
(preallocated, IO-bound buffers); the torch engine is ``Codec.encoder_step`` /
``Codec.decoder_step`` under ``inference_mode``.

All cells run in one process, interleaved round by round, so that a loaded machine loads every
cell alike: compare cells of one run, not figures of different runs. Per step (encoder +
decoder, all ``B`` streams) it records thread CPU time and wall time; it reports

- ``x RT``: real-time factor per stream at batch 1 (frame / median CPU time per step),
- ``streams/core``: ``B * frame / mean CPU time per step`` (what one core sustains),
- ``p99 ms``: the 99th percentile of the wall time per step (what a real-time loop must fit in
  one frame; includes preemption by other processes), and whether it fits.

Targets (issue 13, default model): ONNX Runtime step >= 30x real time at batch 1 (stretch 50x);
>= 100 concurrent real-time streams per core.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_BATCHES = (1, 8, 64)
#: Steps per cell per round: enough calls for a p99, bounded work at large batches.
CALLS = {1: 300, 8: 120, 64: 30}
TARGET_RT, STRETCH_RT, TARGET_STREAMS = 30.0, 50.0, 100


def ort_engine(directory: str, precision: str, batch: int) -> Callable[[], None]:
    """One step (encoder + decoder) of ``batch`` streams on the runtime's step runners."""
    from dwancodec.runtime import OnnxCodec

    rt = OnnxCodec(directory, num_threads=1, use_full_graphs=False, precision=precision)
    enc, dec = rt.encoder_runner(batch), rt.decoder_runner(batch)
    rng = np.random.default_rng(0)
    audio = enc.inputs["audio"]
    audio[...] = 0.1 * rng.standard_normal(audio.shape)
    codes_out, codes_in = enc.outputs["codes"], dec.inputs["codes"]

    def step() -> None:
        enc.run()
        codes_in[:, : codes_out.shape[1]] = codes_out
        dec.run()

    return step


def torch_engine(codec: Any, batch: int) -> Callable[[], None]:
    """One step (encoder + decoder) of ``batch`` streams on the torch ``Codec`` steps."""
    import torch

    from dwancodec.streaming.state import zero_state

    gen = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(batch, 1, codec.hop_length, generator=gen)
    state = {"enc": zero_state(codec.encoder_state_spec(), batch),
             "dec": zero_state(codec.decoder_state_spec(), batch)}

    def step() -> None:
        with torch.inference_mode():
            codes, state["enc"] = codec.encoder_step(audio, state["enc"])
            _, state["dec"] = codec.decoder_step(codes, state["dec"])

    return step


def measure(cells: dict[tuple[str, int], Callable[[], None]], rounds: int
            ) -> dict[tuple[str, int], dict[str, np.ndarray]]:
    """Interleaved rounds over all cells; per-call thread CPU and wall times (seconds)."""
    times: dict[tuple[str, int], dict[str, list[float]]] = {
        c: {"cpu": [], "wall": []} for c in cells}
    for fn in cells.values():  # warm up (first calls allocate, prepack, fill caches)
        for _ in range(10):
            fn()
    for _ in range(rounds):
        for cell, fn in cells.items():
            cpu, wall = times[cell]["cpu"], times[cell]["wall"]
            for _ in range(CALLS.get(cell[1], max(10, 2000 // cell[1]))):
                t0, c0 = time.perf_counter(), time.thread_time()
                fn()
                cpu.append(time.thread_time() - c0)
                wall.append(time.perf_counter() - t0)
    return {c: {k: np.asarray(v) for k, v in t.items()} for c, t in times.items()}


def table(results: dict[tuple[str, int], dict[str, np.ndarray]], frame_ms: float
          ) -> list[dict[str, Any]]:
    """Rows: engine, batch, median/mean CPU ms per step, p99 wall ms, x RT, streams per core."""
    rows = []
    for (engine, batch), t in results.items():
        cpu_ms, wall_ms = t["cpu"] * 1e3, t["wall"] * 1e3
        med, mean = float(np.median(cpu_ms)), float(np.mean(cpu_ms))
        p99 = float(np.percentile(wall_ms, 99))
        rows.append({"engine": engine, "batch": batch, "cpu_median_ms": med,
                     "cpu_mean_ms": mean, "wall_median_ms": float(np.median(wall_ms)),
                     "wall_p99_ms": p99, "x_rt_per_stream": batch * frame_ms / med,
                     "streams_per_core": int(batch * frame_ms / mean),
                     "p99_fits_frame": p99 <= frame_ms, "calls": len(cpu_ms)})
    return rows


def report(rows: list[dict[str, Any]], frame_ms: float, load: str) -> str:
    """Markdown: speed at batch 1, then streams per core."""
    out = [f"cpu: {machine_cpu()}; machine load during the run: {load}; one thread per engine; "
           f"frame {frame_ms:g} ms",
           "", "Speed, batch 1 (encoder + decoder step per frame, thread CPU time):", "",
           "| engine | median ms / frame | x real time | p99 wall ms |", "|---|---:|---:|---:|"]
    for r in rows:
        if r["batch"] == 1:
            out.append(f"| {r['engine']} | {r['cpu_median_ms']:.3f} | "
                       f"{r['x_rt_per_stream']:.1f}x | {r['wall_p99_ms']:.2f} |")
    out += ["", f"Streams per core (target >= {TARGET_STREAMS}; B streams stepped per call):", "",
            "| engine | B | CPU ms / step (median) | p99 wall ms / step | fits 20 ms | "
            "streams / core |", "|---|---:|---:|---:|:---:|---:|"]
    for r in sorted(rows, key=lambda r: (r["engine"], r["batch"])):
        out.append(f"| {r['engine']} | {r['batch']} | {r['cpu_median_ms']:.2f} | "
                   f"{r['wall_p99_ms']:.2f} | {'yes' if r['p99_fits_frame'] else 'no'} | "
                   f"{r['streams_per_core']} |")
    return "\n".join(out)


def machine_cpu() -> str:
    """CPU model and the vector extensions that decide ONNX Runtime's kernels (figures from
    machines with and without AVX-512 / VNNI / AMX differ by about 1.5x at large batches)."""
    import platform

    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                 if ln.startswith("model name")), platform.machine())
    flags = set(next((ln.split(":", 1)[1].split() for ln in info.splitlines()
                      if ln.startswith("flags")), []))
    ext = [label for flag, label in (("avx2", "AVX2"), ("avx512f", "AVX-512"),
                                     ("avx512_vnni", "VNNI"), ("amx_tile", "AMX"))
           if flag in flags]
    return f"{name} ({', '.join(ext) or 'no AVX2'})"


def machine_load() -> str:
    """1-minute load average over CPU count (other processes share the cores)."""
    try:
        one = os.getloadavg()[0]
    except OSError:
        return "unknown"
    return f"load average {one:.2f} on {os.cpu_count()} CPUs"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--onnx", action="append", default=[], metavar="LABEL=DIR[:int8]",
                   help="an export to time (repeatable); default: export the default model")
    p.add_argument("--torch", action="store_true", help="also time the torch engine")
    p.add_argument("--model", default=None, help="bundle for torch / the export (default: "
                   "the shipped model)")
    p.add_argument("--batches", default=",".join(map(str, DEFAULT_BATCHES)))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--json", default=None, help="write the rows here")
    args = p.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    specs = []
    tmp = None
    if not args.onnx:
        from dwancodec.api import load_codec
        from dwancodec.export import export_onnx

        tmp = tempfile.TemporaryDirectory()
        print(f"exporting to {tmp.name} ...", file=sys.stderr)
        export_onnx(load_codec(args.model), tmp.name, int8=True, log=lambda m: print(
            m, file=sys.stderr))
        specs = [("ort-f32", tmp.name, "float32")]
        if "int8" in json.loads((Path(tmp.name) / "dwancodec_onnx.json").read_text()).get(
                "graphs", {}).get("decoder_step", {}):
            specs.append(("ort-int8", tmp.name, "int8"))
        args.torch = True
    for s in args.onnx:
        label, _, rest = s.partition("=")
        directory, _, prec = rest.rpartition(":") if rest.endswith(":int8") else (rest, "", "")
        specs.append((label, directory, prec or "float32"))
    cells: dict[tuple[str, int], Callable[[], None]] = {}
    frame_ms = 20.0
    for label, directory, prec in specs:
        meta = json.loads((Path(directory) / "dwancodec_onnx.json").read_text())
        frame_ms = 1000 * meta["hop_length"] / meta["sample_rate"]
        for b in batches:
            cells[(label, b)] = ort_engine(directory, prec, b)
    if args.torch:
        import torch

        from dwancodec.api import load_codec

        torch.set_num_threads(1)
        codec = load_codec(args.model).eval()
        frame_ms = 1000 * codec.hop_length / codec.sample_rate
        for b in batches:
            cells[("torch", b)] = torch_engine(codec, b)
    load_before = machine_load()
    rows = table(measure(cells, args.rounds), frame_ms)
    load = f"{load_before} at start, {machine_load()} at end"
    print(report(rows, frame_ms, load))
    if args.json:
        out = {"cpu": machine_cpu(), "load": load, "rows": rows}
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
