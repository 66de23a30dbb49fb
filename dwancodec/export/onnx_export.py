"""Export the streaming step functions of a :class:`~dwancodec.model.Codec` to ONNX.

What gets exported is the tested step, traced through two thin wrappers that only map positional
tensors to the flat state dict:

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

Every export is checked with ``onnx.checker`` and against the torch step on random input before
anything is written (a mismatch raises ``RuntimeError``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ..model import Codec
from ..streaming.state import StateSpec, sub_state, zero_state

SIDECAR = "dwancodec_onnx.json"
FORMAT = "dwancodec-onnx"
FORMAT_VERSION = 1
ENCODER_STEP = "encoder_step.onnx"
DECODER_STEP = "decoder_step.onnx"
ENCODER_FULL = "encoder_full.onnx"
DECODER_FULL = "decoder_full.onnx"
EXPORTERS = ("dynamo", "torchscript")
#: Dense single-step convs are rewritten to MatMul from this many weights (small ones: no gain).
DENSE_MIN_WEIGHTS = 16384
#: Largest decode table (bytes) that replaces FSQ/LFQ integer arithmetic in the graphs.
TABLE_MAX_BYTES = 4 << 20
#: Smallest initializer worth storing as float16 (see :func:`store_exact_half`).
HALF_MIN_ELEMENTS = 256
#: Tolerance of the export-time self check (torch step vs. ONNX Runtime, float32).
CHECK_ATOL = 1e-4


# Preparing the model ------------------------------------------------------------------------
def strip_parametrizations(module: nn.Module) -> int:
    """Bake training-only reparametrizations into plain weights, in place; return how many.

    Handles ``torch.nn.utils.parametrize`` (e.g. ``parametrizations.weight_norm``,
    ``spectral_norm``) and the legacy hook-based ``weight_norm`` / ``spectral_norm``.
    """
    from torch.nn.utils import parametrize

    count = 0
    for m in list(module.modules()):
        if parametrize.is_parametrized(m):
            for name in list(m.parametrizations.keys()):  # type: ignore[union-attr]
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)
                count += 1
        for hook_id, hook in list(m._forward_pre_hooks.items()):
            cls = type(hook).__name__
            if cls in ("WeightNorm", "SpectralNorm"):
                hook.remove(m)  # recomputes and stores the plain weight
                del m._forward_pre_hooks[hook_id]
                count += 1
    return count


class TableDecode(nn.Module):
    """A scalar quantizer (FSQ, LFQ) whose ``decode`` is a lookup in its own decode table.

    ``table[c] = quantizer.decode(c)`` for every code ``c`` (computed by the quantizer itself), so
    ``decode`` is the same function on every valid code, but exports as one ``Gather`` instead
    of a dozen integer div/mod/cast nodes per residual stage. ``encode`` is the quantizer's own.
    """

    def __init__(self, quantizer: nn.Module) -> None:
        super().__init__()
        self.quantizer = quantizer
        self.dim = quantizer.dim
        self.codebook_size = quantizer.codebook_size
        with torch.no_grad():
            codes = torch.arange(self.codebook_size)[None]  # [1, K]
            table = quantizer.decode(codes)[0].t().contiguous()  # [K, d]
        self.register_buffer("table", table)

    def encode(self, z: Tensor) -> Tensor:
        return self.quantizer.encode(z)

    def decode(self, codes: Tensor) -> Tensor:
        """``[B, T]`` codes -> ``[B, d, T]``."""
        return nn.functional.embedding(codes, self.table).transpose(1, 2)


def tabulate_decoders(codec: Codec, max_bytes: int = TABLE_MAX_BYTES) -> int:
    """Swap each FSQ/LFQ stage of ``codec`` (in place) for a :class:`TableDecode`; return count."""
    from ..quantization import FSQ, LFQ

    count = 0
    for stage in codec.quantizer.stages:
        q = stage.quantizer
        if isinstance(q, (FSQ, LFQ)) and q.codebook_size * q.dim * 4 <= max_bytes:
            stage.quantizer = TableDecode(q)
            count += 1
    return count


def prepare_for_export(codec: Codec, tabulate: bool = True) -> Codec:
    """A frozen eval-mode copy of ``codec`` with parametrizations baked in (``codec`` untouched).

    ``tabulate``: replace scalar quantizers' decode by their lookup table (:class:`TableDecode`).
    """
    model = copy.deepcopy(codec).cpu().eval()
    strip_parametrizations(model)
    for p in model.parameters():
        p.requires_grad_(False)
    if tabulate:
        tabulate_decoders(model)
    return model


# Graph wrappers ---------------------------------------------------------------------------------
class EncoderStepGraph(nn.Module):
    """``(audio [B, 1, k * hop], *state) -> (codes [B, n_q, k], latents [B, D, k], *new_state)``.

    State tensors are positional in the order of ``codec.encoder_state_spec()``.
    """

    def __init__(self, codec: Codec, n_q: int | None = None) -> None:
        super().__init__()
        self.codec = codec
        self.n_q = codec.num_codebooks if n_q is None else n_q
        self.keys = list(codec.encoder_state_spec())

    def forward(self, audio: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        state = dict(zip(self.keys, states, strict=True))
        # == Codec.encoder_step, with the latents kept.
        latents, new = self.codec.encoder.step(audio, sub_state(state, "encoder"))
        codes = self.codec.quantizer.encode(latents, self.n_q)
        return (codes, latents, *(new[k[len("encoder."):]] for k in self.keys))


class DecoderStepGraph(nn.Module):
    """``(codes [B, N, k], n_q [], *state) -> (audio [B, 1, k * hop], *new_state)``.

    Stages ``>= n_q`` are ignored (their codes may hold any valid index, e.g. 0).
    """

    def __init__(self, codec: Codec) -> None:
        super().__init__()
        self.codec = codec
        self.keys = list(codec.decoder_state_spec())
        self.register_buffer("stage_index", torch.arange(codec.num_codebooks), persistent=False)

    def dequantize(self, codes: Tensor, n_q: Tensor) -> Tensor:
        """``ResidualQuantizer.decode(codes[:, :n_q])`` for a tensor ``n_q``: ``[B, D, k]``.

        Same stage modules, same summation order; dropped stages are multiplied by exactly 0.0.
        """
        keep = (self.stage_index < n_q).to(torch.float32)
        z_q: Tensor | None = None
        rq = self.codec.quantizer
        for i, stage in enumerate(rq.stages):
            q = rq.stage_latent(i, stage.quantizer.decode(codes[:, i]))
            z_q = q if z_q is None else z_q + q * keep[i]  # stage 0 is always active
        assert z_q is not None
        return z_q

    def forward(self, codes: Tensor, n_q: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        state = dict(zip(self.keys, states, strict=True))
        # == Codec.decoder_step(codes[:, :n_q], state)
        audio, new = self.codec.decoder.step(self.dequantize(codes, n_q),
                                             sub_state(state, "decoder"))
        return (audio, *(new[k[len("decoder."):]] for k in self.keys))


# Export -------------------------------------------------------------------------------------------
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
        n_named = _n_named(module)
        dynamic_shapes = (*shapes[:n_named], tuple(shapes[n_named:]))
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


def _n_named(module: nn.Module) -> int:
    """Number of named (non-``*states``) positional inputs of a wrapper's ``forward``."""
    return 2 if isinstance(module, DecoderStepGraph) else 1


