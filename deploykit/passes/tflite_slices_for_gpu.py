"""``slices_for_gpu`` on a .tflite flatbuffer: slices the GPU delegate refuses, written as slices it takes.

LiteRT's GPU delegate slices only tensors of rank 3 or 4, and no STRIDED_SLICE that drops an axis
(``shrink_axis_mask``). onnx2tf writes both: PP-OCRv4's recogniser (SVTR) picks q, k and v out of its
[3, 1, 8, 40, 15] attention tensor with rank-5 STRIDED_SLICEs (the ONNX graph's ``Gather(qkv, 0)``), six ops on which
the GPU graph is cut.
"""

from __future__ import annotations

from deploykit.formats.tflite import graph as tflite_graph
from deploykit.passes import tflite_edit as edit
from deploykit.passes.registry import PassResult, register_pass


@register_pass(
    "slices_for_gpu",
    stage="tflite",
    needed_for={("*", "tflite")},
    summary="A SLICE / STRIDED_SLICE of rank other than 3 or 4, or dropping an axis -> a rank-3/4 slice + RESHAPEs.",
)
def slices_for_gpu(data: bytes, context=None) -> PassResult:
    """A SLICE / STRIDED_SLICE of rank other than 3 or 4, or dropping an axis -> a rank-3/4 slice + RESHAPEs.

    Given:
        %q = STRIDED_SLICE(%qkv, begin=[0, 0, 0, 0, 0], end=[1, 0, 0, 0, 0], masks)   # %qkv [3, 1, 8, 40, 15]
        %c = STRIDED_SLICE(%x, begin=[0, 0, 0], end=[1, 1, 16], shrink_axis_mask=2)   # %x [1, 64, 16] -> [1, 16]
    Result:
        %v = RESHAPE(%qkv, [1, 3, 4800]);  %s = SLICE(%v, begin=[0, 0, 0], size=[1, 1, 4800])
        %q = RESHAPE(%s, [1, 1, 8, 40, 15])
        %s2 = STRIDED_SLICE(%x, begin=[0, 0, 0], end=[1, 1, 16]);  %c = RESHAPE(%s2, [1, 16])

    A slice of another rank than 3 or 4 applies when it cuts one axis (the others whole): that axis is sliced in
    the tensor's rank-3 view [before, axis, after]. A rank-3/4 STRIDED_SLICE with a shrink mask keeps its
    begin / end / strides and gets a RESHAPE to the shape it had. Float tensors of static shape, positive strides,
    no ellipsis or new-axis masks. Exact: the same elements in the same order.
    """
    g = tflite_graph.read(data)
    replacements, items, views = {}, [], {}
    for index in range(len(g.graph.operators)):
        kind = g.op_type(index)
        if kind not in ("SLICE", "STRIDED_SLICE"):
            continue
        found = _selection(g, index, kind)
        if found is None:
            continue
        x, dims, parts, shrink = found
        out = int(g.graph.operators[index].outputs[0])
        out_dims, label = edit.shape(g, out), g.tensor_name(out)
        cut = [axis for axis, part in enumerate(parts) if part != (0, dims[axis], 1)]
        if len(dims) in (3, 4) and shrink:
            ops = _without_shrink(g, x, dims, parts, out_dims, out, label)
        elif len(dims) not in (3, 4) and len(cut) == 1:
            axis = cut[0]
            ops = edit.slice_axis(g, x, dims, axis, *parts[axis], out_dims, out, label, views)
        else:
            continue
        replacements[index] = ops
        items.append(f"{kind} {label} (rank {len(dims)}{', shrink_axis_mask' if shrink else ''}) -> "
                     + " + ".join(g.op_types[op.opcodeIndex] for op in ops))
    if not items:
        return PassResult(data)
    edit.replace_ops(g, replacements)
    return PassResult(tflite_graph.write(g), tuple(items))


def _selection(g, index: int, kind: str):
    """(input, shape, [(start, stop, step)] per axis, shrink mask) of a slice the GPU delegate refuses, else None."""
    op = g.graph.operators[index]
    inputs = [int(t) for t in op.inputs]
    x = inputs[0]
    dims, out_dims = edit.shape(g, x), edit.shape(g, int(op.outputs[0]))
    if dims is None or out_dims is None or not dims or g.graph.tensors[x].type not in edit.FLOATS:
        return None
    values = [edit.constant(g, t) for t in inputs[1:]]
    if any(v is None or v.ndim != 1 or v.size != len(dims) for v in values):
        return None
    if kind == "SLICE":
        if len(values) != 2 or len(dims) in (3, 4):
            return None
        parts = []
        for dim, begin, size in zip(dims, values[0].tolist(), values[1].tolist()):
            stop = dim if size == -1 else begin + size
            if not 0 <= begin <= stop <= dim:
                return None
            parts.append((begin, stop, 1))
        return x, dims, parts, 0
    options = op.builtinOptions
    masks = {name: int(getattr(options, name, 0) or 0) for name in
             ("beginMask", "endMask", "ellipsisMask", "newAxisMask", "shrinkAxisMask")}
    if len(values) != 3 or masks["ellipsisMask"] or masks["newAxisMask"] or getattr(options, "offset", False):
        return None
    shrink = masks["shrinkAxisMask"]
    if len(dims) in (3, 4) and not shrink:
        return None
    parts = []
    for axis, (dim, begin, end, step) in enumerate(zip(dims, *(v.tolist() for v in values))):
        if step < 1:
            return None
        start = 0 if masks["beginMask"] >> axis & 1 else min(max(begin + dim if begin < 0 else begin, 0), dim)
        if shrink >> axis & 1:
            stop, step = start + 1, 1
            if start >= dim:
                return None
        else:
            stop = dim if masks["endMask"] >> axis & 1 else min(max(end + dim if end < 0 else end, 0), dim)
        if stop <= start:
            return None
        parts.append((start, stop, step))
    expected = [len(range(*part)) for axis, part in enumerate(parts) if not shrink >> axis & 1]
    return (x, dims, parts, shrink) if list(out_dims) == expected else None


def _without_shrink(g, x, dims, parts, out_dims, out, label) -> list:
    sliced = [len(range(*part)) for part in parts]
    kept = edit.new_tensor(g, f"{label}/slice", sliced, g.graph.tensors[x].type)
    slice_op = edit.new_op(g, "STRIDED_SLICE", [x, edit.int32_constant(g, f"{label}/begin", [p[0] for p in parts]),
                                                edit.int32_constant(g, f"{label}/end", [p[1] for p in parts]),
                                                edit.int32_constant(g, f"{label}/strides", [p[2] for p in parts])],
                           [kept], "StridedSliceOptions")
    return [slice_op, edit.reshape(g, kept, out_dims, out, f"{label}/out")[0]]
