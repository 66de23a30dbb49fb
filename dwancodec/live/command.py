"""``dwancodec live``: microphone -> codec -> speaker, with live figures.

Arguments are declared in :mod:`dwancodec.cli` (``_add_live``); this module does the work.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .audio_io import (
    AudioUnavailable,
    DeviceInput,
    DeviceOutput,
    FileInput,
    NullOutput,
    device_rate,
    find_device,
    import_sounddevice,
    list_devices,
    load_input_file,
)
from .backends import open_backend
from .engine import BUDGET_PARTS, LiveEngine
from .network import NetworkSimulator

NO_INPUT = ("no audio input device found{why}. Connect a microphone (or pick one with "
            "--input-device, see --list-devices), or use --input-file FILE to play a file "
            "through the codec in real time")


def _note(args: argparse.Namespace, msg: str) -> None:
    if not args.quiet:
        print(f"live: {msg}", file=sys.stderr, flush=True)


def _check_args(args: argparse.Namespace) -> None:
    if not 0.0 <= args.loss < 1.0:
        raise ValueError(f"--loss must be in [0, 1), got {args.loss}")
    if args.jitter_ms < 0:
        raise ValueError(f"--jitter-ms must be >= 0, got {args.jitter_ms}")
    if args.duration is not None and args.duration <= 0:
        raise ValueError(f"--duration must be positive, got {args.duration}")
    if not 1.0 <= args.block_ms <= 500.0:
        raise ValueError(f"--block-ms must be in [1, 500], got {args.block_ms}")
    pf = getattr(args, "prefill_ms", None)
    if pf is not None and not 0.0 <= pf <= 1000.0:
        raise ValueError(f"--prefill-ms must be in [0, 1000], got {pf}")
    _wanted_rate(args, 1)  # --device-rate parses
    jb = getattr(args, "jitter_buffer_ms", None)
    if jb is not None and jb < 0:
        raise ValueError(f"--jitter-buffer-ms must be >= 0, got {jb}")
    for opt in ("save_input", "save_output", "stats_json"):
        path = getattr(args, opt, None)
        if path is not None and not Path(path).resolve().parent.is_dir():
            raise FileNotFoundError(f"--{opt.replace('_', '-')}: folder "
                                    f"{Path(path).resolve().parent} does not exist")


def _wanted_rate(args: argparse.Namespace, model_rate: int) -> int | None:
    """``--device-rate``: ``model`` (default) -> the model's rate, ``default`` -> None (each
    device's default rate), or a number of Hz."""
    spec = str(getattr(args, "device_rate", None) or "model")
    if spec == "model":
        return model_rate
    if spec == "default":
        return None
    try:
        rate = int(spec)
    except ValueError:
        raise ValueError(f"--device-rate must be 'model', 'default' or a rate in Hz, got "
                         f"{spec!r}") from None
    if not 1000 <= rate <= 768000:
        raise ValueError(f"--device-rate must be in [1000, 768000] Hz, got {rate}")
    return rate


def _endpoints(args: argparse.Namespace) -> tuple[Any, int | None, Any]:
    """(input device dict or file audio, its rate, output device dict or None)."""
    if args.input_file is not None:
        audio, rate = load_input_file(args.input_file)
        try:
            out_dev = find_device(args.output_device, "output")
        except AudioUnavailable as e:
            if args.output_device is not None:
                raise
            _note(args, f"{e}")
            out_dev = None
        if out_dev is None:
            _note(args, "no output device: the decoded audio is not played "
                        "(use --save-output FILE to keep it)")
        return audio, rate, out_dev
    try:
        in_dev = find_device(args.input_device, "input")
    except AudioUnavailable as e:
        raise AudioUnavailable(NO_INPUT.format(why=f" ({e})")) from None
    if in_dev is None:
        raise AudioUnavailable(NO_INPUT.format(why=" (PortAudio lists none)"))
    out_dev = find_device(args.output_device, "output")
    if out_dev is None:
        _note(args, "no output device: the decoded audio is not played "
                    "(use --save-output FILE to keep it)")
    return in_dev, None, out_dev