def _state_args(spec: dict[str, StateSpec], batch: int, gen: torch.Generator) -> list[Tensor]:
    return [0.1 * torch.randn((batch, *s.shape), generator=gen).to(s.dtype) for s in spec.values()]


def _check_onnx(path: Path) -> int:
    """``onnx.checker`` (full check, with shape inference); returns the node count."""
    import onnx

    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    return len(model.graph.node)


def _session(path: Path, threads: int = 1, level: str = "all") -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = {
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def _median_run_us(sessions: list[Any], feeds: dict[str, np.ndarray], rounds: int = 7,
                   calls: int = 200) -> list[float]:
    """Per-session best-of-``rounds`` median call time in microseconds (interleaved rounds).

    Thread CPU time, not wall time: with one intra-op thread all work runs on the calling
    thread, and CPU time is far less disturbed by other processes on a shared machine.
    """
    best = [float("inf")] * len(sessions)
    for s in sessions:
        for _ in range(20):
            s.run(None, feeds)
    for _ in range(rounds):
        for i, s in enumerate(sessions):
            ts = np.empty(calls)
            for j in range(calls):
                t0 = time.thread_time_ns()
                s.run(None, feeds)
                ts[j] = time.thread_time_ns() - t0
            best[i] = min(best[i], float(np.median(ts)) / 1e3)
    return best


def _feeds(session: Any, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Plausible inputs for any of our graphs (dynamic axes set to ``batch`` / 1 frame)."""
    rng = np.random.default_rng(seed)
    feeds: dict[str, np.ndarray] = {}
    for i in session.get_inputs():
        shape = [batch if d == "batch" else (d if isinstance(d, int) else 1) for d in i.shape]
        if i.name == "n_q":
            feeds[i.name] = np.array(1 << 30, dtype=np.int64)  # clamps to all stages
        elif "int64" in i.type:
            feeds[i.name] = np.zeros(shape, np.int64)
        else:
            feeds[i.name] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    return feeds


def rewrite_single_step_convs(model: Any, kinds: tuple[str, ...] = ("depthwise", "dense")
                              ) -> dict[str, int]:
    """Replace ``Conv`` nodes that emit exactly one time step by matmul-style nodes.

    In a one-frame step the frame-rate convs see exactly ``kernel`` input samples and emit one
    output, so (with unit dilation, no padding):

    - depthwise (``group == C``): ``y[b, c] = sum_k x[b, c, k] * w[c, k] + bias[c]``
      -> ``Mul`` + ``ReduceSum`` (+ ``Add``). ONNX Runtime's grouped ``Conv`` runs one tiny
      GEMM per channel.
    - dense (``group == 1``): ``y[b] = W.reshape(O, C * K) @ x[b].reshape(C * K) + bias``
      -> ``Reshape`` + ``MatMul`` (+ ``Add``) + ``Unsqueeze``, whose weight ONNX Runtime
      prepacks.

    Only nodes whose (statically inferred) input length equals the kernel are rewritten; the
    arithmetic is the same sums in another order. Edits ``model`` (an ``onnx.ModelProto``) in
    place; returns the number of rewrites of each kind.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int | None]] = {}
    for vi in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    inits = {t.name: t for t in graph.initializer}
    new_nodes: list[Any] = []
    new_inits: list[Any] = []
    counts = {"depthwise": 0, "dense": 0}

    def const(array: np.ndarray, name: str) -> str:
        new_inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    for node in graph.node:
        w = inits.get(node.input[1]) if node.op_type == "Conv" and len(node.input) > 1 else None
        if w is None:
            new_nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        weight = numpy_helper.to_array(w)
        x_shape = shapes.get(node.input[0])
        has_bias = len(node.input) > 2 and bool(node.input[2])
        group = attrs.get("group", 1)
        ok = (
            weight.ndim == 3 and x_shape is not None and len(x_shape) == 3
            and x_shape[2] == weight.shape[2]
            and all(v == 1 for v in attrs.get("dilations", [1]))
            and not any(attrs.get("pads", [0]))
            and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
            and (not has_bias or node.input[2] in inits)
        )
        depthwise = ok and weight.shape[1] == 1 and group == weight.shape[0] == x_shape[1] > 1 \
            and "depthwise" in kinds
        dense = ok and group == 1 and x_shape[1] == weight.shape[1] and "dense" in kinds \
            and weight.size >= DENSE_MIN_WEIGHTS
        if not (depthwise or dense):
            new_nodes.append(node)
            continue
        base = f"{node.name or node.output[0]}_1step"
        out = node.output[0]
        bias = numpy_helper.to_array(inits[node.input[2]]) if has_bias else None
        if depthwise:
            counts["depthwise"] += 1
            summed = f"{base}_sum" if has_bias else out
            new_nodes += [
                helper.make_node("Mul", [node.input[0], const(weight[:, 0, :], f"{base}_w")],
                                 [f"{base}_prod"], name=f"{base}_mul"),
                helper.make_node("ReduceSum", [f"{base}_prod",
                                               const(np.array([-1], np.int64), f"{base}_ax")],
                                 [summed], keepdims=1, name=f"{base}_reducesum"),
            ]
            if bias is not None:
                new_nodes.append(helper.make_node("Add", [summed, const(bias[:, None],
                                                                        f"{base}_b")],
                                                  [out], name=f"{base}_bias"))
        else:
            counts["dense"] += 1
            o, c, k = weight.shape
            flat, mm = f"{base}_flat", f"{base}_mm"
            new_nodes += [
                helper.make_node("Reshape", [node.input[0],
                                             const(np.array([0, c * k], np.int64), f"{base}_s")],
                                 [flat], name=f"{base}_reshape"),
                helper.make_node("MatMul", [flat, const(weight.reshape(o, c * k).T,
                                                        f"{base}_w")],
                                 [mm], name=f"{base}_matmul"),
            ]
            if bias is not None:
                new_nodes.append(helper.make_node("Add", [mm, const(bias, f"{base}_b")],
                                                  [f"{base}_add"], name=f"{base}_bias"))
                mm = f"{base}_add"
            new_nodes.append(helper.make_node(
                "Unsqueeze", [mm, const(np.array([-1], np.int64), f"{base}_ax")], [out],
                name=f"{base}_unsqueeze"))
    if sum(counts.values()):
        del graph.node[:]
        graph.node.extend(new_nodes)
        graph.initializer.extend(new_inits)
        used = {i for n in graph.node for i in n.input}
        keep = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep)
    return counts


