"""Queries over an ONNX graph that the exact ONNX rewrites share: constants, Slice parameters, captured names,
static shapes, fresh names."""

from __future__ import annotations

import numpy as np


def slice_parts(node, values):
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


def constant_values(graph, names=None) -> dict:
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


def slice_parameters(graph) -> set[str]:
    return {name for n in graph.node if n.op_type == "Slice" for name in n.input[1:] if name}


def pool_correction(node, shapes):
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


def captured(graph) -> set[str]:
    """Names a graph (and its nested graphs) reads without defining them."""
    defined = {i.name for i in graph.input} | {i.name for i in graph.initializer}
    read = set()
    for node in graph.node:
        read.update(name for name in node.input if name)
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                read |= captured(sub)
        defined.update(node.output)
    read.update(o.name for o in graph.output)
    return read - defined


def constant_lhs_sites(graph) -> set[int]:
    constants = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return {index for index, n in enumerate(graph.node) if n.op_type in ("Sub", "Div") and len(n.input) == 2
            and n.input[0] in constants and n.input[1] not in constants}


def scalar_divisor_sites(graph) -> set[int]:
    """Div nodes that divide a computed tensor by one non-zero float constant (see scalar_division)."""
    constants = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    candidates = {index: n.input[1] for index, n in enumerate(graph.node) if n.op_type == "Div" and len(n.input) == 2
                  and n.input[1] in constants and n.input[0] not in constants}
    values = constant_values(graph, set(candidates.values())) if candidates else {}
    return {index for index, name in candidates.items() if name in values and values[name].size == 1
            and values[name].dtype.kind == "f" and float(values[name].ravel()[0]) != 0.0}


def fresh(name: str, taken: set) -> str:
    candidate, index = name, 1
    while candidate in taken:
        candidate, index = f"{name}_{index}", index + 1
    taken.add(candidate)
    return candidate


def dtype_of(model, name: str):
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
