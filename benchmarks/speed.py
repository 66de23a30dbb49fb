"""Per-frame speed and memory: torch eager step vs torch offline vs ONNX Runtime step.

Usage::

    python benchmarks/speed.py                      # default config (or the shipped bundle)
    python benchmarks/speed.py --model BUNDLE --threads 1,2 --seconds 30 --profile
    python benchmarks/speed.py --onnx-dir exported/ # reuse an export (else a temporary one)

Every (backend, threads) cell runs in a fresh child process, one after the other, so that the
peak RSS is that backend's own; the ONNX Runtime children run with ``torch`` made unimportable
(the deployment situation). A 20 ms frame is pushed per call (``hop`` samples into the encoder
session, one code frame into the decoder session) and each call is timed (wall clock); offline
rows time whole-signal ``encode``/``decode`` calls and divide by the number of frames (their
percentiles are over repeats). The ratios against the targets come first, then the table, then
(``--profile``) ONNX Runtime's per-operator profile of the step graphs. Random weights are fine
for speed; the shipped bundle is used when it is installed.

Targets (issue 4, default model, one thread): encoder + decoder ONNX Runtime step >= 50x real
time (<= 0.4 ms per 20 ms frame); streaming step <= 1.2x the offline per-frame cost; runtime
RSS <= 100 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SPEECH = REPO / "tests" / "data" / "speech_en.flac"
BACKENDS = ("torch-step", "torch-offline", "ort-step", "ort-offline")
WARMUP_FRAMES = 50
OFFLINE_REPEATS = 7

BLOCK_TORCH = """
import importlib.abc, sys
class _BlockTorch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError("torch is blocked in the runtime benchmark")
sys.meta_path.insert(0, _BlockTorch())
"""


# Worker side -----------------------------------------------------------------------------------
def _load_codec(args: argparse.Namespace) -> Any:
    """The bundle, or the named config with seed-0 random weights (same in every process)."""
    from dwancodec.api import load_codec
    from dwancodec.model import Codec

    if args.model:
        return load_codec(args.model)
    return Codec.from_config(args.config, seed=0)


def _signal(seconds: float, sample_rate: int) -> Any:
    import numpy as np

    from dwancodec.audio import load_audio

    n = int(seconds * sample_rate)
    if SPEECH.exists():
        x, _ = load_audio(SPEECH, sample_rate)
        x = np.concatenate([x, x[::-1]] * (n // (2 * len(x)) + 1))[:n]
    else:
        x = 0.1 * np.random.default_rng(0).standard_normal(n)
    return np.ascontiguousarray(x, dtype=np.float32)


def _stats(times_s: list[float], frames_per_call: int = 1) -> dict[str, float]:
    import numpy as np

    t = np.asarray(times_s) * 1e3 / frames_per_call
    return {"median_ms": float(np.median(t)), "p95_ms": float(np.percentile(t, 95)),
            "p99_ms": float(np.percentile(t, 99)), "calls": len(t)}


def _peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM; ru_maxrss would include the parent's,
    as Linux keeps it across exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time_calls(fn: Any, n: int) -> tuple[list[float], float]:
    """Call ``fn(i)`` for i < n; per-call wall times and the total process CPU time."""
    wall = []
    cpu0 = time.process_time()
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        wall.append(time.perf_counter() - t0)
    return wall, time.process_time() - cpu0


def worker(args: argparse.Namespace) -> dict[str, Any]:
    backend, threads = args.worker, args.threads_one
    res: dict[str, Any] = {"backend": backend, "threads": threads}
    if backend.startswith("torch"):
        import torch

        from dwancodec.streaming import StreamingDecoder, StreamingEncoder

        torch.set_num_threads(threads)
        codec = _load_codec(args)
        hop = codec.hop_length
        x = _signal(args.seconds, codec.sample_rate)
        frames = len(x) // hop
        x = x[:frames * hop]
        xt = torch.from_numpy(x)[None]
        with torch.inference_mode():
            codes = codec.encode(xt[:, None])
        if backend == "torch-step":
            enc, dec = StreamingEncoder(codec), StreamingDecoder(codec)
            for i in range(WARMUP_FRAMES):
                dec.push(enc.push(xt[:, i * hop:(i + 1) * hop]))
            enc.reset()
            dec.reset()
            ew, ec = _time_calls(lambda i: enc.push(xt[:, i * hop:(i + 1) * hop]), frames)
            dw, dc = _time_calls(lambda i: dec.push(codes[..., i:i + 1]), frames)
            res["encoder"], res["decoder"] = _stats(ew), _stats(dw)
            res["encoder"]["cpu_ms"], res["decoder"]["cpu_ms"] = ec * 1e3 / frames, \
                dc * 1e3 / frames
        else:
            def enc_all(_: int) -> None:
                with torch.inference_mode():
                    codec.encode(xt[:, None])

            def dec_all(_: int) -> None:
                with torch.inference_mode():
                    codec.decode(codes)

            enc_all(0)
            dec_all(0)
            ew, ec = _time_calls(enc_all, OFFLINE_REPEATS)
            dw, dc = _time_calls(dec_all, OFFLINE_REPEATS)
            res["encoder"], res["decoder"] = _stats(ew, frames), _stats(dw, frames)
            res["encoder"]["cpu_ms"] = ec * 1e3 / (frames * OFFLINE_REPEATS)
            res["decoder"]["cpu_ms"] = dc * 1e3 / (frames * OFFLINE_REPEATS)
        res["frame_ms"] = 1000 * hop / codec.sample_rate
    else:
        from dwancodec.runtime import OnnxCodec

        step = backend == "ort-step"
        rt = OnnxCodec(args.onnx_dir, num_threads=threads, use_full_graphs=not step)
        hop = rt.hop_length
        x = _signal(args.seconds, rt.sample_rate)
        frames = len(x) // hop
        x = x[None, :frames * hop]
        codes = rt.encode(x)
        if step:
            enc, dec = rt.streaming_encoder(), rt.streaming_decoder()
            for i in range(WARMUP_FRAMES):
                dec.push(enc.push(x[:, i * hop:(i + 1) * hop]))
            enc.reset()
            dec.reset()
            ew, ec = _time_calls(lambda i: enc.push(x[:, i * hop:(i + 1) * hop]), frames)
            dw, dc = _time_calls(lambda i: dec.push(codes[..., i:i + 1]), frames)
            res["encoder"], res["decoder"] = _stats(ew), _stats(dw)
            res["encoder"]["cpu_ms"], res["decoder"]["cpu_ms"] = ec * 1e3 / frames, \
                dc * 1e3 / frames
            if args.profile and threads == 1:  # after this, RSS would include the profiler's
                res["peak_rss_mb"] = _peak_rss_mb()
                res["profile"] = _ort_profile(args.onnx_dir, x, codes)
        else:
            rt.encode(x)
            rt.decode(codes)
            ew, ec = _time_calls(lambda _: rt.encode(x), OFFLINE_REPEATS)
            dw, dc = _time_calls(lambda _: rt.decode(codes), OFFLINE_REPEATS)
            res["encoder"], res["decoder"] = _stats(ew, frames), _stats(dw, frames)
            res["encoder"]["cpu_ms"] = ec * 1e3 / (frames * OFFLINE_REPEATS)
            res["decoder"]["cpu_ms"] = dc * 1e3 / (frames * OFFLINE_REPEATS)
        res["frame_ms"] = 1000 * hop / rt.sample_rate
        res["torch_loaded"] = "torch" in sys.modules
    res.setdefault("peak_rss_mb", _peak_rss_mb())
    return res


def _ort_profile(onnx_dir: str, x: Any, codes: Any, frames: int = 300) -> dict[str, Any]:
    """Per-operator time of the step graphs (1 thread), from ONNX Runtime's profiler."""
    import collections

    import numpy as np
    import onnx
    import onnxruntime as ort

    from dwancodec.runtime import OnnxCodec, load_sidecar, session_options

    frames = min(frames, codes.shape[-1])  # --seconds below 6 gives fewer frames than 300
    meta = load_sidecar(onnx_dir)
    out: dict[str, Any] = {}
    rt = OnnxCodec(onnx_dir, use_full_graphs=False)
    hop = rt.hop_length
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("encoder_step", "decoder_step"):
            g = meta["graphs"][name]
            so = session_options(1)
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(tmp) / name)
            sess = ort.InferenceSession(str(Path(onnx_dir) / (g.get("optimized") or g["file"])),
                                        so, providers=["CPUExecutionProvider"])
            spec = rt.encoder_state_spec if name.startswith("enc") else rt.decoder_state_spec
            state = {k: np.zeros((1, *s), np.float32) for k, (s, _) in spec.items()}
            for i in range(frames):
                if name == "encoder_step":
                    feeds = {"audio": x[None, :, i * hop:(i + 1) * hop]}
                else:
                    feeds = {"codes": codes[..., i:i + 1], "n_q": np.array(codes.shape[1])}
                outs = sess.run(None, {**feeds, **{f"state_in.{k}": v for k, v in state.items()}})
                names = [o.name for o in sess.get_outputs()]
                state = {k: outs[names.index(f"state_out.{k}")] for k in spec}
            events = json.loads(Path(sess.end_profiling()).read_text())
            by_op: dict[str, float] = collections.defaultdict(float)
            count: collections.Counter[str] = collections.Counter()
            nodes: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
            for e in events:
                if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                    op = e["args"]["op_name"]
                    by_op[op] += e["dur"]
                    count[op] += 1
                    nodes[(e["name"][:-len("_kernel_time")], op)].append(e["dur"])
            runs = sum(1 for e in events if e.get("name") == "model_run")
            total = sum(by_op.values()) / runs
            model = onnx.load(str(Path(onnx_dir) / g["file"]))
            grouped = sum(1 for n in model.graph.node if n.op_type == "Conv" and any(
                a.name == "group" and a.i > 1 for a in n.attribute))
            out[name] = {
                "kernel_us_per_frame": total,
                "nodes_per_frame": sum(count.values()) // runs,
                "by_op_us": {k: v / runs for k, v in sorted(by_op.items(), key=lambda kv: -kv[1])},
                "op_counts": {k: v // runs for k, v in count.items()},
                "top_nodes_us": [(n, op, float(np.median(v))) for (n, op), v in
                                 sorted(nodes.items(), key=lambda kv: -np.median(kv[1]))[:8]],
                "grouped_convs_left": grouped,
            }
    return out


# Parent side ---------------------------------------------------------------------------------
def run_worker(args: argparse.Namespace, backend: str, threads: int) -> dict[str, Any]:
    cmd = [sys.executable, "-c", (BLOCK_TORCH if backend.startswith("ort") else "") +
           "import runpy, sys; sys.argv = sys.argv[1:]; "
           "runpy.run_path(sys.argv[0], run_name='__main__')",
           str(Path(__file__).resolve()), "--worker", backend, "--threads-one", str(threads),
           "--seconds", str(args.seconds), "--onnx-dir", str(args.onnx_dir)]
    if args.model:
        cmd += ["--model", args.model]
    if args.config:
        cmd += ["--config", args.config]
    if args.profile:
        cmd += ["--profile"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": str(threads),
           "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{backend} x{threads} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ensure_export(args: argparse.Namespace) -> None:
    from dwancodec.runtime import SIDECAR

    d = Path(args.onnx_dir)
    if (d / SIDECAR).exists():
        print(f"using the export in {d}", file=sys.stderr)
        return
    from dwancodec.export import export_onnx

    codec = _load_codec(args)
    t0 = time.perf_counter()
    export_onnx(codec, d, full_sequence=True,
                log=lambda m: print(f"export: {m}", file=sys.stderr))
    print(f"exported {codec.config.name} to {d} in {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)


def _fmt_row(r: dict[str, Any], part: str) -> str:
    s = r[part]
    xrt = r["frame_ms"] / s["median_ms"]
    return (f"| {r['backend']:<13} | {r['threads']} | {part:<7} | {s['median_ms']:7.3f} | "
            f"{s['p95_ms']:7.3f} | {s['p99_ms']:7.3f} | {s['cpu_ms']:7.3f} | {xrt:7.1f}x | "
            f"{r['peak_rss_mb']:6.0f} |")


def report(results: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    frame_ms = 1000 * meta["hop_length"] / meta["sample_rate"]
    lines = [f"model {meta['model']['identity']}, frame {frame_ms:.0f} ms, "
             f"exporter {meta['exporter']}, opset {meta['opset']}"]
    cell = {(r["backend"], r["threads"]): r for r in results}

    def both(b: str, t: int) -> float:
        r = cell[(b, t)]
        return r["encoder"]["median_ms"] + r["decoder"]["median_ms"]

    lines.append("")
    lines.append("Ratios and targets")
    for t in sorted({r["threads"] for r in results}):
        if ("ort-step", t) not in cell:
            continue
        ort_ms = both("ort-step", t)
        frame = cell[("ort-step", t)]["frame_ms"]
        tag = "MET" if ort_ms <= frame / 50 else "NOT MET"
        lines.append(f"- {t} thread(s): ORT step enc+dec {ort_ms:.3f} ms/frame = "
                     f"{frame / ort_ms:.1f}x real time (target >= 50x, <= {frame / 50:.2f} ms): "
                     f"{tag}")
        for off in ("ort-offline", "torch-offline"):
            if (off, t) not in cell:
                continue
            ratio = ort_ms / both(off, t)
            part = {p: cell[("ort-step", t)][p]["median_ms"] / cell[(off, t)][p]["median_ms"]
                    for p in ("encoder", "decoder")}
            lines.append(f"  ORT step / {off} per frame: {ratio:.2f} "
                         f"(enc {part['encoder']:.2f}, dec {part['decoder']:.2f})"
                         + (f" (target <= 1.2): {'MET' if ratio <= 1.2 else 'NOT MET'}"
                            if off == "ort-offline" else ""))
        if ("torch-step", t) in cell:
            lines.append(f"  torch step / ORT step: {both('torch-step', t) / ort_ms:.2f}x")
        if ("torch-step", t) in cell and ("torch-offline", t) in cell:
            lines.append(f"  torch step / torch offline: "
                         f"{both('torch-step', t) / both('torch-offline', t):.2f}")
    rss_rows = [r["peak_rss_mb"] for r in results if r["backend"] == "ort-step"]
    rss = max(rss_rows) if rss_rows else float("nan")
    lines.append(f"- ORT streaming runtime peak RSS (torch blocked): {rss:.0f} MB "
                 f"(target <= 100 MB): {'MET' if rss <= 100 else 'NOT MET'}")
    lines.append("")
    lines.append("| backend       | thr | part    | median  |  p95    |  p99    | cpu     "
                 "|  x RT    | RSS MB |")
    lines.append("|---------------|-----|---------|---------|---------|---------|---------"
                 "|----------|--------|")
    for r in results:
        for part in ("encoder", "decoder"):
            lines.append(_fmt_row(r, part).replace(f"| {r['threads']} |", f"| {r['threads']}   |"))
    lines.append(f"(ms per {frame_ms:g} ms frame; offline rows: whole-signal call / frames, "
                 f"percentiles over {OFFLINE_REPEATS} repeats; cpu = process CPU time per frame)")
    for r in results:
        if "profile" not in r:
            continue
        lines.append("")
        lines.append("ONNX Runtime profile (1 thread; profiling adds a few us per node)")
        for name, p in r["profile"].items():
            ops = ", ".join(f"{k} {v:.0f} us ({p['op_counts'][k]})"
                            for k, v in list(p["by_op_us"].items())[:8])
            lines.append(f"- {name}: {p['kernel_us_per_frame']:.0f} us in kernels, "
                         f"{p['nodes_per_frame']} nodes/frame, grouped Conv nodes left: "
                         f"{p['grouped_convs_left']}")
            lines.append(f"  by op: {ops}")
            top = "; ".join(f"{op} {n[:32]} {us:.0f} us" for n, op, us in p["top_nodes_us"][:6])
            lines.append(f"  slowest nodes: {top}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model bundle (default: shipped, else config)")
    p.add_argument("--config", default=None, help="named config with random weights "
                                                  "(default: 'default' if no bundle is shipped)")
    p.add_argument("--onnx-dir", default=None, help="export folder (exported there if empty)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--seconds", type=float, default=30.0, help="audio per measurement")
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--profile", action="store_true", help="ONNX Runtime per-op profile")
    p.add_argument("--json", default=None, help="also write the raw results here")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads-one", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if args.model is None and args.config is None:
        from dwancodec.api import default_model_dir

        if (default_model_dir() / "model.safetensors").exists():
            args.model = str(default_model_dir())
        else:
            args.config = "default"
            print("no shipped model: timing the 'default' config with random weights",
                  file=sys.stderr)
    tmp = None
    if args.onnx_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="dwancodec-speed-")
        args.onnx_dir = tmp.name
    try:
        ensure_export(args)
        from dwancodec.runtime import load_sidecar

        meta = load_sidecar(args.onnx_dir)
        results = []
        for t in (int(v) for v in args.threads.split(",")):
            for b in args.backends.split(","):
                print(f"measuring {b} x{t} ...", file=sys.stderr)
                results.append(run_worker(args, b, t))
        text = report(results, meta)
        print(text)
        if args.json:
            Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
