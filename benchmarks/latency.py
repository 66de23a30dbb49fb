"""Latency: algorithmic (measured by impulse, sample by sample) and end-to-end live.

Usage::

    python benchmarks/latency.py                       # named configs + shipped model, live runs
    python benchmarks/latency.py --model BUNDLE --clip tests/data/speech_en.flac --duration 4
    python benchmarks/latency.py --no-live             # algorithmic part only (a few seconds)
    python benchmarks/latency.py --backend onnx --configs ""   # one backend, live rows only

1. Algorithmic latency: for each named config (random weights, seed 0) and the model bundle,
   samples are pushed ONE AT A TIME through ``StreamingEncoder -> StreamingDecoder``; output
   sample ``p`` is emitted after ``c(p)`` input samples, and the latency is
   ``max_p (c(p) - p)`` (the wait of the worst-placed input sample), compared with
   ``codec.latency_samples``. An impulse placed in frame 2 checks the response is time-aligned:
   nothing before the impulse's frame changes, the impulse's frame does.
2. End-to-end live latency, as measured by ``dwancodec live --stats-json`` (ADC time of each
   input sample -> DAC time of its decoded sample, see ``dwancodec/live/engine.py``):
   - ``file -> no device``: ``--input-file CLIP`` played in real time, no output device (codec,
     queues, worker thread and resamplers; no sound-card buffers);
   - ``mic -> speaker (PulseAudio)``: a private PulseAudio server (``tests/live_audio_server.py``,
     as ``tests/test_live.py`` uses) with a virtual microphone playing CLIP and a virtual
     speaker; the server's own recording of both ([mic, speaker] on one clock) gives an
     independent figure (lag of the best envelope cross-correlation). Skipped, with the reason,
     when pulseaudio/pactl/pacat or PortAudio are missing.
   Each row runs with ``dwancodec live``'s defaults (``--block-ms 2.5``, devices at the model's
   rate, ``--prefill-ms 10``) for each ``--backend`` (default: onnx and torch), and the
   latency budget ``dwancodec live`` measures (where each row's time goes, in path order;
   ``dwancodec/live/engine.py: BUDGET_PARTS``) is tabled below the rows.
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
CLIP = REPO / "tests" / "data" / "speech_en.flac"


def default_bundle() -> str | None:
    """The shipped model if installed, else None (named configs only)."""
    from dwancodec.api import default_model_dir

    d = default_model_dir()
    return str(d) if (d / "model.safetensors").exists() else None


def impulse_latency(codec: Any, frame: int = 2) -> dict[str, Any]:
    """Push ``[1, 4 * hop]`` samples one at a time; the emission delay and the impulse response.

    Returns measured/declared latency in samples and ms and whether the response to an
    impulse in ``frame`` starts in that frame (nothing earlier changes).
    """
    import torch

    from dwancodec.streaming import StreamingDecoder, StreamingEncoder

    hop = codec.hop_length
    n = 4 * hop
    with torch.inference_mode():
        silent = codec.decode(codec.encode(torch.zeros(1, 1, n)))[0, 0]
        x = torch.zeros(1, n)
        x[0, frame * hop + hop // 2] = 0.9
        enc, dec = StreamingEncoder(codec), StreamingDecoder(codec)
        emitted_at: list[int] = []
        outs = []
        for count in range(1, n + 1):
            y = dec.push(enc.push(x[:, count - 1:count]))
            emitted_at += [count] * y.shape[-1]
            outs.append(y)
        y = torch.cat(outs, -1)[0]
    measured = max(c - p for p, c in enumerate(emitted_at))
    diff = (y - silent[: y.shape[-1]]).abs() > 1e-6
    first_change = int(torch.nonzero(diff)[0]) if diff.any() else None
    return {"hop": hop, "sample_rate": codec.sample_rate,
            "measured_samples": measured, "declared_samples": codec.latency_samples,
            "measured_ms": 1000 * measured / codec.sample_rate,
            "declared_ms": float(codec.latency_ms), "match": measured == codec.latency_samples,
            "impulse_at": frame * hop + hop // 2, "first_changed_output": first_change,
            "aligned": first_change is None or first_change >= frame * hop}


def algorithmic(model: str | None, configs: list[str]) -> list[dict[str, Any]]:
    import torch

    from dwancodec.api import load_codec
    from dwancodec.model import Codec

    torch.set_num_threads(1)
    rows = []
    for name in configs:
        codec = Codec.from_config(name, seed=0).eval()
        rows.append({"model": f"config {name} (random weights)", **impulse_latency(codec)})
    if model:
        codec = load_codec(model).eval()
        rows.append({"model": f"bundle {codec.identity()}", **impulse_latency(codec)})
    return rows


def _live(args: list[str], env: dict[str, str], stats: Path, timeout: float
          ) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "dwancodec.cli", "live", *args, "--stats-json", str(stats),
           "--quiet"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode:
        raise RuntimeError(f"dwancodec live failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads(stats.read_text())


def _summary(s: dict[str, Any]) -> dict[str, Any]:
    lat = s["latency_ms"]
    return {"backend": s.get("backend"), "median_ms": lat["median"],
            "mean_ms": lat.get("mean"), "p95_ms": lat["p95"], "min_ms": lat["min"],
            "max_ms": lat["max"], "count": lat["count"],
            "algorithmic_ms": s["algorithmic_latency_ms"], "block_ms": s.get("block_ms"),
            "prefill_ms": s.get("prefill_ms"), "input_rate": s.get("input_rate"),
            "output_rate": s.get("output_rate"),
            "compute_ms_per_frame": s.get("compute_ms_per_frame"),
            "underruns": s.get("underruns"), "overruns": s.get("overruns"),
            "budget_ms": s.get("latency_budget_ms") or {}}


def _envelope_lag_ms(a: Any, b: Any, rate: int, max_ms: float = 1000.0) -> float | None:
    """Lag of ``b`` behind ``a`` maximising the correlation of 5 ms log-energy envelopes."""
    import numpy as np

    w = rate // 200
    n = min(len(a), len(b)) // w
    if n < 100:
        return None

    def env(x: Any) -> Any:
        e = np.log(np.mean(x[: n * w].reshape(n, w) ** 2, axis=1) + 1e-8)
        return (e - e.mean()) / (e.std() + 1e-9)

    ea, eb = env(a), env(b)
    best, lag_best = -2.0, None
    for lag in range(0, min(int(max_ms / 5), n // 2)):
        c = float(np.mean(ea[: n - lag] * eb[lag:]))
        if c > best:
            best, lag_best = c, lag
    if lag_best is None or best < 0.3:
        return None
    return 5.0 * lag_best


def live_latency(model: str | None, clip: Path, duration: float, backends: list[str],
                 onnx_dir: str | None) -> list[dict[str, Any]]:
    """:func:`backend_rows` for each backend."""
    return [r for b in backends for r in backend_rows(model, clip, duration, b, onnx_dir)]


def backend_rows(model: str | None, clip: Path, duration: float, backend: str,
                 onnx_dir: str | None) -> list[dict[str, Any]]:
    """End-to-end rows: file -> no device, and mic -> speaker through a private PulseAudio."""
    rows: list[dict[str, Any]] = []
    common = (["--model", model] if model else []) + ["--backend", backend]
    if onnx_dir:
        common += ["--onnx-dir", onnx_dir]
    with tempfile.TemporaryDirectory(prefix="dwancodec-latency-") as tmp:
        t = Path(tmp)
        # No audio server at all: point PulseAudio/ALSA clients at nothing.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "ALSA_"))}
        env.update({"PULSE_SERVER": f"unix:{t / 'none'}", "PYTHONPATH": str(REPO)})
        try:
            s = _live([*common, "--input-file", str(clip), "--duration", str(duration)],
                      env, t / "file.json", timeout=120 + duration)
            rows.append({"path": "file -> no device", **_summary(s)})
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            rows.append({"path": "file -> no device", "skipped": str(e)[:300]})
        rows.append(_pulse_row(common, clip, duration, t))
    for r in rows:
        r["backend"] = backend
    return rows


def _pulse_row(common: list[str], clip: Path, duration: float, tmp: Path) -> dict[str, Any]:
    path = "mic -> speaker (private PulseAudio)"
    sys.path.insert(0, str(REPO))
    try:
        from tests.live_audio_server import PrivatePulseAudio, missing_tools
    except ImportError as e:
        return {"path": path, "skipped": f"tests/live_audio_server.py not importable: {e}"}
    missing = missing_tools()
    if missing:
        return {"path": path, "skipped": f"{', '.join(missing)} not installed (apt-get install "
                                         "pulseaudio pulseaudio-utils libportaudio2 "
                                         "libasound2-plugins)"}
    import numpy as np

    from dwancodec.audio import load_audio

    rate = 16000
    x, _ = load_audio(clip, rate)
    server = PrivatePulseAudio(tmp / "pulse")
    try:
        server.start()
        env = {**server.env(), "PYTHONPATH": str(REPO)}
        probe = server.record(rate, "probe.monitor", channels=2)
        server.play(np.tile(x, int(np.ceil((duration + 30) * rate / len(x)))), rate, sink="mic")
        s = _live([*common, "--duration", str(duration)], env, tmp / "pulse.json",
                  timeout=120 + duration)
        time.sleep(0.3)
        rec = probe.stop()
        row = {"path": path, **_summary(s)}
        lag = _envelope_lag_ms(rec[:, 0], rec[:, 1], rate)
        row["server_seen_ms"] = lag
        return row
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
        return {"path": path, "skipped": str(e)[:300]}
    finally:
        server.stop()


def report(alg: list[dict[str, Any]], live: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = []
    if alg:
        lines += ["### Algorithmic latency (impulse, pushed one sample at a time)", "",
                  "| model | sample rate | hop | measured | declared (`latency_samples`) | "
                  "match | impulse response aligned |", "|---|---|---|---|---|---|---|"]
    for r in alg:
        lines.append(f"| {r['model']} | {r['sample_rate']} | {r['hop']} | "
                     f"{r['measured_samples']} samples = {r['measured_ms']:.1f} ms | "
                     f"{r['declared_samples']} = {r['declared_ms']:.1f} ms | "
                     f"{'yes' if r['match'] else 'NO'} | {'yes' if r['aligned'] else 'NO'} |")
    if live:
        if lines:
            lines.append("")
        lines += [f"### End-to-end live latency (`dwancodec live`, {meta['duration']:g} s of "
                  f"{meta['clip']}, model {meta['model']})", "",
                  "| path | backend | median | p95 | min-max | algorithmic part | block | "
                  "device rates | compute per frame | underruns | seen at the audio server |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in live:
            if "skipped" in r:
                lines.append(f"| {r['path']} | {r['backend']} | skipped: {r['skipped']} "
                             "| | | | | | | | |")
                continue
            seen = r.get("server_seen_ms")
            seen_s = "" if "server_seen_ms" not in r else (
                f"{seen:.0f} ms (envelope x-corr, 5 ms steps)" if seen is not None
                else "no clear correlation")
            rates = ("-" if r.get("input_rate") is None else
                     f"{r['input_rate']} / {r['output_rate']} Hz")
            cpf = r.get("compute_ms_per_frame")
            lines.append(f"| {r['path']} | {r['backend']} | **{r['median_ms']:.1f} ms** | "
                         f"{r['p95_ms']:.1f} ms | {r['min_ms']:.0f}-{r['max_ms']:.0f} ms | "
                         f"{r['algorithmic_ms']:.1f} ms | {r['block_ms']:g} ms | {rates} | "
                         f"{'-' if cpf is None else f'{cpf:.2f} ms'} | {r['underruns']} | "
                         f"{seen_s} |")
        lines += budget_table([r for r in live if "skipped" not in r])
    return "\n".join(lines)


def budget_table(rows: list[dict[str, Any]]) -> list[str]:
    """Where each row's end-to-end latency goes: median / mean ms of each part, the sum of
    the means against the end-to-end mean (they agree: the parts split each measurement)."""
    from dwancodec.live.engine import BUDGET_PARTS

    rows = [r for r in rows if r.get("budget_ms")]
    if not rows:
        return []
    short = {"file -> no device": "file", "mic -> speaker (private PulseAudio)": "PulseAudio"}
    head = [f"{short.get(r['path'], r['path'])}, {r['backend']}" for r in rows]
    out = ["", "Latency budget (what `dwancodec live` prints; median / mean ms of each part, "
           "in path order):", "",
           "| part | " + " | ".join(head) + " |", "|---|" + "---|" * len(rows)]
    for k, label in BUDGET_PARTS.items():
        cells = []
        for r in rows:
            v = r["budget_ms"].get(k)
            cells.append("-" if v is None else f"{v['median']:.1f} / {v['mean']:.1f}")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    sums = []
    for r in rows:
        total = sum(v["mean"] for v in r["budget_ms"].values() if v)
        mean = r.get("mean_ms")
        sums.append(f"{total:.1f} / {'-' if mean is None else f'{mean:.1f}'}")
    out.append("| sum of the means / end-to-end mean | " + " | ".join(sums) + " |")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="model bundle (default: the shipped model)")
    p.add_argument("--configs", default="default,lowlatency,24k,tiny")
    p.add_argument("--clip", default=str(CLIP))
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--backend", default="onnx,torch",
                   help="comma-separated live backends (onnx, torch; default both)")
    p.add_argument("--onnx-dir", default=None)
    p.add_argument("--no-live", action="store_true")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "latency"))
    args = p.parse_args(argv)
    model = args.model or default_bundle()
    clip = Path(args.clip)
    backends = [b for b in args.backend.split(",") if b]
    bad = [b for b in backends if b not in ("onnx", "torch")]
    if bad or not backends:
        print(f"error: --backend takes onnx and/or torch, got {args.backend!r}", file=sys.stderr)
        return 2
    if not clip.exists():
        print(f"error: clip not found: {clip}", file=sys.stderr)
        return 2
    alg = algorithmic(model, [c for c in args.configs.split(",") if c])
    live: list[dict[str, Any]] = []
    live_model = model
    with tempfile.TemporaryDirectory(prefix="dwancodec-latency-model-") as tmp:
        if not args.no_live:
            if live_model is None:  # no shipped model: random 'default' weights (same timing)
                from dwancodec.model import Codec

                live_model = str(Codec.from_config("default", seed=0).save_pretrained(
                    Path(tmp) / "default-random"))
            live = live_latency(live_model, clip, args.duration, backends, args.onnx_dir)
    shown = (args.model or model) if model else "config default (random weights)"
    meta = {"model": shown, "clip": clip.name if clip.resolve().is_relative_to(REPO) else
            str(clip), "duration": args.duration, "backend": args.backend}
    text = report(alg, live, meta)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "latency.md").write_text(text + "\n")
    (out / "latency.json").write_text(json.dumps({"meta": meta, "algorithmic": alg,
                                                  "live": live}, indent=2))
    return 0 if all(r["match"] and r["aligned"] for r in alg) else 1


if __name__ == "__main__":
    sys.exit(main())