def _save(path: str, chunks: list[np.ndarray], rate: int) -> None:
    import soundfile as sf

    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    if Path(path).suffix.lower() == ".wav":  # float WAV: exactly what the codec saw / made
        sf.write(path, audio, rate, subtype="FLOAT")
    else:
        from ..audio import save_audio

        save_audio(path, audio, rate)


def _budget_lines(stats: dict[str, Any]) -> list[str]:
    """Where the end-to-end latency goes (measured parts, see LiveEngine.latency_budget)."""
    budget = stats.get("latency_budget_ms") or {}
    parts = [(k, v) for k, v in budget.items() if v is not None]
    if not parts:
        return []
    lines = ["  latency budget (measured; median / mean ms):"]
    for k, v in parts:
        lines.append(f"    {BUDGET_PARTS[k]:<72} {v['median']:6.1f} / {v['mean']:6.1f}")
    total = sum(v["mean"] for _, v in parts)
    lat = stats["latency_ms"]
    lines.append(f"    {'sum of the parts (mean) | end-to-end mean':<72} {total:6.1f} | "
                 f"{lat['mean']:.1f}")
    return lines


def _summary(stats: dict[str, Any]) -> str:
    lat = stats["latency_ms"]
    e2e = ("not measured (nothing played)" if lat["median"] is None else
           f"median {lat['median']:.1f} ms (p95 {lat['p95']:.1f}, min {lat['min']:.1f}, "
           f"max {lat['max']:.1f}; {lat['count']} measurements)")
    rtf = stats["real_time_factor"]
    lines = [
        f"live: {stats['elapsed_s']:.1f} s, {stats['backend']} backend, "
        f"{stats['bitrate_kbps']:.2f} kbps (n_q {stats['n_q']}), model {stats['sample_rate']} Hz,"
        f" devices {stats['input_rate']} Hz in / {stats['output_rate']} Hz out",
        f"  algorithmic latency: {stats['algorithmic_latency_ms']:.1f} ms",
        f"  end-to-end latency:  {e2e}",
        *_budget_lines(stats),
        f"  compute: {stats['compute_ms_per_frame']:.3f} ms per frame (max call "
        f"{stats['compute_max_ms']:.1f} ms), real-time factor "
        + ("--" if rtf is None else f"{rtf:.3f}"),
        f"  frames: {stats['frames_sent']} sent, {stats['frames_played']} decoded, "
        f"{stats['frames_concealed']} concealed",
        f"  underruns: {stats['underruns']} ({stats['underrun_ms']:.0f} ms of silence), "
        f"overruns: {stats['overruns']} ({stats['input_blocks_dropped']} input blocks, "
        f"{stats['output_ms_dropped']:.0f} ms of output dropped), device xruns: "
        f"{stats['device_input_overflows']} in / {stats['device_output_underflows']} out",
    ]
    net = stats["network"]
    if net["loss"] > 0 or net["jitter_ms"] > 0:
        lines.append(f"  network: loss {net['loss']:.0%}, jitter {net['jitter_ms']:.0f} ms, "
                     f"jitter buffer {net['playout_delay_ms']:.0f} ms: {net['sent']} sent, "
                     f"{net['dropped']} lost, {net['late']} late, {net['concealed']} concealed")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the live round trip until ``--duration``, end of ``--input-file`` or Ctrl-C."""
    if args.list_devices:
        print(list_devices())
        return 0
    _check_args(args)
    source, in_rate, out_dev = _endpoints(args)

    backend = open_backend(getattr(args, "backend", None) or "auto", args.model, args.onnx_dir,
                           args.bitrate, args.n_q, device=getattr(args, "device", "cpu") or "cpu",
                           note=lambda m: _note(args, m), int8=bool(getattr(args, "int8", False)))
    jitter_buffer_ms = getattr(args, "jitter_buffer_ms", None)
    if jitter_buffer_ms is None:
        jitter_buffer_ms = 3.0 * args.jitter_ms
    network = NetworkSimulator(args.loss, args.jitter_ms, seed=getattr(args, "seed", 0))
    want = _wanted_rate(args, backend.sample_rate)
    if in_rate is None:  # a device: the model's rate where it takes it (no resampler here)
        in_rate = device_rate(source, "input", want)
    out_rate = device_rate(out_dev, "output", want) if out_dev else backend.sample_rate
    for what, dev, rate in (("input", source if args.input_file is None else None, in_rate),
                            ("output", out_dev, out_rate)):
        if dev is not None and want is not None and rate != want:
            _note(args, f"the {what} device does not take {want} Hz: opened at its default "
                        f"{rate} Hz (resampled here)")
    engine = LiveEngine(backend, in_rate, out_rate,
                        block_ms=args.block_ms, network=network,
                        playout_delay_ms=jitter_buffer_ms,
                        resample_quality=getattr(args, "resample_quality", None) or "LQ",
                        prefill_ms=getattr(args, "prefill_ms", None),
                        keep_input=args.save_input is not None,
                        keep_output=args.save_output is not None)

    file_mode = args.input_file is not None
    uses_devices = not file_mode or out_dev is not None
    pa_errors = (import_sounddevice().PortAudioError,) if uses_devices else ()
    try:
        inp = FileInput(engine, source) if file_mode else DeviceInput(engine, source)
        out = DeviceOutput(engine, out_dev) if out_dev is not None else NullOutput(engine)
    except pa_errors as e:
        raise AudioUnavailable(f"cannot open the audio device: {e}") from None

    src = f"file {args.input_file}" if file_mode else f"input '{source['name']}'"
    dst = f"output '{out_dev['name']}'" if out_dev is not None else "no output device"
    _note(args, f"{backend.describe()}, {backend.bitrate_kbps:.2f} kbps; {src} "
                f"({engine.in_rate} Hz) -> codec ({backend.sample_rate} Hz) -> {dst} "
                f"({engine.out_rate} Hz)")
    tty = sys.stderr.isatty()
    interrupted = False
    # The audio callbacks are Python threads: let them take the GIL from the worker within
    # 1 ms (the default 5 ms is a whole block, and a late callback is a device xrun).
    switch = sys.getswitchinterval()
    sys.setswitchinterval(min(switch, 0.001))
    engine.start()
    started: list[Any] = []
    try:
        for endpoint in (out, inp):
            try:
                endpoint.start()
            except pa_errors as e:
                raise AudioUnavailable(f"cannot start the audio stream: {e}") from None
            started.append(endpoint)
        _note(args, "running" + ("" if args.duration or file_mode else " (Ctrl-C to stop)"))
        t0 = time.perf_counter()
        next_status = t0 + (0.5 if tty else 2.0)
        while True:
            time.sleep(0.02)
            now = time.perf_counter()
            for part in (engine, inp, out):
                if getattr(part, "error", None) is not None:
                    raise part.error  # type: ignore[misc]
            if args.duration is not None and now - t0 >= args.duration:
                break
            if engine.finished:
                break
            if now >= next_status and not args.quiet:
                line = engine.status_line()
                if tty:
                    print("\r" + line[:200].ljust(120), end="", file=sys.stderr, flush=True)
                else:
                    print(f"live: {line}", file=sys.stderr, flush=True)
                next_status = now + (0.5 if tty else 2.0)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        for endpoint in reversed(started):
            endpoint.stop()
        engine.stop()
        sys.setswitchinterval(switch)
        if tty and not args.quiet:
            print(file=sys.stderr)

    if args.save_input:
        _save(args.save_input, engine.saved_input, backend.sample_rate)
        _note(args, f"wrote {args.save_input} (what the encoder received, "
                    f"{backend.sample_rate} Hz)")
    if args.save_output:
        _save(args.save_output, engine.saved_output, backend.sample_rate)
        _note(args, f"wrote {args.save_output} (what the decoder produced, "
                    f"{backend.sample_rate} Hz)")
    stats = engine.stats()
    stats["interrupted"] = interrupted
    if getattr(args, "stats_json", None):
        Path(args.stats_json).write_text(json.dumps(stats, indent=2) + "\n")
    print(_summary(stats), flush=True)
    return 0
