"""Exact ONNX graph rewrites for what onnx2tf or the TFLite converter gets wrong, each a function
``(model) -> nodes changed`` with a Given/Result docstring, named in :data:`REWRITES`.

The ONNX -> TFLite ladder applies them to a private copy of the prepared model
(``onnx2tf_remedies.Settings.rewrites``); the counting helpers tell the ladder which ones apply.
"""

from __future__ import annotations

from typing import Callable

import numpy as np


def constant_lhs(model) -> int:
    """Sub and Div whose first operand is a constant, rewritten so that the constant comes second.

    Given:  %y = Sub(%C, %x)             Result: %t = Sub(%x, %C);  %y = Neg(%t)
    Given:  %y = Div(%C, %x)             Result: %r = Pow(%x, -1);  %y = Mul(%C, %r)

    TensorFlow 2.21's TFLite converter (its PushTransposeThroughEwise pass) miscompiles a binary op
    whose first operand is a constant and whose second is a transposed tensor, and onnx2tf emits
    transposes at every NCHW <-> NHWC change: ``C - transpose(x)`` comes out as ``x' - C'`` and
    ``C / transpose(x)`` as ``x' * (1/C')``, even for a scalar C. A YOLOv8 box decode
    (``anchors - ltrb``) hits it: the TF model onnx2tf builds is right (3e-7), its .tflite is off by
    1.95 of the output's peak. ``-(x - C)`` is bit-exact; ``C * x^-1`` is within an ulp or two of
    ``C / x`` (POW is not pushed through, MUL commutes).
    """
    import numpy as np
    from onnx import NodeProto, helper, numpy_helper

    graph = model.graph
    sites = _constant_lhs_sites(graph)  # indices into graph.node (protobuf wrappers have no stable id)
    if not sites:
        return 0
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    nodes = []
    for index, node in enumerate(graph.node):
        if index not in sites:
            kept = NodeProto()
            kept.CopyFrom(node)
            nodes.append(kept)
            continue
        c, x = node.input
        base = node.name or node.output[0]
        middle = _fresh(f"{base}/constant_second", taken)
        if node.op_type == "Sub":
            nodes.append(helper.make_node("Sub", [x, c], [middle], name=_fresh(f"{base}/swapped", taken)))
            nodes.append(helper.make_node("Neg", [middle], list(node.output), name=_fresh(f"{base}/neg", taken)))
        else:
            exponent = _fresh(f"{base}/minus_one", taken)
            graph.initializer.append(numpy_helper.from_array(np.array(-1, dtype=_dtype_of(model, c)), exponent))
            nodes.append(helper.make_node("Pow", [x, exponent], [middle], name=_fresh(f"{base}/reciprocal", taken)))
            nodes.append(helper.make_node("Mul", [c, middle], list(node.output), name=_fresh(f"{base}/times", taken)))
    del graph.node[:]
    graph.node.extend(nodes)
    return len(sites)


def single_axis_slices(model) -> int:
    """Slices over several axes (constant starts/ends/axes/steps) split into one Slice per axis.

    Given:  %y = Slice(%x, starts=[0, 1], ends=[129, 5], axes=[1, 2])
    Result: %t = Slice(%x, starts=[0], ends=[129], axes=[1]);  %y = Slice(%t, starts=[1], ends=[5], axes=[2])

    onnxsim merges consecutive Slices into one; onnx2tf then maps the axes of the merged Slice into
    its NWC layout wrongly (Silero VAD's STFT: the real and imaginary halves come out with different
    shapes and the Add of their squares fails inside onnx2tf). One axis per Slice is what the
    exporter wrote and what onnx2tf converts. Exact: slicing axes one after another is the same
    selection.
    """
    from onnx import NodeProto, helper, numpy_helper

    graph = model.graph
    values = _constant_values(graph, _slice_parameters(graph))
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    nodes, changed = [], 0
    for node in graph.node:
        parts = _slice_parts(node, values)
        if parts is None or len(parts) < 2:
            kept = NodeProto()
            kept.CopyFrom(node)
            nodes.append(kept)
            continue
        current = node.input[0]
        base = node.name or node.output[0]
        for k, (start, end, axis, step) in enumerate(parts):
            names = []
            for label, value in (("starts", start), ("ends", end), ("axes", axis), ("steps", step)):
                name = _fresh(f"{base}/axis{axis}_{label}", taken)
                graph.initializer.append(numpy_helper.from_array(np.array([value], dtype=np.int64), name))
                names.append(name)
            out = node.output[0] if k == len(parts) - 1 else _fresh(f"{base}/axis{axis}", taken)
            nodes.append(helper.make_node("Slice", [current, *names], [out], name=_fresh(f"{base}/axis{axis}", taken)))
            current = out
        changed += 1
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
    return changed


