"""Small edits of a .tflite flatbuffer that the exact TFLite rewrites share: constants read and written, new
tensors and operators, and one axis of a tensor sliced through a rank-3 view.

Every function works on a ``formats.tflite.graph.Graph`` (subgraph 0); new operators are collected by the
caller and put where the op they replace was, so the operator list stays in execution order.
"""

from __future__ import annotations

import numpy as np

from deploykit.formats import litert_facade

# TensorType -> numpy dtype, for the types these rewrites read or write.
NUMPY = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_, 7: np.int16, 9: np.int8}
FLOATS = (0, 1)  # FLOAT32, FLOAT16


def schema():
    return litert_facade.schema()


def shape(g, t: int) -> tuple[int, ...] | None:
    """The static shape of tensor ``t``, None when a dimension is dynamic (-1 in its shape signature)."""
    tensor = g.graph.tensors[t]
    dims = tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))
    signature = tensor.shapeSignature
    if signature is not None and any(int(d) < 0 for d in signature):
        return None
    return dims


def constant(g, t: int) -> np.ndarray | None:
    """The value of a constant tensor (stored in its buffer, not written by any op), else None."""
    if t < 0 or t in g.producer:
        return None
    tensor = g.graph.tensors[t]
    data = g.model.buffers[tensor.buffer].data
    dtype = NUMPY.get(tensor.type)
    if data is None or dtype is None or tensor.quantization is not None and tensor.quantization.scale is not None:
        return None
    dims = shape(g, t)
    if dims is None:
        return None
    values = np.frombuffer(bytes(bytearray(data)), dtype=dtype)
    return values.reshape(dims) if values.size == int(np.prod(dims, dtype=np.int64)) else None


def options(g, index: int):
    return g.graph.operators[index].builtinOptions


def opcode(g, name: str, version: int = 1) -> int:
    """The index of builtin operator ``name`` in the model's operator codes, added when missing."""
    s = schema()
    code = getattr(s.BuiltinOperator, name)
    for index, entry in enumerate(g.model.operatorCodes):
        if max(entry.builtinCode, entry.deprecatedBuiltinCode) == code:
            return index
    entry = s.OperatorCodeT()
    entry.builtinCode, entry.deprecatedBuiltinCode, entry.version = code, min(code, 127), version
    g.model.operatorCodes.append(entry)
    g.op_types.append(name)
    return len(g.model.operatorCodes) - 1


def new_tensor(g, name: str, dims, type_: int, data: np.ndarray | None = None) -> int:
    """A new tensor (a constant when ``data`` is given) with a name no other tensor has."""
    s = schema()
    taken = {g.tensor_name(i) for i in range(len(g.graph.tensors))}
    unique, n = name, 1
    while unique in taken:
        unique, n = f"{name}_{n}", n + 1
    buffer = s.BufferT()
    if data is not None:
        buffer.data = np.frombuffer(np.ascontiguousarray(data, dtype=NUMPY[type_]).tobytes(), np.uint8)
    g.model.buffers.append(buffer)
    tensor = s.TensorT()
    tensor.name, tensor.shape, tensor.type, tensor.buffer = unique.encode(), [int(d) for d in dims], type_, \
        len(g.model.buffers) - 1
    g.graph.tensors.append(tensor)
    return len(g.graph.tensors) - 1


def int32_constant(g, name: str, values) -> int:
    values = np.asarray(values, dtype=np.int32)
    return new_tensor(g, name, values.shape, 2, values)


def new_op(g, name: str, inputs, outputs, options_name: str | None = None, **fields):
    """An OperatorT of builtin ``name`` with its options table ``options_name`` (fields set from ``fields``)."""
    s = schema()
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = opcode(g, name), [int(t) for t in inputs], [int(t) for t in outputs]
    if options_name:
        table = getattr(s, f"{options_name}T")()
        for key, value in fields.items():
            setattr(table, key, value)
        op.builtinOptionsType, op.builtinOptions = getattr(s.BuiltinOptions, options_name), table
    return op


def reshape(g, x: int, dims, out: int | None, label: str):
    """(RESHAPE op, its output tensor): ``x`` read as ``dims`` (into ``out`` when given)."""
    dims = [int(d) for d in dims]
    if out is None:
        out = new_tensor(g, f"{label}/reshaped", dims, g.graph.tensors[x].type)
    target = int32_constant(g, f"{label}/shape", dims)
    return new_op(g, "RESHAPE", [x, target], [out], "ReshapeOptions", newShape=dims), out


def slice_axis(g, x: int, dims, axis: int, start: int, stop: int, step: int, out_dims, out: int, label: str,
               views: dict | None = None) -> list:
    """Ops that write ``x[..., start:stop:step, ...]`` (on ``axis`` of static shape ``dims``) into ``out`` of shape
    ``out_dims``: a SLICE (a STRIDED_SLICE when ``step`` > 1) of ``x`` itself when it has rank 3 or 4, else of its
    rank-3 view [before, axis, after]; a RESHAPE to ``out_dims`` when the slice's own shape differs. The same
    elements in the same order: the bytes of ``out`` do not change. ``views`` ((tensor, view) -> view tensor) lets
    slices of one tensor share its view (q, k and v out of one attention tensor): the first one writes it."""
    dims = [int(d) for d in dims]
    count = len(range(start, stop, step))
    ops = []
    if len(dims) in (3, 4):
        view, k = dims, axis
    else:
        view = [int(np.prod(dims[:axis], dtype=np.int64)), dims[axis], int(np.prod(dims[axis + 1:], dtype=np.int64))]
        k = 1
        key = (x, tuple(view))
        if views is not None and key in views:
            x = views[key]
        else:
            op, viewed = reshape(g, x, view, None, f"{label}/view")
            ops.append(op)
            if views is not None:
                views[key] = viewed
            x = viewed
    sliced = list(view)
    sliced[k] = count
    direct = sliced == [int(d) for d in out_dims]
    target = out if direct else new_tensor(g, f"{label}/slice", sliced, g.graph.tensors[x].type)
    begin = [0] * len(view)
    begin[k] = start
    if step == 1:
        ops.append(new_op(g, "SLICE", [x, int32_constant(g, f"{label}/begin", begin),
                                       int32_constant(g, f"{label}/size", sliced)], [target], "SliceOptions"))
    else:
        end = list(view)
        end[k] = start + step * (count - 1) + 1
        strides = [1] * len(view)
        strides[k] = step
        ops.append(new_op(g, "STRIDED_SLICE", [x, int32_constant(g, f"{label}/begin", begin),
                                               int32_constant(g, f"{label}/end", end),
                                               int32_constant(g, f"{label}/strides", strides)],
                          [target], "StridedSliceOptions"))
    if not direct:
        ops.append(reshape(g, target, out_dims, out, f"{label}/out")[0])
    return ops


def replace_ops(g, replacements: dict[int, list]) -> None:
    """Put each op index's replacement ops where it was (tensors only the old op read stay, unread, in the file)."""
    operators = []
    for index, op in enumerate(g.graph.operators):
        operators.extend(replacements.get(index, [op]))
    g.graph.operators = operators
    g.refresh()


def progression(values: np.ndarray) -> tuple[int, int] | None:
    """(first, step) of a non-empty run of integers first, first + step, ... with step >= 1, else None."""
    flat = [int(v) for v in np.asarray(values).ravel()]
    if not flat:
        return None
    if len(flat) == 1:
        return flat[0], 1
    step = flat[1] - flat[0]
    if step < 1 or any(b - a != step for a, b in zip(flat, flat[1:])):
        return None
    return flat[0], step
