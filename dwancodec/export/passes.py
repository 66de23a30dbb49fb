"""Graph passes on exported ``onnx.ModelProto`` s: same function, fewer or cheaper nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Dense single-step convs are rewritten to MatMul from this many weights (small ones: no gain).
DENSE_MIN_WEIGHTS = 16384
#: Depthwise convs over at most this many times their kernel become a banded MatMul.
BANDED_MAX_RATIO = 4
#: Smallest initializer worth storing as float16 (see :func:`store_exact_half`).
HALF_MIN_ELEMENTS = 256


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

    Only nodes whose (statically inferred) input length equals the kernel are rewritten this
    way. Depthwise convs over a longer static input of at most :data:`BANDED_MAX_RATIO` kernels
    (stride 1) become ``Transpose`` + ``MatMul`` with a banded ``[C, L, T]`` matrix +
    ``Transpose`` (+ ``Add``): ``depthwise_banded`` in the counts. The
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
        plain = (  # a 1-D conv with static length, no dilation or padding, constant bias
            weight.ndim == 3 and x_shape is not None and len(x_shape) == 3
            and isinstance(x_shape[2], int)
            and all(v == 1 for v in attrs.get("dilations", [1]))
            and not any(attrs.get("pads", [0]))
            and attrs.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
            and (not has_bias or node.input[2] in inits)
        )
        is_depthwise = plain and weight.shape[1] == 1 \
            and group == weight.shape[0] == x_shape[1] > 1 and "depthwise" in kinds
        ok = plain and x_shape[2] == weight.shape[2]
        # a depthwise conv over a few more samples than its kernel (the encoder's frame-rate
        # convs at frames_per_step * stride samples) as one batched MatMul per channel with a
        # banded [L, T] matrix: at batch 64 ONNX Runtime's grouped Conv took 2 of the
        # encoder's 10 ms per step, the MatMul 5-8x less (at batch 1 the same); longer inputs
        # keep the Conv (the band matrix grows as L * T)
        windows = (
            is_depthwise and all(v == 1 for v in attrs.get("strides", [1]))
            and weight.shape[2] < x_shape[2] <= BANDED_MAX_RATIO * weight.shape[2]
        )
        bias = numpy_helper.to_array(inits[node.input[2]]) if has_bias else None
        if windows:
            counts["depthwise_banded"] = counts.get("depthwise_banded", 0) + 1
            base = f"{node.name or node.output[0]}_band"
            out = node.output[0]
            c, _, k = weight.shape
            length = int(x_shape[2])
            t = length - k + 1
            band = np.zeros((c, length, t), np.float32)  # band[c, t + j, t] = w[c, j]
            for j in range(k):
                band[:, np.arange(t) + j, np.arange(t)] = weight[:, 0, j:j + 1]
            summed = f"{base}_sum" if has_bias else out
            new_nodes += [
                helper.make_node("Transpose", [node.input[0]], [f"{base}_cbl"], perm=[1, 0, 2],
                                 name=f"{base}_to_cbl"),
                helper.make_node("MatMul", [f"{base}_cbl", const(band, f"{base}_w")],
                                 [f"{base}_cbt"], name=f"{base}_matmul"),
                helper.make_node("Transpose", [f"{base}_cbt"], [summed], perm=[1, 0, 2],
                                 name=f"{base}_to_bct"),
            ]
            if bias is not None:
                new_nodes.append(helper.make_node("Add", [summed, const(bias[:, None],
                                                                        f"{base}_b")],
                                                  [out], name=f"{base}_bias"))
            continue
        depthwise = ok and is_depthwise
        dense = ok and group == 1 and x_shape[1] == weight.shape[1] and "dense" in kinds \
            and weight.size >= DENSE_MIN_WEIGHTS
        if not (depthwise or dense):
            new_nodes.append(node)
            continue
        base = f"{node.name or node.output[0]}_1step"
        out = node.output[0]
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


def postprocess_file(path: Path, rewrite: bool) -> dict[str, dict[str, int]]:
    """Load an exported graph once, apply the graph passes, save it once if anything changed:
    :func:`rewrite_single_step_convs` and :func:`transposes_to_reshapes` (when ``rewrite``), then
    :func:`store_exact_half`."""
    import onnx

    model = onnx.load(str(path))
    notes: dict[str, Any] = {}
    if rewrite:
        notes["single_step_convs"] = rewrite_single_step_convs(model)
        notes["transposes_as_reshapes"] = {"count": transposes_to_reshapes(model)}
    notes["half_storage"] = store_exact_half(model)
    if any(v for n in notes.values() for v in n.values()):
        onnx.save(model, str(path))
    return notes


def inline_stored_half(model: Any) -> int:
    """Undo :func:`store_exact_half` (in place): rebuild the float32 initializers it encoded.

    Quantizers and other passes look for weights among the initializers; after this the
    rebuilding ``Cast``/``Gather`` nodes are gone and each weight is a plain float32 initializer
    again (bit for bit the original). Returns the number of initializers restored.
    """
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    restored: list[Any] = []
    drop_nodes: set[int] = set()
    drop_inits: set[str] = set()
    for i, node in enumerate(graph.node):
        out = node.output[0] if node.output else ""
        if node.op_type == "Cast" and node.name == f"{out}__cast" and node.input[0] in inits:
            w = numpy_helper.to_array(inits[node.input[0]]).astype(np.float32)
            drop_inits.add(node.input[0])
        elif node.op_type == "Gather" and node.name == f"{out}__gather" \
                and node.input[0] in inits and f"{out}__index" in inits:
            values = numpy_helper.to_array(inits[node.input[0]])
            index = numpy_helper.to_array(inits[f"{out}__index"]).astype(np.int64)
            w = values[index].astype(np.float32)
            drop_inits |= {node.input[0], f"{out}__index"}
        elif node.op_type == "Cast" and node.name == f"{node.input[0]}_cast" \
                and node.input[0].endswith("__index"):
            drop_nodes.add(i)  # the index cast of a Gather rebuild
            continue
        else:
            continue
        drop_nodes.add(i)
        restored.append(numpy_helper.from_array(w, out))
    if restored:
        nodes = [n for i, n in enumerate(graph.node) if i not in drop_nodes]
        del graph.node[:]
        graph.node.extend(nodes)
        kept = [t for t in graph.initializer if t.name not in drop_inits]
        del graph.initializer[:]
        graph.initializer.extend([*kept, *restored])
    return len(restored)


def transposes_to_reshapes(model: Any) -> int:
    """Replace each ``Transpose`` that only moves size-1 axes by a ``Reshape`` (in place).

    In a one-frame step the channel LayerNorms transpose ``[B, C, 1]`` to ``[B, 1, C]`` and
    back: the element order does not change, so a ``Reshape`` (a view in ONNX Runtime, no
    copy) is the same function. Needs statically inferred shapes; an unknown axis (the batch)
    must stay in place (it becomes a ``0``, "copy this axis", in the target shape). Returns
    the number of rewrites.
    """
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes: dict[str, list[int | None]] = {}
    for vi in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    nodes, count = [], 0
    for node in graph.node:
        shape = shapes.get(node.input[0]) if node.op_type == "Transpose" else None
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), None)
        if shape is None or perm is None or len(perm) != len(shape):
            nodes.append(node)
            continue
        moved = [p for p in perm if shape[p] != 1]  # the axes that carry data, in new order
        target = []
        for j, p in enumerate(perm):
            if shape[p] is None:
                target.append(0 if p == j else -2)  # -2: cannot express
            else:
                target.append(shape[p])
        if moved != sorted(moved) or -2 in target:
            nodes.append(node)
            continue
        name = f"{node.name or node.output[0]}_as_reshape"
        graph.initializer.append(numpy_helper.from_array(np.array(target, np.int64),
                                                         f"{name}_shape"))
        nodes.append(helper.make_node("Reshape", [node.input[0], f"{name}_shape"],
                                      list(node.output), name=name))
        count += 1
    if count:
        del graph.node[:]
        graph.node.extend(nodes)
    return count
