"""The codec in headless Chromium: per-frame compute on onnxruntime-web, a live run, a screenshot.

Starts ``dwancodec web`` and Debian's Chromium (fake microphone fed from a speech clip), then:

1. file mode: the clip coded frame by frame ``--reps`` times, then once through the page's own
   file input (drop zone / file chooser); the per-frame compute (encoder + decoder step, one
   WASM thread) is reported for the last half of the reps (the browser optimises WebAssembly in
   the background during the first ones), next to ONNX Runtime's native CPU time for the same
   steps in Python, measured in the same run once the browser has quit;
2. the live loop on the fake microphone for ``--seconds``: compute per frame, real-time factor,
   underruns;
3. a screenshot of the page while it runs (``--screenshot``, default docs/figures/web.png).

    python benchmarks/web.py                      # the shipped model, the bundled demo clip
    python benchmarks/web.py --json benchmarks/results/web.json --seconds 10

Needs ``chromium`` (apt-get install chromium) and ``dwancodec web --setup`` done once.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from dwancodec.audio import load_audio
from dwancodec.bundled import demo_clip
from dwancodec.web.chromium import Chromium, Page, fake_microphone_flags, find_chromium

ROOT = Path(__file__).resolve().parents[1]


def start_server(model: str | None) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "dwancodec.cli", "web", "--port", "0"]
    if model:
        cmd += ["--model", model]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
    line = proc.stdout.readline().strip() if sel.select(60) else ""  # type: ignore[union-attr]
    if not line.startswith("serving "):
        stop(proc)
        err = proc.stderr.read().strip() if proc.stderr else ""
        raise SystemExit(f"web.py: dwancodec web did not start: {err or line}")
    return proc, line.split()[-1]


def stop(proc: subprocess.Popen[str]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def wait_for(page: Page, expression: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = page.evaluate(expression)
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"web.py: timed out waiting for {expression}\n" + "\n".join(page.messages()))


def python_step_ms(model_dir: str | None, x: np.ndarray, nq: int) -> float | None:
    """Native ONNX Runtime (1 thread): mean ms per encoder + decoder step on ``x``."""
    try:
        from dwancodec.runtime import OnnxCodec
    except ImportError:
        return None
    codec = OnnxCodec(model_dir, num_threads=1) if model_dir else OnnxCodec(num_threads=1)
    step = codec.hop_length * codec.frames_per_step
    best = float("inf")
    for _ in range(3):
        enc, dec = codec.streaming_encoder(1, n_q=nq), codec.streaming_decoder(1)
        n = len(x) // step
        t0 = time.perf_counter()
        for i in range(n):
            dec.push(enc.push(x[None, i * step:(i + 1) * step]))
        best = min(best, (time.perf_counter() - t0) * 1000 / n)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="model folder (default: the shipped graphs)")
    ap.add_argument("--input", default=str(demo_clip()), help="speech clip (mic and file mode)")
    ap.add_argument("--nq", type=int, default=0, help="stages (default: all)")
    ap.add_argument("--reps", type=int, default=4, help="file-mode repetitions")
    ap.add_argument("--seconds", type=float, default=8.0, help="live run length")
    ap.add_argument("--screenshot", default=str(ROOT / "docs" / "figures" / "web.png"))
    ap.add_argument("--json", default=None, help="write the figures here")
    args = ap.parse_args()
    exe = find_chromium()
    if exe is None:
        print("web.py: chromium not found (apt-get install chromium)", file=sys.stderr)
        return 2
    x, _ = load_audio(args.input, 16000)
    x = np.ascontiguousarray(x, dtype=np.float32)
    tmp = Path(tempfile.mkdtemp(prefix="dwancodec-web-bench-"))
    wav = tmp / (Path(args.input).stem + ".wav")
    sf.write(wav, x, 16000, subtype="PCM_16")
    server, url = start_server(args.model)
    out: dict[str, Any] = {"input": Path(args.input).name, "seconds_of_audio": len(x) / 16000}
    try:
        with Chromium(exe, extra_args=fake_microphone_flags(wav), window_size=(1100, 900)) as b:
            page = b.new_page(url)
            info = page.evaluate("window.dwancodec.ready", timeout=180)
            nq = args.nq or info["encoderNq"]
            page.evaluate(f"window.dwancodec.setStages({nq})")
            out["model"] = info
            out["nq"] = nq
            out["user_agent"] = page.evaluate("navigator.userAgent")
            # 1. file mode: the API for the repetitions, then the page's own file input
            b64 = base64.b64encode(x.tobytes()).decode()
            reps = []
            for _ in range(max(1, args.reps)):
                r = page.evaluate(f"window.dwancodecTest.encodeDecode('{b64}', {nq})", timeout=600)
                reps.append(np.asarray(r["stepMs"]))
            steady = np.concatenate(reps[len(reps) // 2:])
            doc = page.send("DOM.getDocument")
            node = page.send("DOM.querySelector", {"nodeId": doc["root"]["nodeId"],
                                                   "selector": "#file"})
            page.send("DOM.setFileInputFiles", {"files": [str(wav)], "nodeId": node["nodeId"]})
            wait_for(page, "!document.getElementById('file-result').hidden", 300)
            out["file_mode"] = {
                "frames": int(r["frames"]), "reps": len(reps),
                "mean_ms_per_rep": [float(m.mean()) for m in reps],
                "best_rep_mean_ms": float(min(m.mean() for m in reps)),
                "steady_mean_ms": float(steady.mean()), "steady_p50_ms": float(np.median(steady)),
                "steady_p95_ms": float(np.percentile(steady, 95)),
                "rtf": float(steady.mean()) * info["frameRate"] / 1000,
            }
            # 2. live on the fake microphone, 3. the screenshot while it runs
            page.evaluate("window.dwancodec.start().then(() => true)", timeout=60)
            time.sleep(args.seconds)
            png = page.screenshot()
            out["live"] = page.evaluate("window.dwancodec.stop()", timeout=60)
            Path(args.screenshot).parent.mkdir(parents=True, exist_ok=True)
            Path(args.screenshot).write_bytes(png)
            errors = [m for m in page.messages() if m.startswith("exception")]
            if errors:
                print("\n".join(errors), file=sys.stderr)
    finally:
        stop(server)
        shutil.rmtree(tmp, ignore_errors=True)
    # after the browser has quit, so that its background threads do not compete
    out["file_mode"]["python_onnxruntime_ms"] = native = python_step_ms(args.model, x, nq)
    out["load_average"] = os.getloadavg()
    f, lv = out["file_mode"], out["live"]
    print(f"model {out['model']['identity']}, {nq} stages, onnxruntime-web "
          f"{out['model']['ortVersion']} (WASM, 1 thread) in {out['user_agent'].split(') ')[-1]}")
    print(f"file mode ({f['frames']} frames x {f['reps']}): {f['steady_mean_ms']:.2f} ms per "
          f"{1000 / out['model']['frameRate']:.0f} ms frame (p50 {f['steady_p50_ms']:.2f}, p95 "
          f"{f['steady_p95_ms']:.2f}; best rep {f['best_rep_mean_ms']:.2f}), RTF {f['rtf']:.3f}"
          + (f"; native ONNX Runtime {native:.2f} ms ({f['steady_mean_ms'] / native:.1f}x)"
             if native else ""))
    print(f"live ({lv['seconds']:.1f} s at {lv['ctxRate']} Hz): {lv['meanMs']:.2f} ms per frame "
          f"(p95 {lv['p95Ms']:.2f}), RTF {lv['rtf']:.3f}, {lv['io']['underruns']} underrun(s)")
    print(f"load average {out['load_average'][0]:.1f}; screenshot {args.screenshot}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