def _slice_parts(node, values):
    """[(start, end, axis, step)] of an opset >= 10 Slice whose parameters are all constants, else None."""
    if node.op_type != "Slice" or len(node.input) < 3:
        return None
    arrays = [values.get(name) if name else None for name in node.input[1:]]
    starts, ends = arrays[0], arrays[1]
    if starts is None or ends is None:
        return None
    axes = arrays[2] if len(arrays) > 2 and node.input[3] else np.arange(len(starts))
    steps = arrays[3] if len(arrays) > 3 and node.input[4] else np.ones(len(starts), dtype=np.int64)
    if axes is None or steps is None:
        return None
    return [(int(a), int(b), int(c), int(d)) for a, b, c, d in zip(starts.ravel(), ends.ravel(), axes.ravel(), steps.ravel())]


def _constant_values(graph, names=None) -> dict:
    """name -> array of the graph's initializers and Constant outputs (only ``names`` when given:
    decoding every weight of a large model to look at a few Slice parameters would be slow)."""
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in graph.initializer if names is None or i.name in names}
    for node in graph.node:
        if node.op_type == "Constant" and (names is None or node.output[0] in names):
            for attribute in node.attribute:
                if attribute.name == "value":
                    values[node.output[0]] = numpy_helper.to_array(attribute.t)
    return values


def _slice_parameters(graph) -> set[str]:
    return {name for n in graph.node if n.op_type == "Slice" for name in n.input[1:] if name}


def subgraph_constants(model) -> int:
    """Outer-scope initializers (and Constant outputs) that If/Loop/Scan branches read, copied into
    each branch's own initializers.

    Given:  If(%cond) then_branch={ %y = Gemm(%h, W_outer, b_outer) }     (W_outer: a main-graph initializer)
    Result: If(%cond) then_branch={ initializers W_outer, b_outer;  %y = Gemm(%h, W_outer, b_outer) }

    onnx2tf converts a branch's nodes one by one and looks every input up among the tensors it has
    built; an outer initializer is not one of them, so it stops with ``KeyError: 'W_outer'``
    (openWakeWord's verifier head, an If whose branch runs a second classifier). ONNX lets a branch
    read outer names, so a copy inside the branch computes the same; returns branches changed.
    """
    from onnx import TensorProto, numpy_helper

    outer = {i.name: i for i in model.graph.initializer}
    constant_outputs = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    for name, value in _constant_values(model.graph, constant_outputs).items():
        if name not in outer:
            outer[name] = numpy_helper.from_array(value, name)
    changed = 0
    for node in model.graph.node:
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                needed = sorted(_captured(sub) & set(outer))
                for name in needed:
                    copy = TensorProto()
                    copy.CopyFrom(outer[name])
                    sub.initializer.append(copy)
                changed += bool(needed)
    return changed


def average_pool_pads(model) -> int:
    """AveragePool that excludes padding (count_include_pad=0, the default) with explicit pads,
    rewritten as the pad-including average times a constant correction.

    Given:  %y = AveragePool(%x, kernel_shape=[7, 7], pads=[0, 0, 1, 1])       (count_include_pad=0)
    Result: %a = AveragePool(%x, kernel_shape=[7, 7], pads=[0, 0, 1, 1], count_include_pad=1)
            %y = Mul(%a, C)     C[i, j] = kernel cells / real (unpadded) cells under window (i, j)

    onnx2tf writes an explicitly padded AveragePool as PAD + AVERAGE_POOL_2D(VALID), which divides by
    every cell of the window, zeros included: the model-zoo Inception v1's last pool (6x6 input,
    7x7 kernel, one row and column of padding) comes out 36/49 of the ONNX value (max error 0.11 of
    the output's peak). The product is within an ulp of ONNX's quotient. Needs static input shapes
    (the prepared graph has them); pools it cannot size are left alone.
    """
    from onnx import NodeProto, helper, numpy_helper

    graph = model.graph
    shapes = onnx_shapes(model)
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    nodes, changed = [], 0
    for node in graph.node:
        correction = _pool_correction(node, shapes)
        kept = NodeProto()
        kept.CopyFrom(node)
        if correction is None:
            nodes.append(kept)
            continue
        base = node.name or node.output[0]
        including = _fresh(f"{base}/including_pads", taken)
        factor = _fresh(f"{base}/pad_correction", taken)
        graph.initializer.append(numpy_helper.from_array(correction, factor))
        for attribute in list(kept.attribute):
            if attribute.name == "count_include_pad":
                kept.attribute.remove(attribute)
        kept.attribute.append(helper.make_attribute("count_include_pad", 1))
        del kept.output[:]
        kept.output.append(including)
        nodes.append(kept)
        nodes.append(helper.make_node("Mul", [including, factor], list(node.output), name=_fresh(f"{base}/corrected", taken)))
        changed += 1
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
    return changed


