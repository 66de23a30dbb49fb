"""Export the streaming step functions of a :class:`~dwancodec.model.Codec` to ONNX.

What gets exported is the tested step, traced through two thin wrappers (:mod:`.graphs`) that only
map positional tensors to the flat state dict:

- :class:`EncoderStepGraph`: ``codec.encoder.step`` followed by ``codec.quantizer.encode`` (the
  two halves of ``Codec.encoder_step``, called separately so that the latents can be a graph
  output for parity checks). Inputs ``audio [B, 1, k * hop]`` float32 and
  ``state_in.<key>``; outputs ``codes [B, n_q, k]`` int64, ``latents [B, D, k]`` float32 and
  ``state_out.<key>``.
- :class:`DecoderStepGraph`: the residual dequantizer followed by ``codec.decoder.step`` (the two
  halves of ``Codec.decoder_step``). An ONNX graph has a fixed number of codebooks, so the graph
  takes all ``N`` stages of codes plus an ``n_q`` scalar and drops the contribution of stages
  ``>= n_q`` (multiplied by an exact 0.0): for ``n_q = k`` it computes exactly
  ``codec.decoder_step(codes[:, :k])``. Inputs ``codes [B, N, k]`` int64, ``n_q []`` int64 and
  ``state_in.<key>``; outputs ``audio [B, 1, k * hop]`` and ``state_out.<key>``.

``<key>`` is a key of ``codec.encoder_state_spec()`` / ``codec.decoder_state_spec()`` (e.g.
``state_in.encoder.layers.1.dwconv.cache``). The batch axis is dynamic; the step graphs have a
fixed number of frames per call, the optional full-sequence graphs (``*_full.onnx``) a dynamic
one (they are the same step function, so they also carry state). A JSON sidecar
(:data:`SIDECAR`) describes everything a runtime needs without torch.

``block_frames = N`` adds ``OUT/blocks/`` (:data:`BLOCKS`): a complete second export of the same
model whose step takes ``N`` frames per call (float32 only, no int8), with its own sidecar, for
coding whole signals (``.dwc`` files, ``OnnxCodec.encode``); the runtime checks that it names
the same model and has the same state (``dwancodec.runtime.whole_signal_graphs``). A one-frame
call per 20 ms spends most of its time in per-call overhead, which long files do not need.

Every export is checked with ``onnx.checker`` and against the torch step on random input before
anything is written (a mismatch raises ``RuntimeError``).

The work is split by job: :mod:`.prepare` (frozen copy, table decode), :mod:`.graphs` (the
wrappers), :mod:`.passes` (ONNX graph rewrites), :mod:`.verify` (parity against torch) and
:mod:`.timing` (sessions, per-call timing, offline optimization); this module drives them.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..bitstream.entropy import FILE as ENTROPY_FILE
from ..bitstream.entropy import find_tables
from ..bundled import BLOCKS, DEFAULT_BLOCK_FRAMES, SIDECAR  # noqa: F401 (re-exported)
from ..model import Codec
from ..runtime.onnx_codec import file_sha256
from ..streaming.state import StateSpec
from .graphs import (
    FOLDED_TABLE_MAX_BYTES,
    DecoderStepGraph,
    EncoderStepGraph,
    FoldedDecoderStepGraph,
    n_named,
)
from .passes import postprocess_file
from .prepare import TableDecode, prepare_for_export
from .timing import optimize_offline
from .verify import check_onnx, verify_export

FORMAT = "dwancodec-onnx"
FORMAT_VERSION = 1
ENCODER_STEP = "encoder_step.onnx"
DECODER_STEP = "decoder_step.onnx"
ENCODER_FULL = "encoder_full.onnx"
DECODER_FULL = "decoder_full.onnx"
EXPORTERS = ("dynamo", "torchscript")


@dataclass
class GraphInfo:
    """One exported graph: file name and its inputs/outputs (name, shape, dtype)."""

    file: str
    frames: int | None  # frames per call; None = dynamic
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]
    nodes: int = 0
    optimized: str | None = None  # file of the offline-optimized copy, if kept
    notes: dict[str, Any] = field(default_factory=dict)


def _io(name: str, shape: list[int | str], dtype: str) -> dict[str, Any]:
    return {"name": name, "shape": shape, "dtype": dtype}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _state_io(spec: dict[str, StateSpec], prefix: str) -> list[dict[str, Any]]:
    return [_io(f"{prefix}.{k}", ["batch", *s.shape], _dtype_name(s.dtype))
            for k, s in spec.items()]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporters' chatter (warnings, progress prints on stdout/stderr)."""
    import logging

    loggers = [logging.getLogger(n) for n in ("torch", "torch.onnx", "onnxscript", "torch.export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels, strict=True):
            lg.setLevel(lv)


def _export_graph(module: nn.Module, args: tuple[Tensor, ...], path: Path,
                  input_names: list[str], output_names: list[str], batch_axes: list[int | None],
                  frame_axes: dict[str, tuple[int, int]], opset: int, exporter: str) -> None:
    """Export ``module(*args)`` to ``path`` with a dynamic batch (and optional frame) axis.

    ``batch_axes[i]``: the batch axis of input ``i`` (None: no batch axis).
    ``frame_axes``: input name -> (axis, multiple) for a dynamic frame axis of size
    ``multiple * frames``.
    """
    if exporter == "dynamo":
        batch = torch.export.Dim("batch", min=1, max=4096)
        frames = torch.export.Dim("frames", min=1, max=1 << 20)
        shapes: list[dict[int, Any] | None] = []
        for name, axis in zip(input_names, batch_axes, strict=True):
            spec: dict[int, Any] = {} if axis is None else {axis: batch}
            if name in frame_axes:
                ax, mult = frame_axes[name]
                spec[ax] = frames * mult if mult > 1 else frames
            shapes.append(spec or None)
        named = n_named(module)
        dynamic_shapes = (*shapes[:named], tuple(shapes[named:]))
        with _quiet():
            program = torch.onnx.export(
                module, args, dynamo=True, opset_version=opset, input_names=input_names,
                output_names=output_names, dynamic_shapes=dynamic_shapes, optimize=True,
            )
            assert program is not None
            program.save(str(path), external_data=False)
    elif exporter == "torchscript":
        axes: dict[str, dict[int, str]] = {}
        for name, axis in zip(input_names, batch_axes, strict=True):
            if axis is not None:
                axes[name] = {axis: "batch"}
            if name in frame_axes:
                axes.setdefault(name, {})[frame_axes[name][0]] = "frames_in"
        for name in output_names:
            axes[name] = {0: "batch"}
        with _quiet():
            torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset,
                              input_names=input_names, output_names=output_names,
                              dynamic_axes=axes, do_constant_folding=True)
    else:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")



def _state_args(spec: dict[str, StateSpec], batch: int, gen: torch.Generator) -> list[Tensor]:
    return [0.1 * torch.randn((batch, *s.shape), generator=gen).to(s.dtype) for s in spec.values()]



@dataclass
class ExportResult:
    """Where the graphs went and what the sidecar says (``blocks``: the export in
    ``blocks/``, if made)."""

    directory: Path
    sidecar: dict[str, Any]
    blocks: ExportResult | None = None

    @property
    def files(self) -> list[Path]:
        out = [self.directory / SIDECAR]
        for g in self.sidecar["graphs"].values():
            out.append(self.directory / g["file"])
            if g.get("optimized"):
                out.append(self.directory / g["optimized"])
            if g.get("int8"):
                out.append(self.directory / g["int8"]["file"])
        return out + (self.blocks.files if self.blocks is not None else [])


def _clear_export(out: Path) -> None:
    """Remove the files an export writes (the sidecar first: a folder without one is
    incomplete), so that graphs of an earlier export do not linger; ``out/blocks/`` too, and
    that folder itself once empty. Files that are not an export's are left alone."""
    for name in (SIDECAR, ENCODER_STEP, DECODER_STEP, ENCODER_FULL, DECODER_FULL):
        (out / name).unlink(missing_ok=True)
        (out / name.replace(".onnx", ".ort.onnx")).unlink(missing_ok=True)
        (out / name.replace(".onnx", ".int8.onnx")).unlink(missing_ok=True)
    blocks = out / BLOCKS
    if blocks.is_dir() and not blocks.is_symlink():
        _clear_export(blocks)
        with contextlib.suppress(OSError):  # not empty: someone else's files stay
            blocks.rmdir()


def export_onnx(codec: Codec, out_dir: str | Path, *, frames_per_step: int = 1,
                n_q: int | None = None, full_sequence: bool = False, opset: int = 20,
                optimize: bool = True, exporter: str = "dynamo", verify: bool = True,
                try_offline: bool | None = None, int8: bool = False,
                int8_data: str | Path | None = None, block_frames: int | None = None,
                log: Any = None) -> ExportResult:
    """Write ``encoder_step.onnx``, ``decoder_step.onnx`` (+ ``*_full.onnx``) and the sidecar.

    ``frames_per_step``: code frames per step call (audio ``[B, 1, frames_per_step * hop]``).
    ``n_q``: stages in the encoder graph (default all; the decoder graph always takes all
    ``N`` stages plus an ``n_q`` input). ``optimize``: graph optimizations for per-frame
    latency (FSQ/LFQ decode as a table lookup, :class:`TableDecode`; single-step convs as
    matmuls, :func:`rewrite_single_step_convs`; the decoder's dequantizer stages as one
    lookup + matmul, :class:`FoldedDecoderStepGraph`), plus a trial of ONNX Runtime's offline
    optimization, kept only where it measurably helps (``try_offline``, default: as
    ``optimize``). ``verify``: compare with the torch step
    (raises ``RuntimeError`` beyond :data:`CHECK_ATOL`). ``int8``: also write the int8 step
    graphs, kept only if they meet their accuracy contract on the speech of ``int8_data``
    (:func:`dwancodec.export.quantize.add_int8_variant`). ``block_frames``: also write
    ``out_dir/blocks/``, the same export (float32, no int8, no full-sequence graphs) at
    ``block_frames`` frames per call, for coding whole signals; ``None`` (the default here;
    ``dwancodec export`` makes :data:`DEFAULT_BLOCK_FRAMES`) or a number not above
    ``frames_per_step`` writes none. Either way a ``blocks/`` of an earlier export is removed.
    ``log``: callable for progress notes.
    """
    from ..validation import check_n_q

    say = log or (lambda _msg: None)
    if isinstance(frames_per_step, bool) or not isinstance(frames_per_step, int) \
            or not 1 <= frames_per_step <= 1000:
        raise ValueError(
            f"frames_per_step must be an integer in [1, 1000], got {frames_per_step!r}"
        )
    if block_frames is not None and (isinstance(block_frames, bool) or not isinstance(
            block_frames, int) or not 1 <= block_frames <= 1000):
        raise ValueError(f"block_frames must be None or an integer in [1, 1000], got "
                         f"{block_frames!r}")
    enc_n_q = codec.num_codebooks if n_q is None else check_n_q(n_q, codec.num_codebooks)
    if not 17 <= opset <= 23:
        raise ValueError(f"opset must be in [17, 23], got {opset}")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    _clear_export(out)  # a folder without a sidecar is incomplete

    model = prepare_for_export(codec, tabulate=optimize)
    hop, k, batch = codec.hop_length, frames_per_step, 2
    enc_spec, dec_spec = model.encoder_state_spec(), model.decoder_state_spec()
    gen = torch.Generator().manual_seed(0)
    enc = EncoderStepGraph(model, enc_n_q)
    dec: DecoderStepGraph = DecoderStepGraph(model)
    if optimize and FoldedDecoderStepGraph.table_bytes(model) <= FOLDED_TABLE_MAX_BYTES:
        folded = FoldedDecoderStepGraph(model)
        dec = folded if folded.applies() else dec
    fold = isinstance(dec, FoldedDecoderStepGraph)
    enc_in = ["audio", *(f"state_in.{key}" for key in enc_spec)]
    enc_out = ["codes", "latents", *(f"state_out.{key}" for key in enc_spec)]
    dec_in = ["codes", "n_q", *(f"state_in.{key}" for key in dec_spec)]
    dec_out = ["audio", *(f"state_out.{key}" for key in dec_spec)]
    n_all = model.num_codebooks

    def enc_graph_io(frames: int | str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        samples = frames * hop if isinstance(frames, int) else f"{frames}*{hop}"
        return ([_io("audio", ["batch", 1, samples], "float32"), *_state_io(enc_spec, "state_in")],
                [_io("codes", ["batch", enc_n_q, frames], "int64"),
                 _io("latents", ["batch", model.config.latent_dim, frames], "float32"),
                 *_state_io(enc_spec, "state_out")])

    def dec_graph_io(frames: int | str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        samples = frames * hop if isinstance(frames, int) else f"{frames}*{hop}"
        return ([_io("codes", ["batch", n_all, frames], "int64"), _io("n_q", [], "int64"),
                 *_state_io(dec_spec, "state_in")],
                [_io("audio", ["batch", 1, samples], "float32"),
                 *_state_io(dec_spec, "state_out")])

    plan: list[tuple[str, nn.Module, int | None]] = [("encoder_step", enc, k),
                                                      ("decoder_step", dec, k)]
    if full_sequence:
        plan += [("encoder_full", enc, None), ("decoder_full", dec, None)]
    graphs: dict[str, dict[str, Any]] = {}
    for name, module, frames in plan:
        t0 = time.perf_counter()
        f = frames or 3  # example length for the dynamic-frames graphs
        path = out / f"{name}.onnx"
        if module is enc:
            args = (0.1 * torch.randn(batch, 1, f * hop, generator=gen),
                    *_state_args(enc_spec, batch, gen))
            names, outs = enc_in, enc_out
            batch_axes: list[int | None] = [0] * len(names)
            frame_axes = {} if frames else {"audio": (2, hop)}
            ins_info, outs_info = enc_graph_io(frames or "frames")
        else:
            args = (torch.randint(0, model.codebook_size, (batch, n_all, f), generator=gen),
                    torch.tensor(n_all, dtype=torch.int64), *_state_args(dec_spec, batch, gen))
            names, outs = dec_in, dec_out
            batch_axes = [0, None] + [0] * len(dec_spec)
            frame_axes = {} if frames else {"codes": (2, 1)}
            ins_info, outs_info = dec_graph_io(frames or "frames")
        _export_graph(module, args, path, names, outs, batch_axes, frame_axes, opset, exporter)
        notes: dict[str, Any] = dict(postprocess_file(path, rewrite=optimize))
        nodes = check_onnx(path)
        info = GraphInfo(file=path.name, frames=frames, inputs=ins_info, outputs=outs_info,
                         nodes=nodes, notes=notes)
        say(f"exported {path.name}: {nodes} nodes in {time.perf_counter() - t0:.1f} s "
            f"({exporter} exporter, opset {opset})")
        graphs[name] = info.__dict__

    sidecar = build_sidecar(codec, model, graphs, frames_per_step=k, encoder_n_q=enc_n_q,
                            opset=opset, exporter=exporter, folded_dequantizer=fold)
    if optimize if try_offline is None else try_offline:
        for name in ("encoder_step", "decoder_step"):
            res = optimize_offline(out / graphs[name]["file"])
            graphs[name]["notes"]["offline_optimization"] = res
            graphs[name]["optimized"] = res["file"]
            say(f"{name}: offline optimization {res['step_us_plain']:.0f} us -> "
                f"{res['step_us_optimized']:.0f} us per call, "
                f"{'kept' if res['kept'] else 'not kept (no measurable gain)'}")
    if verify:  # the files the runtime opens, against the codec as torch runs it
        report = verify_export(prepare_for_export(codec, tabulate=False), out, sidecar)
        sidecar["verification"] = report
        say("verified against torch: " + ", ".join(
            f"{g} max|diff| {v['max_abs_diff']:.2e}, {v['code_mismatches']} code(s) at ties"
            for g, v in report.items()))
        for g in graphs.values():  # the runtime opens a graph only if it is the verified one
            f = g.get("optimized") or g["file"]
            g["sha256"] = {f: file_sha256(out / f)}
    (out / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n")
    if int8:
        from .quantize import add_int8_variant

        add_int8_variant(out, int8_data, log=say)
        sidecar = json.loads((out / SIDECAR).read_text())
    tables = getattr(codec, "entropy_tables", None)
    found = find_tables(out) if tables is not None else None
    if tables is not None and (found is None or found.identity() != tables.identity()):
        # the model's entropy tables go with its graphs (an export inside the bundle finds
        # the bundle's; block graphs find these), so ONNX Runtime writes torch's format 3
        tables.save(out / ENTROPY_FILE)
        say(f"entropy tables {tables.identity()} -> {out / ENTROPY_FILE}")
    elif tables is None and (out / ENTROPY_FILE).exists():  # an earlier export's: not this model's
        (out / ENTROPY_FILE).unlink()
    blocks = None
    if block_frames is not None and block_frames > k:
        # the same model and state at more frames per call (whole signals); verified as above
        say(f"block graphs ({block_frames} frames per call) in {out / BLOCKS}:")
        blocks = export_onnx(codec, out / BLOCKS, frames_per_step=block_frames, n_q=n_q,
                             full_sequence=False, opset=opset, optimize=optimize,
                             exporter=exporter, verify=verify, try_offline=try_offline,
                             int8=False, log=lambda msg: say(f"  {BLOCKS}/: {msg}"))
    elif block_frames is not None:
        say(f"no block graphs: the step graphs already take {k} frame(s) per call "
            f"(block_frames {block_frames})")
    return ExportResult(out, sidecar, blocks)


def build_sidecar(codec: Codec, model: Codec, graphs: dict[str, dict[str, Any]], *,
                  frames_per_step: int, encoder_n_q: int, opset: int, exporter: str,
                  folded_dequantizer: bool = False) -> dict[str, Any]:
    """Everything a torch-free runtime needs to drive the graphs."""
    import onnx

    qc = model.config.quantizer

    def spec_list(spec: dict[str, StateSpec]) -> list[dict[str, Any]]:
        return [{"key": k, "input": f"state_in.{k}", "output": f"state_out.{k}",
                 "shape": list(s.shape), "dtype": _dtype_name(s.dtype)} for k, s in spec.items()]

    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {"name": model.config.name, "identity": codec.identity(),
                  "codes": codec.codes_identity(),
                  # earlier models whose format-1 .dwc files these graphs decode (same codes)
                  "compatible": list(codec.compatible_identities),
                  "config": model.config.to_dict()},
        "sample_rate": model.sample_rate,
        "hop_length": model.hop_length,
        "frame_rate": model.frame_rate,
        "latency_samples": model.latency_samples,
        "latency_ms": model.latency_ms,
        "frames_per_step": frames_per_step,
        "num_codebooks": model.num_codebooks,
        "encoder_n_q": encoder_n_q,
        "codebook_size": model.codebook_size,
        "latent_dim": model.config.latent_dim,
        "quantizer": {"kind": qc.kind, "levels": list(qc.levels) if qc.kind == "fsq" else None,
                      "lfq_bits": qc.lfq_bits if qc.kind == "lfq" else None,
                      "codebook_size": model.codebook_size},
        "encoder_state": spec_list(model.encoder_state_spec()),
        "decoder_state": spec_list(model.decoder_state_spec()),
        "graphs": graphs,
        "optimizations": {
            "table_decode_stages": sum(isinstance(st.quantizer, TableDecode)
                                       for st in model.quantizer.stages),
            "folded_dequantizer": folded_dequantizer,
            "single_step_convs": {k: v["notes"].get("single_step_convs")
                                  for k, v in graphs.items()},
        },
        "opset": opset,
        "exporter": exporter,
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__},
    }
