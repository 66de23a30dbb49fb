"""``dwancodec demo``: the bundled clip (or a file) streamed at every bitrate, scored, and
checked against the other engine."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from ..audio import AudioError, AudioWriter, Notify, stream_audio
from ..bitstream import DwcWriter, Header
from ..bundled import demo_clip
from ..engine import Engine, StreamingDecoder, StreamingEncoder, open_engine
from .common import (
    BLOCK_SECONDS,
    as_numpy,
    available_scores,
    compute_scores,
    engine_from_args,
    engine_label,
    engine_threads,
    fmt_score,
    missing_scores_note,
    notifier,
)
from .roundtrip import stream_roundtrip


def run_demo(args: argparse.Namespace) -> int:
    note = notifier(args)
    source = Path(args.input) if args.input else demo_clip()
    codec = engine_from_args(args, note)
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--out {out_dir} exists and is not a folder")
    audio = np.concatenate([b for b, _ in stream_audio(source, codec.sample_rate, BLOCK_SECONDS,
                                                      note)] or [np.zeros(0, np.float32)])
    if audio.size == 0:
        raise AudioError(f"{source} contains no audio samples")
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = source.stem
    with AudioWriter(out_dir / f"{stem}_original.wav", codec.sample_rate) as w:
        w.write(audio)
    sr = codec.sample_rate
    chunk = codec.hop_length * max(1, round(0.02 * sr / codec.hop_length))  # ~20 ms
    print(f"dwancodec demo: {source.name} ({audio.size / sr:.2f} s) through {codec.identity} "
          f"on the {engine_label(codec)} engine, streamed in {1000 * chunk / sr:.0f} ms chunks")
    scored = available_scores()
    missing_scores_note(note)
    print(f"{'n_q':>3s} {'kbps':>6s} {'coded':>6s} {'.dwc bytes':>10s} {'latency':>8s} {'RTF':>7s} "
          f"{'CPU RTF':>7s} " + ("PESQ-WB " if "pesq_wb" in scored else "")
          + ("STOI  " if "stoi" in scored else "") + f"{'SI-SDR':>7s}  file")
    codes: list[np.ndarray] = []
    for n_q in range(1, codec.encoder_n_q + 1):
        name = f"{stem}_{codec.bitrate(n_q) / 1000:.2f}kbps_nq{n_q}"
        decoded: list[np.ndarray] = []
        codes = []
        r = stream_roundtrip(codec, [audio], n_q, chunk, on_audio=decoded.append,
                             on_codes=codes.append)
        y = np.concatenate(decoded)
        with AudioWriter(out_dir / f"{name}.wav", sr) as w:
            w.write(y)
        with (out_dir / f"{name}.dwc").open("wb") as f:  # as `dwancodec encode` writes it
            dw = DwcWriter(f, *Header.for_file(codec, n_q, source_rate=sr))
            for c in codes:
                dw.write(c)
            coded = dw.finish(audio.size).packed_bitrate  # entropy-coded: the file's rate
        size = (out_dir / f"{name}.dwc").stat().st_size
        s = compute_scores(audio, y, sr, note if n_q == 1 else (lambda m: None))
        cols = (fmt_score(s["pesq_wb"], ".3f", 7) + " " if "pesq_wb" in s else "") + \
            (fmt_score(s["stoi"], ".3f", 5) + " " if "stoi" in s else "")
        print(f"{n_q:3d} {r.bitrate_bps / 1000:6.2f} {coded / 1000:6.2f} {size:10d} "
              f"{r.latency_ms:6.1f}ms "
              f"{r.rtf:7.4f} {r.cpu_rtf:7.4f} {cols}{fmt_score(s['si_sdr'], '.2f', 7)}  "
              f"{out_dir / name}.wav")
    print(f"decoded files and .dwc bitstreams are in {out_dir}/ (kbps: the codes at the fixed "
          "rate; coded: the .dwc payload, entropy-coded where the model has tables; RTF: "
          "wall-clock compute time / "
          f"audio time with {engine_threads(codec, args)} {engine_label(codec)} thread(s), "
          "< 1 is faster than real time; CPU RTF: the same with process CPU time; latency: "
          "algorithmic)")
    # the last loop pass streamed every stage: the other engine on the same clip, same codes?
    _demo_other_line(codec, args, audio, chunk, np.concatenate(codes, axis=-1), note)
    return 0


def _demo_other_line(engine: Engine, args: argparse.Namespace, audio: np.ndarray, chunk: int,
                     ref_codes: np.ndarray, note: Notify) -> None:
    """The same clip through the other engine (torch after ONNX Runtime, or the reverse), all
    stages: its speed, and how many codes agree with ``ref_codes`` (``[N, frames]``, the
    stream of every stage on ``engine``). A note says why when it cannot run."""
    other = "torch" if engine.name == "onnx" else "onnx"
    threads = engine_threads(engine, args)
    try:
        alt, _ = open_engine(other, args.model, None, getattr(args, "device", "cpu") or "cpu",
                             threads)
    except (ValueError, FileNotFoundError, ImportError) as e:
        note(f"the {'torch' if other == 'torch' else 'ONNX Runtime'} path was not run: {e}")
        return
    if alt.identity != engine.identity:
        note(f"the {engine_label(alt)} path was not run: it holds {alt.identity}, not "
             f"{engine.identity}")
        return
    enc, dec = StreamingEncoder(alt, 1), StreamingDecoder(alt, 1)
    codes: list[np.ndarray] = []
    t0 = time.perf_counter()
    for i in range(0, audio.size, chunk):
        c = as_numpy(enc.push(audio[None, i:i + chunk]))
        codes.append(c)
        dec.push(c)
    codes.append(as_numpy(enc.flush()))
    rtf = (time.perf_counter() - t0) / (audio.size / engine.sample_rate)
    got = np.concatenate(codes, -1)[0]
    frames = min(got.shape[-1], ref_codes.shape[-1])
    same = float((got[:, :frames] == ref_codes[:, :frames]).mean()) if frames else 1.0
    label = "ONNX Runtime path (torch-free" if other == "onnx" else "torch path (--backend torch"
    print(f"{label}, {engine_threads(alt, args)} thread(s), all {alt.encoder_n_q} stages, "
          f"{1000 * chunk / engine.sample_rate:.0f} ms chunks): RTF {rtf:.4f} "
          f"({1 / max(rtf, 1e-9):.0f}x faster than real time); {100 * same:.2f} % of codes "
          f"equal to the {engine_label(engine)} engine's")