def _pool_correction(node, shapes):
    """The [1, 1, *out] correction of an AveragePool that excludes explicit pads, or None."""
    from onnx import helper

    if node.op_type != "AveragePool":
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    kernel = list(attrs.get("kernel_shape", []))
    pads = list(attrs.get("pads", [0] * 2 * len(kernel)))
    shape = shapes.get(node.input[0])
    if attrs.get("count_include_pad", 0) or not any(pads) or not kernel or shape is None \
            or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or attrs.get("ceil_mode", 0) \
            or any(d != 1 for d in attrs.get("dilations", [1] * len(kernel))) or len(shape) != len(kernel) + 2:
        return None
    strides = list(attrs.get("strides", [1] * len(kernel)))
    rank = len(kernel)
    counts = np.ones((1,), dtype=np.float64)
    per_axis = []
    for axis in range(rank):
        size, k, s, begin, end = shape[2 + axis], kernel[axis], strides[axis], pads[axis], pads[axis + rank]
        out = (size + begin + end - k) // s + 1
        starts = np.arange(out) * s - begin
        real = np.minimum(starts + k, size) - np.maximum(starts, 0)
        per_axis.append(real.astype(np.float64))
    counts = per_axis[0]
    for real in per_axis[1:]:
        counts = np.multiply.outer(counts, real)
    correction = float(np.prod(kernel)) / counts
    if np.all(correction == 1.0):
        return None
    return correction.reshape((1, 1, *correction.shape)).astype(np.float32)


def _captured(graph) -> set[str]:
    """Names a graph (and its nested graphs) reads without defining them."""
    defined = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    read = set()
    for node in graph.node:
        read.update(name for name in node.input if name)
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                read |= _captured(sub)
        defined.update(node.output)
    read.update(o.name for o in graph.output)
    return read - defined


REWRITES: dict[str, Callable] = {"constant_lhs": constant_lhs, "single_axis_slices": single_axis_slices,
                                 "subgraph_constants": subgraph_constants, "average_pool_pads": average_pool_pads}


def rewrite_sites(model, has_average_pools: bool = True) -> dict[str, int]:
    """Rewrite name -> how many places of ``model`` it would change (0: the rewrite does not apply)."""
    graph = model.graph
    values = _constant_values(graph, _slice_parameters(graph))
    outer = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    pools = 0
    if has_average_pools:
        shapes = onnx_shapes(model)
        pools = sum(1 for n in graph.node if _pool_correction(n, shapes) is not None)
    return {
        "constant_lhs": len(_constant_lhs_sites(graph)),
        "single_axis_slices": sum(1 for n in graph.node if len(_slice_parts(n, values) or ()) > 1),
        "subgraph_constants": sum(1 for n in graph.node for a in n.attribute
                                  for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs) if _captured(sub) & outer),
        "average_pool_pads": pools,
    }


def apply_rewrites(path, names) -> dict[str, int]:
    """Apply the named rewrites, in order, to the ONNX file at ``path`` in place; name -> nodes changed."""
    import onnx

    if not names:
        return {}
    model = onnx.load(str(path))
    counts = {name: REWRITES[name](model) for name in names}
    if any(counts.values()):
        large = model.ByteSize() > 1_800_000_000  # protobuf's 2 GB limit
        onnx.save_model(model, str(path), save_as_external_data=large, location=f"{path.name}.data")
    return counts


# ---- helpers -------------------------------------------------------------------------------------

def _constant_lhs_sites(graph) -> set[int]:
    constants = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return {index for index, n in enumerate(graph.node) if n.op_type in ("Sub", "Div") and len(n.input) == 2
            and n.input[0] in constants and n.input[1] not in constants}


def _fresh(name: str, taken: set) -> str:
    candidate, index = name, 1
    while candidate in taken:
        candidate, index = f"{name}_{index}", index + 1
    taken.add(candidate)
    return candidate


def _dtype_of(model, name: str):
    import numpy as np
    from onnx import helper

    for init in model.graph.initializer:
        if init.name == name:
            return helper.tensor_dtype_to_np_dtype(init.data_type)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            for attribute in node.attribute:
                if attribute.name == "value":
                    return helper.tensor_dtype_to_np_dtype(attribute.t.data_type)
    return np.float32


def onnx_shapes(model) -> dict[str, tuple]:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    graph = inferred.graph
    shapes = {}
    for value in list(graph.value_info) + list(graph.input) + list(graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


# ---- the remedies, in ladder order ---------------------------------------------------------------
