"""Speed of DwanCodec against peer neural codecs in one run: ratios first, interleaved medians.

Usage::

    bash benchmarks/setup_peer_models.sh            # once: peers into .venv-peers (isolated)
    python benchmarks/peers.py              # shipped model (else 'default' config), 1+2 threads
    python benchmarks/peers.py --reps 5 --seconds 10 --out benchmarks/results/speed
    python benchmarks/peers.py --no-dwancodec --peers mimi --threads 1   # peers only

Peers (random weights: speed does not depend on weight values; nothing is downloaded):

- ``encodec``: EnCodec 24 kHz (``encodec`` 0.1.1, ``encodec_model_24khz(pretrained=False)``,
  6 kbps = 8 codebooks). Causal convolutions, hop 320 samples (13.3 ms), but the package has no
  streaming state: a live use either re-encodes a window or runs each chunk on its own. Timed as
  1 s calls (``offline``) and as stateless one-frame (320-sample) calls (``chunk``; the output of
  such chunks is not what the offline model gives, it only bounds the per-call cost).
- ``mimi``: Mimi (``moshi`` 0.2.13, ``get_mimi(None, num_codebooks=8)``: 1.1 kbps, 80 ms frames,
  causal, with a stateful streaming API). Timed as streaming steps inside
  ``with mimi.streaming(1)`` (``step``, one 1920-sample frame per call) and as ~1 s calls.
- ``snac``: SNAC 24 kHz (``snac`` 1.2.1, the ``hubertsiuzdak/snac_24khz`` config: 0.98 kbps,
  hops 512/1024/2048 samples). Non-causal: no streaming, no algorithmic latency to speak of;
  timed as ~1 s calls and as stateless 2048-sample calls (its smallest input).

Each (codec, mode set, threads) cell runs in a fresh child process (peers in the peers venv,
DwanCodec through ``benchmarks/speed.py``'s workers), so the peak RSS is that process's own
(it includes the ~250-300 MB of importing torch; the ORT rows have torch blocked). The whole set
of cells is repeated ``--reps`` times, interleaved (cell order rotates between repetitions), and
the tables report the median of the per-repetition medians; the machine is shared and noisy.
The figure of merit is compute time per second of audio (encoder + decoder, wall clock):
``1000 / ms_per_s`` is the real-time factor.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PEERS_PYTHON = REPO / ".venv-peers" / "bin" / "python"
PEERS = ("encodec", "mimi", "snac")
DWAN_BACKENDS = ("torch-step", "torch-offline", "ort-step")
WARMUP = 5


# Worker side (runs in the peers venv: stdlib + torch + the peer packages only) -----------------
def _build(name: str) -> tuple[Any, dict[str, Any]]:
    """The peer model with random weights and its facts: [B, 1, T] float audio at ``sr``."""
    import torch

    torch.manual_seed(0)
    if name == "encodec":
        import types

        # encodec.utils imports torchaudio for its file I/O only, which this worker never calls;
        # the project does not depend on torchaudio (none exists for torch 2.13), so an empty
        # placeholder module satisfies that import.
        sys.modules.setdefault("torchaudio", types.ModuleType("torchaudio"))
        from encodec import EncodecModel

        model = EncodecModel.encodec_model_24khz(pretrained=False)
        model.set_target_bandwidth(6.0)
        info = {"label": "EnCodec 24 kHz (encodec 0.1.1)", "sr": 24000, "frame": 320,
                "kbps": 6.0, "latency_ms": 320 / 24, "causal": True,
                "streaming": "no streaming state in the package",
                "min_chunk": 320, "offline_len": 24000}
    elif name == "mimi":
        from moshi.models.loaders import get_mimi

        model = get_mimi(None, num_codebooks=8)
        info = {"label": "Mimi (moshi 0.2.13), 8 codebooks", "sr": 24000, "frame": 1920,
                "kbps": 8 * 11 * 12.5 / 1000, "latency_ms": 80.0, "causal": True,
                "streaming": "stateful streaming API", "min_chunk": 1920,
                "offline_len": 13 * 1920}
    elif name == "snac":
        from snac import SNAC

        model = SNAC(sampling_rate=24000, encoder_dim=48, encoder_rates=[2, 4, 8, 8],
                     decoder_dim=1024, decoder_rates=[8, 8, 4, 2], attn_window_size=None,
                     codebook_size=4096, codebook_dim=8, vq_strides=[4, 2, 1], noise=True,
                     depthwise=True)
        info = {"label": "SNAC 24 kHz (snac 1.2.1)", "sr": 24000, "frame": 2048,
                "kbps": 12 * 24000 / 512 * (1 / 4 + 1 / 2 + 1) / 1000, "latency_ms": None,
                "causal": False, "streaming": "non-causal, offline only", "min_chunk": 2048,
                "offline_len": 12 * 2048}
    else:
        raise ValueError(f"unknown peer {name!r}; known: {', '.join(PEERS)}")
    model.eval()
    info["params_m"] = sum(p.numel() for p in model.parameters()) / 1e6
    info["frame_ms"] = 1000 * info["frame"] / info["sr"]
    return model, info


def _encode(name: str, model: Any, x: Any) -> Any:
    return model.encode(x)


def _decode(name: str, model: Any, codes: Any) -> Any:
    return model.decode(codes)


def _time_pairs(name: str, model: Any, chunks: list[Any]) -> dict[str, float]:
    """Encode then decode each chunk; median per call of each, and ms per second of audio."""
    enc_t, dec_t = [], []
    for i, x in enumerate(chunks):
        t0 = time.perf_counter()
        codes = _encode(name, model, x)
        t1 = time.perf_counter()
        _decode(name, model, codes)
        t2 = time.perf_counter()
        if i >= WARMUP:
            enc_t.append(t1 - t0)
            dec_t.append(t2 - t1)
    enc, dec = statistics.median(enc_t) * 1e3, statistics.median(dec_t) * 1e3
    tot = sorted(a + b for a, b in zip(enc_t, dec_t, strict=True))
    return {"enc_ms": enc, "dec_ms": dec, "p95_ms": tot[int(0.95 * (len(tot) - 1))] * 1e3,
            "calls": len(enc_t)}


def peer_worker(name: str, threads: int, seconds: float) -> dict[str, Any]:
    """Time one peer on ``threads`` threads; each mode's medians per call and per second."""
    import resource

    import torch

    torch.set_num_threads(threads)
    model, info = _build(name)
    sr = info["sr"]
    g = torch.Generator().manual_seed(0)
    modes: dict[str, dict[str, float]] = {}

    def chunks(n: int, count: int) -> list[Any]:
        audio = 0.1 * torch.randn(1, 1, n * count, generator=g)
        return [audio[..., i * n:(i + 1) * n] for i in range(count)]

    with torch.inference_mode():
        n_off = info["offline_len"]
        off = _time_pairs(name, model, chunks(n_off, WARMUP + max(3, int(seconds * sr) // n_off)))
        off["call_s"] = n_off / sr
        modes["offline"] = off
        n = info["min_chunk"]
        count = WARMUP + int(seconds * sr) // n
        if name == "mimi":
            with model.streaming(1):
                st = _time_pairs(name, model, chunks(n, count))
            st["call_s"] = n / sr
            modes["step"] = st
        else:
            ch = _time_pairs(name, model, chunks(n, count))
            ch["call_s"] = n / sr
            modes["chunk"] = ch
    for m in modes.values():
        m["ms_per_s"] = (m["enc_ms"] + m["dec_ms"]) / m["call_s"]
    return {"codec": name, "threads": threads, "info": info, "modes": modes,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# Parent side (project venv) --------------------------------------------------------------------
def _speed_module() -> Any:
    spec = importlib.util.spec_from_file_location("dwan_speed", REPO / "benchmarks" / "speed.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def run_peer(python: Path, name: str, threads: int, seconds: float) -> dict[str, Any]:
    """One peer cell in a fresh process of the peers venv."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore",
           "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    cmd = [str(python), str(Path(__file__).resolve()), "--worker", name, "--threads-one",
           str(threads), "--seconds", str(seconds)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"{name} x{threads} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def dwan_rows(res: dict[str, Any]) -> dict[str, Any]:
    """speed.py worker result -> the same shape as a peer mode (ms per call = per frame)."""
    frame_ms = res["frame_ms"]
    enc, dec = res["encoder"]["median_ms"], res["decoder"]["median_ms"]
    return {"enc_ms": enc, "dec_ms": dec, "p95_ms": res["encoder"]["p95_ms"] +
            res["decoder"]["p95_ms"], "call_s": frame_ms / 1000,
            "ms_per_s": (enc + dec) * 1000 / frame_ms, "peak_rss_mb": res["peak_rss_mb"]}


def _median_cells(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median over repetitions of every numeric field of the same cell."""
    out = dict(runs[0])
    for k, v in runs[0].items():
        if isinstance(v, float):
            out[k] = statistics.median(r[k] for r in runs)
    out["reps"] = len(runs)
    out["spread"] = (max(r["ms_per_s"] for r in runs) / min(r["ms_per_s"] for r in runs)
                     if "ms_per_s" in out else None)
    return out


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """All cells x reps, interleaved; returns {'rows': [...], 'dwancodec': {...}}."""
    threads = [int(t) for t in args.threads.split(",")]
    peers = [p for p in args.peers.split(",") if p] if args.peers else []
    cells: list[tuple[str, int]] = []
    speed = None
    dwan_meta: dict[str, Any] = {}
    if not args.no_dwancodec:
        speed = _speed_module()
        sargs = argparse.Namespace(model=args.model, config=args.config, seconds=args.seconds,
                                   onnx_dir=args.onnx_dir, profile=False)
        if sargs.model is None and sargs.config is None:
            from dwancodec.api import default_model_dir

            if (default_model_dir() / "model.safetensors").exists():
                sargs.model = str(default_model_dir())
            else:
                sargs.config = "default"
                print("no shipped model: timing the 'default' config with random weights",
                      file=sys.stderr)
        speed.ensure_export(sargs)
        codec = speed._load_codec(sargs)
        dwan_meta = {"identity": codec.identity(), "params_m":
                     sum(p.numel() for p in codec.parameters()) / 1e6,
                     "sr": codec.sample_rate, "frame": codec.hop_length,
                     "frame_ms": 1000 * codec.hop_length / codec.sample_rate,
                     "latency_ms": codec.latency_ms,
                     "kbps": codec.bitrate(codec.num_codebooks) / 1000,
                     "model": sargs.model or f"config {sargs.config} (random weights)"}
        cells += [(f"dwancodec:{b}", t) for t in threads for b in DWAN_BACKENDS]
    if peers and not Path(args.peers_python).exists():
        print(f"peers venv missing ({args.peers_python}): run benchmarks/setup_peer_models.sh; "
              "timing DwanCodec only", file=sys.stderr)
        peers = []
    cells += [(p, t) for t in threads for p in peers]
    raw: dict[tuple[str, int], list[dict[str, Any]]] = {c: [] for c in cells}
    info: dict[str, Any] = {}
    for rep in range(args.reps):
        order = cells[rep % len(cells):] + cells[:rep % len(cells)]
        if rep % 2:
            order = order[::-1]
        for name, t in order:
            print(f"rep {rep + 1}/{args.reps}: {name} x{t}", file=sys.stderr)
            if name.startswith("dwancodec:"):
                assert speed is not None
                r = speed.run_worker(sargs, name.split(":", 1)[1], t)
                raw[(name, t)].append(dwan_rows(r))
            else:
                r = run_peer(Path(args.peers_python), name, t, args.seconds)
                info[name] = r["info"]
                for mode, m in r["modes"].items():
                    raw.setdefault((f"{name}:{mode}", t), []).append(
                        {**m, "peak_rss_mb": r["peak_rss_mb"]})
                raw.pop((name, t), None)
    rows = [{"cell": c, "threads": t, **_median_cells(v)} for (c, t), v in raw.items() if v]
    return {"rows": rows, "peers": info, "dwancodec": dwan_meta,
            "seconds": args.seconds, "reps": args.reps}


def _label(res: dict[str, Any], name: str) -> str:
    return "DwanCodec" if name == "dwancodec" else res["peers"][name]["label"].split(" (")[0]


MODE_TEXT = {
    "torch-step": "torch eager, streaming step (1 frame/call)",
    "torch-offline": "torch eager, whole signal",
    "ort-step": "ONNX Runtime, streaming step (1 frame/call)",
    "step": "streaming step (1 frame/call)",
    "chunk": "stateless one-chunk calls",
    "offline": "~1 s calls",
}


def report(res: dict[str, Any]) -> str:
    """Markdown: ratios (ours vs each peer, same run) first, then absolute times, then facts."""
    rows = res["rows"]
    by = {(r["cell"], r["threads"]): r for r in rows}
    threads = sorted({r["threads"] for r in rows})
    lines: list[str] = []
    ours = "dwancodec:ort-step"
    peer_cells = sorted({r["cell"] for r in rows if not r["cell"].startswith("dwancodec")})
    if any(c == ours for c, _ in by) and peer_cells:
        lines += ["### Ratios (same run; compute per second of audio, encoder + decoder)", ""]
        for t in threads:
            if (ours, t) not in by:
                continue
            o = by[(ours, t)]["ms_per_s"]
            parts = []
            for c in peer_cells:
                if (c, t) in by:
                    name, mode = c.split(":")
                    parts.append(f"{by[(c, t)]['ms_per_s'] / o:.1f}x faster than "
                                 f"{res['peers'][name]['label'].split(' (')[0]} ({mode})")
            lines.append(f"- {t} thread{'s' if t > 1 else ''}: DwanCodec ORT step is "
                         + "; ".join(parts))
            for b in ("torch-step", "torch-offline"):
                if (f"dwancodec:{b}", t) in by:
                    ratio = by[(f"dwancodec:{b}", t)]["ms_per_s"] / o
                    lines.append(f"  - DwanCodec {b} takes {ratio:.1f}x the ORT step's time")
        lines.append("")
    lines += ["### Absolute times (context)", "",
              "| codec | mode | thr | enc ms/call | dec ms/call | ms per s audio | x real time "
              "| p95 ms/call | peak RSS MB | spread |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for t in threads:
        for r in sorted((r for r in rows if r["threads"] == t), key=lambda r: r["ms_per_s"]):
            name, mode = r["cell"].split(":")
            label = _label(res, name)
            lines.append(f"| {label} | {MODE_TEXT.get(mode, mode)} | {t} | {r['enc_ms']:.3f} | "
                         f"{r['dec_ms']:.3f} | {r['ms_per_s']:.1f} | {1000 / r['ms_per_s']:.1f}x | "
                         f"{r['p95_ms']:.3f} | {r['peak_rss_mb']:.0f} | {r['spread']:.2f} |")
    lines += ["", f"Medians of {res['reps']} interleaved repetitions, each over "
              f"{res['seconds']:g} s of audio; 'spread' = slowest / fastest repetition of the "
              "cell. A call is one frame for step rows, one chunk for chunk rows, ~1 s for "
              "peer offline rows, the whole signal for DwanCodec torch-offline (ms/call given "
              "per 20 ms frame there).", "", "### The codecs", "",
              "| codec | params (M) | sample rate | frame | bitrate | algorithmic latency "
              "| streaming |", "|---|---|---|---|---|---|---|"]
    d = res["dwancodec"]
    if d:
        lines.append(f"| DwanCodec `{d['identity']}` | {d['params_m']:.2f} | {d['sr'] // 1000} kHz"
                     f" | {d['frame']} ({d['frame_ms']:.1f} ms) | {d['kbps']:.2f} kbps (all "
                     f"stages) | {d['latency_ms']:.1f} ms | stateful steps (torch, ONNX) |")
    for i in res["peers"].values():
        lat = f"{i['latency_ms']:.1f} ms" if i["latency_ms"] else "n/a (non-causal)"
        lines.append(f"| {i['label']} | {i['params_m']:.2f} | {i['sr'] // 1000} kHz | "
                     f"{i['frame']} ({i['frame_ms']:.1f} ms) | {i['kbps']:.2f} kbps | {lat} | "
                     f"{i['streaming']} |")
    return "\n".join(lines)


def plot(res: dict[str, Any], path: Path) -> None:
    """Horizontal bars: x real time per codec/mode, one panel per thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threads = sorted({r["threads"] for r in res["rows"]})
    fig, axes = plt.subplots(1, len(threads), figsize=(6 * len(threads), 3.8), squeeze=False)
    for ax, t in zip(axes[0], threads, strict=True):
        rows = sorted((r for r in res["rows"] if r["threads"] == t), key=lambda r: -r["ms_per_s"])
        labels, vals, colors = [], [], []
        for r in rows:
            name, mode = r["cell"].split(":")
            label = _label(res, name)
            labels.append(f"{label} {mode}")
            vals.append(1000 / r["ms_per_s"])
            colors.append("tab:blue" if name == "dwancodec" else "tab:gray")
        ax.barh(labels, vals, color=colors)
        ax.set_xscale("log")
        ax.axvline(1, color="red", lw=1, ls="--")
        ax.set_xlabel("x real time (encode + decode), log; red = real time")
        ax.set_title(f"{t} thread{'s' if t > 1 else ''}")
        for y, v in enumerate(vals):
            ax.text(v, y, f" {v:.0f}x" if v >= 10 else f" {v:.2g}x", va="center", fontsize=8)
    fig.suptitle("Speed on CPU (median of interleaved runs; random weights)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="DwanCodec bundle (default: shipped, else "
                                                 "--config with random weights)")
    p.add_argument("--config", default=None, help="named config with random weights")
    p.add_argument("--onnx-dir", default=None, help="ONNX export folder (exported there if "
                                                    "empty; default: OUT/onnx)")
    p.add_argument("--peers", default=",".join(PEERS), help="comma-separated subset of "
                                                            + ",".join(PEERS) + " ('' for none)")
    p.add_argument("--peers-python", default=str(PEERS_PYTHON))
    p.add_argument("--no-dwancodec", action="store_true")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--seconds", type=float, default=10.0, help="audio per measurement")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "speed"))
    p.add_argument("--from-json", default=None, metavar="JSON",
                   help="only rewrite speed.md/speed.png in --out from a saved speed.json")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads-one", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(peer_worker(args.worker, args.threads_one, args.seconds)))
        return 0
    if args.reps < 1 or args.seconds <= 0:
        print("error: --reps must be >= 1 and --seconds > 0", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.onnx_dir is None:
        args.onnx_dir = str(out / "onnx")
    res = json.loads(Path(args.from_json).read_text()) if args.from_json else measure(args)
    text = report(res)
    print(text)
    (out / "speed.md").write_text(text + "\n")
    (out / "speed.json").write_text(json.dumps(res, indent=2))
    plot(res, out / "speed.png")
    print(f"wrote {out / 'speed.md'}, speed.json, speed.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
