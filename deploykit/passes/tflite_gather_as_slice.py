"""``gather_as_slice`` on a .tflite flatbuffer: a GATHER whose indices are constant and evenly spaced is a slice.

Exporters write ``x[:, 0]`` and ``index_select(x, 1, tensor([4, 5, 6, 7]))`` as an ONNX Gather, and onnx2tf
keeps it a GATHER. LiteRT's GPU delegate takes a GATHER only with one-dimensional INT32 indices ("Only support 1D
indices", "Only accept INT32 indices": a scalar index, as ``x[:, 0]`` has, or the INT64 indices the ONNX graph
carried), so the graph is cut there and the op runs on the CPU. A SLICE takes the same elements.
"""

from __future__ import annotations

from deploykit.formats.tflite import graph as tflite_graph
from deploykit.passes import tflite_edit as edit
from deploykit.passes.registry import PassResult, register_pass


@register_pass(
    "gather_as_slice",
    stage="tflite",
    needed_for={("*", "tflite")},
    summary="A GATHER by constant, evenly spaced indices -> SLICE (+ RESHAPE for a scalar index).",
)
def gather_as_slice(data: bytes, context=None) -> PassResult:
    """A GATHER by constant, evenly spaced indices -> SLICE (+ RESHAPE for a scalar index).

    Given:
        %y = GATHER(%x, indices=[4, 5, 6, 7], axis=1)        # %x [1, 64, 16] float
        %c = GATHER(%x, indices=0, axis=1)                   # a scalar index: %c [1, 16]
    Result:
        %y = SLICE(%x, begin=[0, 4, 0], size=[1, 4, 16])
        %s = SLICE(%x, begin=[0, 0, 0], size=[1, 1, 16]);  %c = RESHAPE(%s, [1, 16])

    Indices i, i + k, i + 2k, ... with k > 1 give a STRIDED_SLICE. A tensor of another rank than 3 or 4 (which the
    GPU delegate slices) is sliced through its rank-3 view [before, axis, after] between two RESHAPEs. Applies to
    float tensors of static shape, batch_dims 0, indices of rank 0 or 1 inside the axis. Exact: the same elements in
    the same order, the output's bytes unchanged.
    """
    g = tflite_graph.read(data)
    replacements, items, views = {}, [], {}
    for index in range(len(g.graph.operators)):
        if g.op_type(index) != "GATHER":
            continue
        found = _slice_of(g, index)
        if found is None:
            continue
        x, dims, axis, start, step, count = found
        out = int(g.graph.operators[index].outputs[0])
        out_dims = edit.shape(g, out)
        label = g.tensor_name(out)
        replacements[index] = edit.slice_axis(g, x, dims, axis, start, start + step * count, step, out_dims, out, label,
                                              views)
        indices = f"{start}" if count == 1 else f"{start}:{start + step * count}" + (f":{step}" if step > 1 else "")
        items.append(f"GATHER {label} (axis {axis}, indices {indices}) -> "
                     + " + ".join(g.op_types[op.opcodeIndex] for op in replacements[index]))
    if not items:
        return PassResult(data)
    edit.replace_ops(g, replacements)
    return PassResult(tflite_graph.write(g), tuple(items))


def _slice_of(g, index: int):
    """(params, shape, axis, first index, step, count) of a GATHER this pass rewrites, else None."""
    op = g.graph.operators[index]
    inputs = [int(t) for t in op.inputs]
    if len(inputs) != 2 or len(op.outputs) != 1:
        return None
    x, indices = inputs
    options = op.builtinOptions
    axis, batch_dims = int(getattr(options, "axis", 0) or 0), int(getattr(options, "batchDims", 0) or 0)
    dims, values = edit.shape(g, x), edit.constant(g, indices)
    out_dims = edit.shape(g, int(op.outputs[0]))
    if dims is None or out_dims is None or values is None or batch_dims != 0 or values.ndim > 1:
        return None
    if g.graph.tensors[x].type not in edit.FLOATS or values.dtype.kind not in "iu":
        return None
    axis = axis + len(dims) if axis < 0 else axis
    if not 0 <= axis < len(dims):
        return None
    run = edit.progression(values)
    if run is None:
        return None
    start, step = run
    count = values.size
    if start < 0 or start + step * (count - 1) >= dims[axis]:
        return None
    expected = list(dims[:axis]) + list(values.shape) + list(dims[axis + 1:])
    if list(out_dims) != expected:
        return None
    return x, dims, axis, start, step, count
