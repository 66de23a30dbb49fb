"""The int8 variant of the step graphs and its accuracy contract.

:func:`quantize_int8` turns a float step graph into one whose ``MatMul`` weights are int8
(weight-only: symmetric, one scale per 32 weights of an output channel; ONNX Runtime runs them
as ``MatMulNBits``, its GEMV kernel for M = 1). At batch 1 a step is bound by reading the
weights, so a quarter of the bytes is most of the gain; activations stay float32, which keeps
the error far below that of per-call activation quantization (``quantize_dynamic``: PESQ-WB
drop 0.06 and 19 % code agreement on the default model, against 0.005 and 51 % here).

:func:`add_int8_variant` writes ``encoder_step.int8.onnx`` / ``decoder_step.int8.onnx`` next to
a float export and keeps them only if they meet the contract (:data:`PESQ_TOLERANCE`): on real
speech, streamed through both variants 20 ms at a time, the int8 round trip's mean PESQ-WB is
within 0.05 of the float round trip's. Code agreement (int8 encoder vs float encoder, all
stages and stage 0) is reported alongside. The sidecar records the measurement; a runtime opts
in with ``OnnxCodec(dir, precision="int8")`` (an export whose variant failed has no int8 files).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..bundled import SIDECAR
from ..runtime.onnx_codec import file_sha256
from .passes import inline_stored_half, store_exact_half

#: Largest drop of mean PESQ-WB (int8 round trip vs float round trip) the int8 variant may have.
PESQ_TOLERANCE = 0.05
#: Weights per int8 scale (per output channel, along the input axis).
INT8_BLOCK = 32
#: Step graphs that get an int8 variant.
INT8_GRAPHS = ("encoder_step", "decoder_step")
#: Speech for the contract: ``DWANCODEC_VAL_DIR``, else this folder if it exists (repo-relative).
DEFAULT_VAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "val-16k"


def quantize_int8(src: Path, dst: Path, block_size: int = INT8_BLOCK) -> dict[str, int]:
    """Write the int8 weight-only variant of graph ``src`` to ``dst``.

    Every ``MatMul`` with a constant learned weight becomes ``MatMulNBits`` (8 bits,
    symmetric, one scale per ``block_size`` weights of an output channel); the synthesis
    basis of the head stays float32; activations stay float32, products accumulate in float32
    (``accuracy_level`` 4 lets ONNX Runtime use int8 dot products where the CPU has them).
    Returns how many nodes were quantized, by op type (``float_basis``: kept float).
    """
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    model = onnx.load(str(src))
    inline_stored_half(model)  # the quantizer looks for weights among the initializers
    # A fixed synthesis transform (the ISTFT / IMDCT head's basis, a buffer named
    # ``...head.basis``) stays float32: its int8 rounding is noise added to every output
    # sample. On dwancodec-16k@84c91ed9 the decoder's PESQ-WB drop was 0.065 with it
    # quantized and -0.003 without (8 val-16k clips, the contract below).
    fixed = [n.name for n in model.graph.node
             if n.op_type == "MatMul" and any(i.endswith(".basis") for i in n.input)]
    quantizer = MatMulNBitsQuantizer(model, bits=8, block_size=block_size, is_symmetric=True,
                                     accuracy_level=4, nodes_to_exclude=fixed)
    with _quiet_logs():
        quantizer.process()
    out = quantizer.model.model
    store_exact_half(out)  # the weights left in float32 (convs, norms, tables): as the float file
    onnx.save(out, str(dst))
    counts: dict[str, int] = {"float_basis": len(fixed)} if fixed else {}
    for n in out.graph.node:
        if n.op_type in ("MatMulNBits", "DynamicQuantizeMatMul", "MatMulInteger"):
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


@contextlib.contextmanager
def _quiet_logs() -> Iterator[None]:
    """The quantizer logs a line per node it skips; keep warnings and worse only."""
    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.setLevel(level)


def speech_clips(data_dir: Path | None = None, max_clips: int = 8) -> list[Path]:
    """Speech files of the validation set (``speech-*`` folders), sorted; at most ``max_clips``."""
    root = Path(data_dir or os.environ.get("DWANCODEC_VAL_DIR") or DEFAULT_VAL_DIR)
    if not root.is_dir():
        return []
    files = sorted(p for p in root.glob("speech-*/**/*")
                   if p.suffix.lower() in (".flac", ".wav"))
    return files[:max_clips]


def int8_contract(directory: Path, clips: list[Path], seconds: float = 8.0) -> dict[str, Any]:
    """PESQ-WB of the float and the int8 streaming round trip on ``clips`` + code agreement.

    Both run the step graphs 20 ms per call (the runtime's streaming sessions). PESQ compares
    the input with the decoded audio advanced by the model's latency.
    """
    from pesq import pesq

    from ..audio import load_audio
    from ..runtime.onnx_codec import OnnxCodec

    f32 = OnnxCodec(directory, use_full_graphs=False, blocks=False)  # the step graphs
    q8 = OnnxCodec(directory, use_full_graphs=False, precision="int8")
    rate, lat = f32.sample_rate, f32.latency_samples
    scores: dict[str, list[float]] = {"float32": [], "int8": []}
    agree, total, agree0, total0 = 0, 0, 0, 0
    for clip in clips:
        x, _ = load_audio(clip, rate)
        x = np.asarray(x, np.float32)[: int(seconds * rate)]
        c32, c8 = f32.encode(x), q8.encode(x)
        agree += int((c32 == c8).sum())
        total += c32.size
        agree0 += int((c32[:, 0] == c8[:, 0]).sum())
        total0 += c32[:, 0].size
        for name, codec, codes in (("float32", f32, c32), ("int8", q8, c8)):
            y = codec.decode(codes)[0, lat:lat + len(x)]
            scores[name].append(float(pesq(rate, x[: len(y)], y, "wb")))
    mean = {k: float(np.mean(v)) for k, v in scores.items()}
    drop = mean["float32"] - mean["int8"]
    return {"clips": [c.name for c in clips], "seconds_per_clip": seconds,
            "pesq_wb_float32": round(mean["float32"], 4), "pesq_wb_int8": round(mean["int8"], 4),
            "pesq_wb_drop": round(drop, 4), "tolerance": PESQ_TOLERANCE,
            "code_agreement": round(agree / max(total, 1), 5),
            "code_agreement_stage0": round(agree0 / max(total0, 1), 5),
            "passed": bool(drop <= PESQ_TOLERANCE)}


def _drop_int8(meta: dict[str, Any], directory: Path) -> None:
    """Remove the int8 files of every step graph, their sidecar entries and their digests."""
    for name in INT8_GRAPHS:
        g = meta["graphs"][name]
        file = g.pop("int8", {}).get("file")
        for f in [f for f in g.get("sha256", {}) if f == file or ".int8." in f]:
            del g["sha256"][f]
        if file:
            (directory / file).unlink(missing_ok=True)


def add_int8_variant(directory: str | Path, data_dir: str | Path | None = None,
                     max_clips: int = 8, log: Callable[[str], None] | None = None
                     ) -> dict[str, Any]:
    """Quantize the step graphs of an export, check the contract, keep the files only if met.

    Tries int8 encoder + decoder, then the decoder alone (the encoder's codes are the more
    sensitive half). Updates the sidecar in ``directory``: ``graphs.<name>.int8`` (file and
    quantized node counts) when kept, and ``int8`` (the last contract measurement) either way.
    """
    say = log or (lambda _msg: None)
    d = Path(directory)
    meta = json.loads((d / SIDECAR).read_text())
    clips = speech_clips(Path(data_dir) if data_dir else None, max_clips)
    if not clips:
        report: dict[str, Any] = {"passed": False, "reason": "no speech clips for the contract "
                                  "(set DWANCODEC_VAL_DIR or pass the data folder)"}
        meta["int8"] = report
        (d / SIDECAR).write_text(json.dumps(meta, indent=2) + "\n")
        say("int8 variant not made: " + report["reason"])
        return report
    report = {}
    for names in (INT8_GRAPHS, ("decoder_step",)):  # all step graphs, else the decoder only
        _drop_int8(meta, d)  # a failed try's files and their digests
        for name in names:
            g = meta["graphs"][name]
            file = g["file"].replace(".onnx", ".int8.onnx")
            g["int8"] = {"file": file, "quantized_nodes": quantize_int8(d / g["file"], d / file)}
            # the runtime opens only files whose digest the sidecar records: record the files
            # the contract is about to measure, so that what it measured is what ships
            if "sha256" in g:
                g["sha256"][file] = file_sha256(d / file)
        meta.pop("int8", None)
        (d / SIDECAR).write_text(json.dumps(meta, indent=2) + "\n")
        report = {"graphs": list(names), **int8_contract(d, clips)}
        say(f"int8 {'+'.join(names)}: PESQ-WB {report['pesq_wb_float32']:.3f} (float) vs "
            f"{report['pesq_wb_int8']:.3f} (int8) on {len(clips)} clips, code agreement "
            f"{report['code_agreement']:.1%}: {'kept' if report['passed'] else 'not kept'}")
        if report["passed"]:
            break
    meta["int8"] = report
    if not report["passed"]:
        _drop_int8(meta, d)
    (d / SIDECAR).write_text(json.dumps(meta, indent=2) + "\n")
    return report
