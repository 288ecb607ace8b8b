"""Queries over an ONNX graph that the exact ONNX rewrites share: constants, Slice parameters, captured names,
static shapes, fresh names, where each rewrite applies; and the 3-D pool split both pool rewrites make."""

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
    return exclusion_correction(shape[2:], kernel, list(attrs.get("strides", [1] * len(kernel))), pads)


def exclusion_correction(spatial, kernel, strides, pads):
    """kernel cells / real (unpadded) cells under each output window of a pool over ``spatial`` with explicit
    ``pads`` (begins then ends), as a [1, 1, *out] float32 map; None where every window is whole. The count of a
    window's real cells is the product of its per-axis counts."""
    rank = len(kernel)
    per_axis = []
    for axis in range(rank):
        size, k, s, begin, end = spatial[axis], kernel[axis], strides[axis], pads[axis], pads[axis + rank]
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


def pool3d_plan(node, shapes):
    """How a MaxPool / AveragePool over three spatial axes splits into a 2-D pool over (H, W) and a 2-D pool
    over (D, 1) (see max_pool3d_as_2d), or None where the split would not be exact or the shapes are unknown.

    Both pools are separable: a window is a box, its maximum is the maximum over depth of the per-slice
    maxima, and its pad-including sum (and divisor) is the depth-sum (product) of per-slice ones. A pool
    that excludes pads is the pad-including one times ``correction`` (real cells per box are a product too).
    AveragePool's ceil_mode (whose divisor at a clipped edge differs between runtimes) and dilations are
    left alone, as is MaxPool's second output (Indices).
    """
    from types import SimpleNamespace

    from onnx import helper

    if node.op_type not in ("MaxPool", "AveragePool") or len([o for o in node.output if o]) != 1:
        return None
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    kernel = [int(k) for k in attrs.get("kernel_shape", [])]
    shape, out = shapes.get(node.input[0]), shapes.get(node.output[0])
    if len(kernel) != 3 or shape is None or out is None or len(shape) != 5 or len(out) != 5:
        return None
    strides = [int(s) for s in attrs.get("strides", [1] * 3)]
    dilations = [int(d) for d in attrs.get("dilations", [1] * 3)]
    ceil_mode = int(attrs.get("ceil_mode", 0))
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    if auto_pad == "NOTSET":
        pads = [int(p) for p in attrs.get("pads", [0] * 6)]
    elif auto_pad == "VALID":
        pads = [0] * 6
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        totals = [max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
                  for size, k, s, d in zip(shape[2:], kernel, strides, dilations)]
        small = [t // 2 for t in totals]
        large = [t - t // 2 for t in totals]
        pads = small + large if auto_pad == "SAME_UPPER" else large + small
    else:
        return None
    correction = None
    if node.op_type == "AveragePool":
        if ceil_mode or any(d != 1 for d in dilations):
            return None
        if any(pads) and not attrs.get("count_include_pad", 0):
            correction = exclusion_correction(shape[2:], kernel, strides, pads)
    return SimpleNamespace(op_type=node.op_type, shape=tuple(shape), out=tuple(out), kernel=kernel, strides=strides,
                           pads=pads, dilations=dilations, ceil_mode=ceil_mode, correction=correction)


def split_pool3d(model, op_type: str) -> int:
    """Every ``op_type`` pool over three spatial axes that :func:`pool3d_plan` splits, rewritten in place as
    Reshape -> 2-D pool over (H, W) -> Reshape -> 2-D pool over (D, 1) -> Reshape (-> Mul by the pad
    correction); a pool whose kernel, stride and pads are 1, 1, 0 on one side is left out. Nodes changed."""
    from onnx import NodeProto

    graph = model.graph
    shapes = onnx_shapes(model)
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    nodes, changed = [], 0
    for node in graph.node:
        plan = pool3d_plan(node, shapes) if node.op_type == op_type else None
        if plan is None:
            kept = NodeProto()
            kept.CopyFrom(node)
            nodes.append(kept)
            continue
        nodes.extend(_split_pool(plan, node, graph, taken))
        changed += 1
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
    return changed


def _split_pool(plan, node, graph, taken) -> list:
    """The nodes replacing one pool (see split_pool3d); their constants are added to ``graph``'s initializers."""
    from onnx import helper, numpy_helper

    base = node.name or node.output[0]
    (n, c, d, h, w), (_, _, d2, h2, w2) = plan.shape, plan.out
    kd, kh, kw = plan.kernel
    sd, sh, sw = plan.strides
    dd, dh, dw = plan.dilations
    pd0, ph0, pw0, pd1, ph1, pw1 = plan.pads
    nodes = []

    def reshape(tensor, dims, label, out=None):
        target = fresh(f"{base}/{label}_shape", taken)
        graph.initializer.append(numpy_helper.from_array(np.array(dims, np.int64), target))
        out = out or fresh(f"{base}/{label}", taken)
        nodes.append(helper.make_node("Reshape", [tensor, target], [out], name=fresh(f"{base}/{label}", taken)))
        return out

    def pool(tensor, label, kernel, strides, pads, dilations):
        attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads}
        if plan.op_type == "MaxPool":  # only what differs from the defaults, which every opset has
            attrs.update({"dilations": dilations} if any(d != 1 for d in dilations) else {})
            attrs.update({"ceil_mode": 1} if plan.ceil_mode else {})
        else:
            attrs["count_include_pad"] = int(any(pads))  # leaving pads out is the correction's job
        out = fresh(f"{base}/{label}", taken)
        nodes.append(helper.make_node(plan.op_type, [tensor], [out], name=fresh(f"{base}/{label}", taken), **attrs))
        return out

    current = node.input[0]
    if (kh, kw, sh, sw, dh, dw, ph0, pw0, ph1, pw1) != (1, 1, 1, 1, 1, 1, 0, 0, 0, 0):
        current = reshape(current, [n, c * d, h, w], "slices")
        current = pool(current, "pool_hw", [kh, kw], [sh, sw], [ph0, pw0, ph1, pw1], [dh, dw])
    if (kd, sd, dd, pd0, pd1) != (1, 1, 1, 0, 0):
        current = reshape(current, [n, c, d, h2 * w2], "columns")
        current = pool(current, "pool_depth", [kd, 1], [sd, 1], [pd0, 0, pd1, 0], [dd, 1])
    if plan.correction is None:
        reshape(current, [n, c, d2, h2, w2], "volume", out=node.output[0])
        return nodes
    current = reshape(current, [n, c, d2, h2, w2], "volume")
    factor = fresh(f"{base}/pad_correction", taken)
    graph.initializer.append(numpy_helper.from_array(plan.correction, factor))
    nodes.append(helper.make_node("Mul", [current, factor], [node.output[0]], name=fresh(f"{base}/corrected", taken)))
    return nodes


MAX_TILE_COPIES = 64  # copies per axis tile_as_concat writes into one Concat; a larger repeat keeps its Tile


def tile_sites(graph) -> dict[int, list[int]]:
    """node index -> repeats of the Tiles tile_as_concat rewrites: constant repeats over a tensor of rank 3 or
    more (the ranks onnx2tf lays out channel-last), each between 1 and MAX_TILE_COPIES, one above 1."""
    candidates = {index: n.input[1] for index, n in enumerate(graph.node) if n.op_type == "Tile" and len(n.input) == 2}
    values = constant_values(graph, set(candidates.values())) if candidates else {}
    sites = {}
    for index, name in candidates.items():
        repeats = values.get(name)
        if repeats is None or repeats.ndim != 1 or repeats.size < 3:
            continue
        repeats = [int(r) for r in repeats]
        if all(1 <= r <= MAX_TILE_COPIES for r in repeats) and any(r > 1 for r in repeats):
            sites[index] = repeats
    return sites


def drop_unread_constants(graph, names) -> None:
    """Remove the Constant nodes and initializers among ``names`` that no node (nor nested graph) reads any more."""
    read = {name for n in graph.node for name in n.input} | {o.name for o in graph.output}
    for node in graph.node:
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                read |= captured(sub)
    unread = set(names) - read
    if not unread:
        return
    kept = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] in unread)]
    if len(kept) != len(graph.node):
        del graph.node[:]
        graph.node.extend(kept)
    for collection in (graph.initializer, graph.input):
        for entry in [e for e in collection if e.name in unread]:
            collection.remove(entry)


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


def _inferred_values(model) -> list:
    """Every value_info, input and output of ``model`` after ONNX shape inference (as declared where it fails)."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    graph = inferred.graph
    return list(graph.value_info) + list(graph.input) + list(graph.output)


def onnx_element_types(model) -> dict[str, int]:
    return {value.name: value.type.tensor_type.elem_type for value in _inferred_values(model)}


def onnx_shapes(model) -> dict[str, tuple]:
    shapes = {}
    for value in _inferred_values(model):
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    return shapes
