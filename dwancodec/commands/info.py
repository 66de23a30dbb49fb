"""``dwancodec info``: what a ``.dwc`` file, a model bundle or a named config holds.

A model is described by the torch model where torch is installed, else from its exported graphs'
sidecar and its weights file's header (:func:`model_summary_without_torch`): the same fields,
so ``info --model`` works on a torch-free install too."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from ..engine import torch_missing
from .common import load_model
from .files import read_dwc_input


def _config_summary(name: str) -> dict[str, Any]:
    from ..config import get_config
    from ..model import Codec

    codec = Codec(get_config(name))
    d = codec.describe()
    d["config"] = name
    return d


def model_summary_without_torch(model: str | None) -> dict[str, Any]:
    """:meth:`Codec.describe` and the identities of ``model`` (a bundle folder, ``None``: the
    shipped default) without torch: from the sidecar of its graphs (``MODEL/onnx/``), the
    parameter counts from ``model.safetensors``'s header (FSQ and LFQ models, whose weights
    file holds parameters only). ``NeedsTorch`` where the model has no graphs."""
    from .. import lengths
    from ..bitstream.entropy import find_tables
    from ..engine import NeedsTorch, check_model_path, model_graphs
    from ..runtime.onnx_codec import load_sidecar

    check_model_path(model)
    graphs = model_graphs(model)
    if graphs is None:
        raise NeedsTorch(f"{'the default model' if model is None else model} has no ONNX "
                         "graphs (MODEL/onnx/) to describe it from, and torch is not "
                         "installed: pip install torch", name="torch")
    meta = load_sidecar(graphs)
    m, cfg = meta["model"], meta["model"]["config"]
    dec, q = cfg["decoder"], cfg["quantizer"]
    hop, rate = int(meta["hop_length"]), int(meta["sample_rate"])
    n_cb, k = int(meta["num_codebooks"]), int(meta["codebook_size"])
    d: dict[str, Any] = {
        "name": m["name"], "sample_rate": rate, "hop_length": hop,
        "frame_rate": rate / hop, "latency_samples": int(meta["latency_samples"]),
        "latency_ms": float(meta["latency_ms"]),
        "blind_share": round(lengths.blind_share(
            hop, dec["n_fft"], dec["istft_hop"],
            window="sine" if dec["head"] == "mdct" else "hann"), 4),
        "head": f"{dec['head']}, window {dec['n_fft']}, hop {dec['istft_hop']}"
                + (f", {dec['excitation']} excitation"
                   if dec.get("excitation", "none") != "none" else ""),
        "num_codebooks": n_cb, "codebook_size": k,
        "bitrates_kbps": [round(lengths.bitrate(rate / hop, n, k) / 1000, 3)
                          for n in range(1, n_cb + 1)],
        "identity": m["identity"], "codes": m.get("codes", ""),
        "compatible": list(m.get("compatible", [])), "described_from": str(graphs),
    }
    weights = (graphs.parent if model is None or graphs != Path(model) else graphs) \
        / "model.safetensors"
    if q["kind"] in ("fsq", "lfq") and weights.is_file():
        from safetensors import safe_open

        params = {"encoder": 0, "quantizer": 0, "decoder": 0}
        with safe_open(str(weights), framework="numpy") as f:
            for name in f.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
                part = name.partition(".")[0]
                if part in params:
                    params[part] += math.prod(f.get_slice(name).get_shape())
        d["params"] = params
    t = find_tables(graphs)
    d["entropy_tables"] = None if t is None else {"identity": t.identity(), "codes": t.codes}
    return d


def _print_model(d: dict[str, Any]) -> None:
    params = d.get("params")
    rates = ", ".join(f"{r:g}" for r in d["bitrates_kbps"])
    for k, v in [
        ("name", d["name"]), ("identity", d.get("identity", "(a config only: no weights)")),
        *([("codes", f"{d['codes']} (what the codes mean: encoder and quantizer)")]
          if "codes" in d else []),
        *([("decodes", "format-1 .dwc files of " + ", ".join(d["compatible"]))]
          if d.get("compatible") else []),
        *([("entropy", _entropy_line(d))] if "entropy_tables" in d else []),
        ("sample rate", f"{d['sample_rate']} Hz"),
        ("hop", f"{d['hop_length']} samples ({d['frame_rate']:g} frames/s)"),
        ("latency", f"{d['latency_ms']:.1f} ms algorithmic ({d['latency_samples']} samples)"),
        ("head", f"{d['head']}; blind share {100 * d['blind_share']:.1f} % (output "
                 "extrapolated beyond the input seen)"),
        ("quantizer", f"{d['num_codebooks']} stages x {d['codebook_size']} codes"),
        ("bitrates", f"{rates} kbps (n_q = 1..{d['num_codebooks']})"),
        ("params", f"{sum(params.values()) / 1e6:.3f} M (encoder {params['encoder'] / 1e6:.3f} "
                   f"M, quantizer {params['quantizer'] / 1e6:.3f} M, decoder "
                   f"{params['decoder'] / 1e6:.3f} M)" if params else
                   "(not counted without torch for this quantizer)"),
        *([("described", f"from {d['described_from']} (torch is not installed)")]
          if "described_from" in d else []),
    ]:
        print(f"{k + ':':13s} {v}")


def _entropy_line(d: dict[str, Any]) -> str:
    t = d["entropy_tables"]
    if t is None:
        return "no tables: files are packed at the fixed rate (dwancodec fit-entropy)"
    fit = ("" if t["codes"] == d.get("codes") else
           f"; fitted for codes {t['codes'] or '(unknown)'}, not this model's: lossless, "
           "but refit them (dwancodec fit-entropy)")
    return f"tables {t['identity']}: files are entropy-coded (.dwc format 3){fit}"


def run_info(args: argparse.Namespace) -> int:
    if args.file is None and args.model is None and args.config is None:
        from ..config import named_configs

        rows = [_config_summary(n) for n in named_configs()]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print(f"{'config':11s} {'rate':>6s} {'hop':>4s} {'latency':>8s} {'blind':>6s} "
              f"{'params':>8s} {'stages':>6s} {'kbps per stage':>14s} {'max kbps':>8s}")
        for d in rows:
            print(f"{d['config']:11s} {d['sample_rate']:6d} {d['hop_length']:4d} "
                  f"{d['latency_ms']:6.1f}ms {100 * d['blind_share']:5.1f}% "
                  f"{sum(d['params'].values()) / 1e6:7.3f}M "
                  f"{d['num_codebooks']:6d} {d['bitrates_kbps'][0]:14.3f} "
                  f"{d['bitrates_kbps'][-1]:8.3f}")
        return 0
    out: dict[str, Any] = {}
    if args.file is not None and Path(args.file).is_dir() and args.model is None:
        # `dwancodec info path/to/model` is what users type for a bundle: describe it as
        # --model would (a folder that is not a bundle gets load_model's error).
        args.model, args.file = args.file, None
    if args.file is not None:
        dwc = read_dwc_input(args.file)  # verifies checksums (and every frame, fixed rate)
        d = dwc.header.describe()
        size = dwc.header.file_size
        d["file_bitrate_bps"] = size * 8 / d["duration_s"] if d["duration_s"] else 0.0
        d["checksum"] = "ok"
        # format 3: verified where its tables were found (shipped ones), else with --model below
        d["frames_valid"] = not dwc.header.entropy or dwc.tables is not None
        out["file"] = d
    engine = None
    if args.model is not None and torch_missing():
        from ..runtime import OnnxCodec

        d = model_summary_without_torch(args.model)
        out["model"] = d
        engine = OnnxCodec(d["described_from"])  # checks files against its graphs' identity
        codec = engine
    elif args.model is not None:
        from ..streaming.engine import TorchEngine

        codec = load_model(args.model)
        engine = TorchEngine(codec)  # hashes the weights once, for the summary and the check
        d = codec.describe()
        d["identity"] = engine.identity
        d["codes"] = engine.codes_identity
        d["compatible"] = list(engine.compatible_identities)
        t = codec.entropy_tables
        d["entropy_tables"] = None if t is None else {"identity": t.identity(),
                                                      "codes": t.codes}
        out["model"] = d
    if args.config is not None:
        out["config"] = _config_summary(args.config)
    if engine is not None and args.file is not None:
        exact = dwc.header.check_model(engine)
        dwc.with_tables(codec.entropy_tables)     # format 3: every block decoded and checked
        out["file"]["model_matches"] = exact      # the model that wrote it
        out["file"]["model_decodes"] = True       # or another with the same codes
        out["file"]["frames_valid"] = True
    if args.json:
        print(json.dumps(out if len(out) > 1 else next(iter(out.values())), indent=2))
        return 0
    if "file" in out:
        d = out["file"]
        print(f"{args.file}: dwancodec bitstream, format version {d['format_version']}")
        for k, v in [
            ("model", d["model"] + ("  (matches --model)" if d.get("model_matches") else
                                    "  (--model is another model with the same codes: it "
                                    "decodes this file)" if d.get("model_decodes") else "")),
            ("codes", d["codes"] or "(format 1: not recorded)"),
            ("sample rate", f"{d['sample_rate']} Hz (source {d['source_rate']} Hz)"),
            ("frames", f"{d['num_frames']} x {d['hop_length']} samples "
                       f"({d['frame_rate']:g} frames/s)"),
            ("duration", f"{d['duration_s']:.3f} s ({d['length_samples']} samples)"),
            ("quantizer", f"{d['quantizer']} {tuple(d['levels']) or ''} "
                          f"K={d['codebook_size']}, n_q {d['n_q']} of {d['num_codebooks']}"),
            ("bitrate", f"{d['bitrate_bps'] / 1000:.3f} kbps (codes); " + (
                f"entropy-coded {d['packed_bitrate_bps'] / 1000:.3f} kbps (tables "
                f"{d['entropy_tables']}, blocks of {d['entropy_block_frames']} frames)"
                if d["entropy_tables"] else
                f"packed {d['frame_bits']} bits/frame = {d['packed_bitrate_bps'] / 1000:.3f} "
                "kbps") + f"; file {d['file_bitrate_bps'] / 1000:.3f} kbps"),
            ("size", f"{d['file_bytes']} bytes (header {d['header_bytes']}, payload "
                     f"{d['payload_bytes']}, checksum 4)"),
            ("checksum", f"{d['checksum']} (header and payload CRC32; " + (
                "every frame holds a valid code combination)" if d["frames_valid"] else
                "its frames are checked when decoded, or here with --model)")),
        ]:
            print(f"  {k + ':':12s} {v}")
    if "model" in out:
        print(f"model bundle {args.model}:")
        _print_model(out["model"])
    if "config" in out:
        print(f"config {args.config}:")
        _print_model(out["config"])
    return 0