def store_exact_half(model: Any, min_elements: int = HALF_MIN_ELEMENTS) -> dict[str, int]:
    """Store float32 initializers losslessly in fewer bytes, rebuilt by foldable nodes.

    Two exact encodings, tried in order for each float32 initializer of ``min_elements`` or
    more:

    - at most 256 distinct values (the FSQ/LFQ decode tables of :class:`TableDecode`): a
      ``uint8`` index tensor plus the distinct values, rebuilt by ``Gather`` (a copy);
    - every element exactly representable in float16 (``float32(float16(w)) == w``; true of
      all weights of a bundle saved with ``save_pretrained(dtype=torch.float16)``): float16
      storage rebuilt by ``Cast``.

    The graph computes bit for bit what it computed before. ONNX Runtime's constant folding
    evaluates the rebuilding nodes once when the session is created, so per-call cost is
    unchanged. Edits ``model`` in place; returns the initializers moved and bytes saved.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inputs = {i.name for i in graph.input}
    kept, rebuild, moved, saved = [], [], 0, 0
    for t in graph.initializer:
        w = numpy_helper.to_array(t) if t.data_type == TensorProto.FLOAT else None
        if w is None or w.size < min_elements or t.name in inputs:
            kept.append(t)
            continue
        values, index = np.unique(w, return_inverse=True)
        if len(values) <= 256:
            kept += [numpy_helper.from_array(values.astype(np.float32), f"{t.name}__values"),
                     numpy_helper.from_array(index.reshape(w.shape).astype(np.uint8),
                                             f"{t.name}__index")]
            rebuild += [
                helper.make_node("Cast", [f"{t.name}__index"], [f"{t.name}__index64"],
                                 to=TensorProto.INT64, name=f"{t.name}__index_cast"),
                helper.make_node("Gather", [f"{t.name}__values", f"{t.name}__index64"],
                                 [t.name], axis=0, name=f"{t.name}__gather"),
            ]
            saved += 3 * w.size - 4 * len(values)
        elif np.array_equal(w.astype(np.float16).astype(np.float32), w):
            kept.append(numpy_helper.from_array(w.astype(np.float16), f"{t.name}__f16"))
            rebuild.append(helper.make_node("Cast", [f"{t.name}__f16"], [t.name],
                                            to=TensorProto.FLOAT, name=f"{t.name}__cast"))
            saved += 2 * w.size
        else:
            kept.append(t)
            continue
        moved += 1
    if moved:
        del graph.initializer[:]
        graph.initializer.extend(kept)
        nodes = [*rebuild, *graph.node]  # rebuilt first: the graph stays topologically sorted
        del graph.node[:]
        graph.node.extend(nodes)
    return {"initializers": moved, "bytes_saved": saved}


def _postprocess_file(path: Path, rewrite: bool) -> dict[str, dict[str, int]]:
    """Load an exported graph once, apply the graph passes, save it once if anything changed:
    :func:`rewrite_single_step_convs` (when ``rewrite``), then :func:`store_exact_half`."""
    import onnx

    model = onnx.load(str(path))
    notes = {"single_step_convs": rewrite_single_step_convs(model)} if rewrite else {}
    notes["half_storage"] = store_exact_half(model)
    if any(v for n in notes.values() for v in n.values()):
        onnx.save(model, str(path))
    return notes


def optimize_offline(path: Path, threads: int = 1) -> dict[str, Any]:
    """Try ONNX Runtime's offline optimization (level "extended", hardware independent).

    Writes ``<name>.ort.onnx`` beside ``path`` and keeps it only if a step runs at least 5 %
    faster than the plain graph in two measurements (both loaded with all online optimizations
    on, as the runtime does). Returns the measurements and whether the optimized copy was kept.
    """
    opt_path = path.with_name(path.stem + ".ort.onnx")
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.optimized_model_filepath = str(opt_path)
    so.log_severity_level = 3
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

    t0 = time.perf_counter()
    plain = _session(path, threads)
    t_plain = time.perf_counter() - t0
    t0 = time.perf_counter()
    opt = _session(opt_path, threads)
    t_opt = time.perf_counter() - t0
    feeds = _feeds(plain)
    us_plain, us_opt = _median_run_us([plain, opt], feeds)
    kept = us_opt < 0.95 * us_plain
    if kept:  # confirm: a single measurement on a busy machine is not enough
        again_plain, again_opt = _median_run_us([plain, opt], feeds)
        kept = again_opt < 0.95 * again_plain
        us_plain, us_opt = min(us_plain, again_plain), min(us_opt, again_opt)
    if not kept:
        opt_path.unlink()
    return {
        "optimizer": "onnxruntime offline (ORT_ENABLE_EXTENDED)",
        "step_us_plain": round(us_plain, 1), "step_us_optimized": round(us_opt, 1),
        "load_s_plain": round(t_plain, 3), "load_s_optimized": round(t_opt, 3),
        "kept": kept, "file": opt_path.name if kept else None,
    }


@dataclass
class ExportResult:
    """Where the graphs went and what the sidecar says."""

    directory: Path
    sidecar: dict[str, Any]

    @property
    def files(self) -> list[Path]:
        out = [self.directory / SIDECAR]
        for g in self.sidecar["graphs"].values():
            out.append(self.directory / g["file"])
            if g.get("optimized"):
                out.append(self.directory / g["optimized"])
        return out


def export_onnx(codec: Codec, out_dir: str | Path, *, frames_per_step: int = 1,
                n_q: int | None = None, full_sequence: bool = False, opset: int = 20,
                optimize: bool = True, exporter: str = "dynamo", verify: bool = True,
                try_offline: bool | None = None, log: Any = None) -> ExportResult:
    """Write ``encoder_step.onnx``, ``decoder_step.onnx`` (+ ``*_full.onnx``) and the sidecar.

    ``frames_per_step``: code frames per step call (audio ``[B, 1, frames_per_step * hop]``).
    ``n_q``: stages in the encoder graph (default all; the decoder graph always takes all
    ``N`` stages plus an ``n_q`` input). ``optimize``: graph optimizations for per-frame
    latency (FSQ/LFQ decode as a table lookup, :class:`TableDecode`; single-step convs as
    matmuls, :func:`rewrite_single_step_convs`), plus a trial of ONNX Runtime's offline
    optimization, kept only where it measurably helps (``try_offline``, default: as
    ``optimize``). ``verify``: compare with the torch step
    (raises ``RuntimeError`` beyond :data:`CHECK_ATOL`). ``log``: callable for progress notes.
    """
    from ..validation import check_n_q

    say = log or (lambda _msg: None)
    if isinstance(frames_per_step, bool) or not isinstance(frames_per_step, int) \
            or not 1 <= frames_per_step <= 1000:
        raise ValueError(
            f"frames_per_step must be an integer in [1, 1000], got {frames_per_step!r}"
        )
    enc_n_q = codec.num_codebooks if n_q is None else check_n_q(n_q, codec.num_codebooks)
    if not 17 <= opset <= 23:
        raise ValueError(f"opset must be in [17, 23], got {opset}")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {EXPORTERS}, got {exporter!r}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"{out} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    # a folder without a sidecar is incomplete; graphs of an earlier export must not linger
    for name in (SIDECAR, ENCODER_STEP, DECODER_STEP, ENCODER_FULL, DECODER_FULL):
        (out / name).unlink(missing_ok=True)
        (out / name.replace(".onnx", ".ort.onnx")).unlink(missing_ok=True)

    model = prepare_for_export(codec, tabulate=optimize)
    hop, k, batch = codec.hop_length, frames_per_step, 2
    enc_spec, dec_spec = model.encoder_state_spec(), model.decoder_state_spec()
    gen = torch.Generator().manual_seed(0)
    enc, dec = EncoderStepGraph(model, enc_n_q), DecoderStepGraph(model)
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
        notes: dict[str, Any] = dict(_postprocess_file(path, rewrite=optimize))
        nodes = _check_onnx(path)
        info = GraphInfo(file=path.name, frames=frames, inputs=ins_info, outputs=outs_info,
                         nodes=nodes, notes=notes)
        say(f"exported {path.name}: {nodes} nodes in {time.perf_counter() - t0:.1f} s "
            f"({exporter} exporter, opset {opset})")
        graphs[name] = info.__dict__

    sidecar = build_sidecar(codec, model, graphs, frames_per_step=k, encoder_n_q=enc_n_q,
                            opset=opset, exporter=exporter)
    if verify:  # against the codec as torch runs it (no table decode)
        report = verify_export(prepare_for_export(codec, tabulate=False), out, sidecar)
        sidecar["verification"] = report
        say("verified against torch: " + ", ".join(f"{g} max|diff| {v['max_abs_diff']:.2e}"
                                                   for g, v in report.items()))
    if optimize if try_offline is None else try_offline:
        for name in ("encoder_step", "decoder_step"):
            res = optimize_offline(out / graphs[name]["file"])
            graphs[name]["notes"]["offline_optimization"] = res
            graphs[name]["optimized"] = res["file"]
            say(f"{name}: offline optimization {res['step_us_plain']:.0f} us -> "
                f"{res['step_us_optimized']:.0f} us per call, "
                f"{'kept' if res['kept'] else 'not kept (no measurable gain)'}")
    (out / SIDECAR).write_text(json.dumps(sidecar, indent=2) + "\n")
    return ExportResult(out, sidecar)


def build_sidecar(codec: Codec, model: Codec, graphs: dict[str, dict[str, Any]], *,
                  frames_per_step: int, encoder_n_q: int, opset: int, exporter: str
                  ) -> dict[str, Any]:
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
            "single_step_convs": {k: v["notes"].get("single_step_convs")
                                  for k, v in graphs.items()},
        },
        "opset": opset,
        "exporter": exporter,
        "versions": {"torch": torch.__version__, "onnx": onnx.__version__},
    }


# Verification -------------------------------------------------------------------------------------
def _run(session: Any, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def verify_export(model: Codec, directory: Path, sidecar: dict[str, Any], steps: int = 4,
                  batch: int = 3, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Run each graph for a few consecutive calls next to the torch step; raise on mismatch.

    Encoder: latents and states within :data:`CHECK_ATOL`, codes counted (they may differ where a
    latent sits on a rounding boundary). Decoder: audio and states within :data:`CHECK_ATOL`, with
    ``n_q`` = all stages and a smaller ``n_q``.
    """
    gen = torch.Generator().manual_seed(seed)
    hop, n_all = model.hop_length, model.num_codebooks
    report: dict[str, dict[str, Any]] = {}
    for name, g in sidecar["graphs"].items():
        sess = _session(directory / g["file"])
        frames = g["frames"] or 5
        worst, code_mismatch = 0.0, 0
        if name.startswith("encoder"):
            n_q = sidecar["encoder_n_q"]
            state = zero_state(model.encoder_state_spec(), batch)
            for _ in range(steps):
                audio = 0.3 * torch.randn(batch, 1, frames * hop, generator=gen)
                with torch.inference_mode():
                    codes, new = model.encoder_step(audio, state, n_q)
                    latents, _ = model.encoder.step(audio, sub_state(state, "encoder"))
                feeds = {"audio": audio.numpy(),
                         **{f"state_in.{k}": v.numpy() for k, v in state.items()}}
                got = _run(sess, feeds)
                diffs = [np.abs(got["latents"] - latents.numpy()).max()]
                diffs += [np.abs(got[f"state_out.{k}"] - v.numpy()).max() for k, v in new.items()]
                worst = max(worst, float(max(diffs)))
                code_mismatch += int((got["codes"] != codes.numpy()).sum())
                state = new
        else:
            state = zero_state(model.decoder_state_spec(), batch)
            for step in range(steps):
                n_q = n_all if step % 2 == 0 else max(1, n_all // 2)
                codes = torch.randint(0, model.codebook_size, (batch, n_all, frames),
                                      generator=gen)
                with torch.inference_mode():
                    audio, new = model.decoder_step(codes[:, :n_q], state)
                feeds = {"codes": codes.numpy(), "n_q": np.array(n_q, dtype=np.int64),
                         **{f"state_in.{k}": v.numpy() for k, v in state.items()}}
                got = _run(sess, feeds)
                diffs = [np.abs(got["audio"] - audio.numpy()).max()]
                diffs += [np.abs(got[f"state_out.{k}"] - v.numpy()).max() for k, v in new.items()]
                worst = max(worst, float(max(diffs)))
                state = new
        if not worst <= CHECK_ATOL:
            raise RuntimeError(f"{g['file']} differs from the torch step by {worst:.3g} "
                               f"(> {CHECK_ATOL}); the export is not faithful")
        report[name] = {"max_abs_diff": worst, "code_mismatches": code_mismatch,
                        "steps": steps, "batch": batch}
    return report


def environment_threads() -> int:
    """CPU threads available to this process."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
