"""The int8 variant of the step graphs and its accuracy contract.

:func:`quantize_int8` turns a float step graph into one whose ``MatMul``/``Gemm`` weights are
int8 (per output channel, symmetric; the ConvNeXt MLPs, :func:`mlp_matmuls`) with
activations quantized per call
(``onnxruntime.quantization.quantize_dynamic``; ONNX Runtime runs them as
``DynamicQuantizeMatMul``). At batch 1 a step is bound by reading the weights, so a quarter of
the bytes is most of the gain.

:func:`add_int8_variant` writes ``encoder_step.int8.onnx`` / ``decoder_step.int8.onnx`` next to
a float export and keeps them only if they meet the contract (:data:`PESQ_TOLERANCE`): on real
speech, streamed through both variants 20 ms at a time, the int8 round trip's mean PESQ-WB is
within 0.05 of the float round trip's. Code agreement (int8 encoder vs float encoder, all
stages) is reported alongside. The sidecar records the measurement; a runtime opts in with
``OnnxCodec(dir, precision="int8")`` (an export whose variant failed has no int8 files).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .passes import inline_stored_half

#: Largest drop of mean PESQ-WB (int8 round trip vs float round trip) the int8 variant may have.
PESQ_TOLERANCE = 0.05
#: Step graphs that get an int8 variant.
INT8_GRAPHS = ("encoder_step", "decoder_step")
#: Speech for the contract: ``DWANCODEC_VAL_DIR``, else this folder if it exists (repo-relative).
DEFAULT_VAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "val-16k"
SIDECAR = "dwancodec_onnx.json"


def quantize_int8(src: Path, dst: Path) -> dict[str, int]:
    """Write the int8 (dynamic, per-channel) variant of graph ``src`` to ``dst``.

    Returns how many nodes were quantized, by op type.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(src))
    inline_stored_half(model)  # the quantizer looks for weights among the initializers
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "float.onnx"
        onnx.save(model, str(plain))
        quantize_dynamic(str(plain), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"],
                         nodes_to_quantize=mlp_matmuls(model))
    out = onnx.load(str(dst))
    counts: dict[str, int] = {}
    for n in out.graph.node:
        if "Integer" in n.op_type or "Quant" in n.op_type:
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts


def mlp_matmuls(model: Any) -> list[str]:
    """Names of the ConvNeXt MLP matmuls: ``MatMul`` nodes fed by a ``LayerNormalization``
    (but the graph's last one, which feeds the output head / projection) or by a ``Gelu``.

    These hold most of the weights; the head (spectrum, ISTFT basis), the projections into the
    quantizer and the convs stay float32: their inputs have a dynamic range that a per-call
    8-bit activation scale resolves poorly.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    norms = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    last_norm = norms[-1].name if norms else None
    names = []
    for n in model.graph.node:
        src = producer.get(n.input[0]) if n.op_type == "MatMul" else None
        if src is not None and (src.op_type == "Gelu" or (
                src.op_type == "LayerNormalization" and src.name != last_norm)):
            names.append(n.name)
    return names


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

    f32 = OnnxCodec(directory, use_full_graphs=False)
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
        for name in INT8_GRAPHS:
            (d / meta["graphs"][name].pop("int8", {}).get("file", "-")).unlink(missing_ok=True)
        for name in names:
            g = meta["graphs"][name]
            file = g["file"].replace(".onnx", ".int8.onnx")
            g["int8"] = {"file": file, "quantized_nodes": quantize_int8(d / g["file"], d / file)}
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
        for name in INT8_GRAPHS:
            (d / meta["graphs"][name].pop("int8", {}).get("file", "-")).unlink(missing_ok=True)
    (d / SIDECAR).write_text(json.dumps(meta, indent=2) + "\n")
    return report
