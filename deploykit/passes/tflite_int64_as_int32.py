"""``int64_as_int32`` on a .tflite flatbuffer: INT64 values that provably fit in INT32 carried as INT32.

PyTorch's integers are int64, and so are ONNX's indices and casts (``.long()``, ``torch.arange``,
``index_select``'s indices); onnx2tf keeps the type. LiteRT's GPU delegate refuses every CAST to or from INT64 ("Not
supported Cast case") and every GATHER whose indices are not INT32, so each one cuts the graph and runs on the CPU
(Ultralytics users meet it as "CAST: Tensor type(INT64) is not supported").
"""

from __future__ import annotations

import math

import numpy as np

from deploykit.formats.tflite import graph as tflite_graph
from deploykit.passes import tflite_edit as edit
from deploykit.passes.registry import PassResult, register_pass

INT32, INT64, BOOL = 2, 4, 6
LIMIT = 2.0 ** 31  # a float truncated toward zero fits in INT32 when it lies strictly inside (-LIMIT - 1, LIMIT)
# Value ranges of an op's output whatever its input (activations and their fused forms).
BOUNDED = {"LOGISTIC": (0.0, 1.0), "TANH": (-1.0, 1.0), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0),
           "RELU_0_TO_1": (0.0, 1.0)}
FUSED = {"RELU": (0.0, math.inf), "RELU6": (0.0, 6.0), "RELU_N1_TO_1": (-1.0, 1.0), "RELU_0_TO_1": (0.0, 1.0),
         "TANH": (-1.0, 1.0), "SIGN_BIT": (-math.inf, math.inf), "NONE": (-math.inf, math.inf)}
# Ops whose output holds only values of their first input (moved, selected or reduced to an extreme or a mean).
SAME_VALUES = ("RESHAPE", "TRANSPOSE", "SQUEEZE", "EXPAND_DIMS", "SLICE", "STRIDED_SLICE", "GATHER", "REDUCE_MAX",
               "REDUCE_MIN", "MEAN", "MAX_POOL_2D", "AVERAGE_POOL_2D", "PACK", "CONCATENATION", "BROADCAST_TO")
INTEGER_RANGE = {BOOL: (0.0, 1.0), 3: (0.0, 255.0), 9: (-128.0, 127.0), 7: (-32768.0, 32767.0),
                 INT32: (-LIMIT, LIMIT - 1)}
# Consumers that read an INT32 tensor exactly as the INT64 one holding the same values: casts, and index inputs.
INDEX_INPUTS = {"GATHER": 1, "GATHER_ND": 1, "EMBEDDING_LOOKUP": 0}


@register_pass(
    "int64_as_int32",
    stage="tflite",
    needed_for={("*", "tflite")},
    summary="A CAST to INT64 whose values fit in INT32 (and constant INT64 gather indices) -> INT32.",
)
def int64_as_int32(data: bytes, context=None) -> PassResult:
    """A CAST to INT64 whose values fit in INT32 (and constant INT64 gather indices) -> INT32.

    Given:
        %s = LOGISTIC(%x);  %l = MUL(%s, 7.0)
        %i = CAST(%l) -> INT64;   %f = CAST(%i) -> FLOAT32          # (sigmoid(x) * 7).long().float()
        %y = GATHER(%t, indices=<INT64 [3, 1, 2]>)
    Result:
        %i = CAST(%l) -> INT32;   %f = CAST(%i) -> FLOAT32
        %y = GATHER(%t, indices=<INT32 [3, 1, 2]>)

    A CAST to INT64 qualifies when its input is a narrower integer or a bool, or a float whose range, read back
    through the ops that bound it (sigmoid, tanh, the ReLUs and fused activations, min / max, add / sub / mul with
    bounded operands, reshapes and slices), lies inside INT32; and when its output only feeds other CASTs and index
    inputs (GATHER, GATHER_ND, EMBEDDING_LOOKUP), which read INT32 as they read INT64, and is no model output. Exact:
    truncating a float inside INT32's range gives the same integer in either type (for every finite input; NaN has
    no integer value in either).
    """
    g = tflite_graph.read(data)
    items = []
    for index in range(len(g.graph.operators)):
        if g.op_type(index) != "CAST":
            continue
        op = g.graph.operators[index]
        source, out = int(op.inputs[0]), int(op.outputs[0])
        if g.graph.tensors[out].type != INT64 or not _reads_as_int32(g, out):
            continue
        bounds = _bounds(g, source, 0)
        if bounds is None or not (bounds[0] > -LIMIT - 1 and bounds[1] < LIMIT):
            continue
        g.graph.tensors[out].type = INT32
        if op.builtinOptions is not None and hasattr(op.builtinOptions, "outDataType"):
            op.builtinOptions.outDataType = INT32
        for user in g.consumers.get(out, []):
            user_options = g.graph.operators[user].builtinOptions
            if g.op_type(user) == "CAST" and getattr(user_options, "inDataType", None) == INT64:
                user_options.inDataType = INT32
        items.append(f"CAST {g.tensor_name(out)}: {_type(g, source)} -> INT32 (values in "
                     f"[{_number(bounds[0])}, {_number(bounds[1])}])")
    for t, tensor in enumerate(g.graph.tensors):
        values = edit.constant(g, t) if tensor.type == INT64 else None
        if values is None or not _reads_as_int32(g, t) or values.size == 0:
            continue
        if values.min() < -LIMIT or values.max() >= LIMIT:
            continue
        buffer = edit.schema().BufferT()
        buffer.data = np.frombuffer(values.astype(np.int32).tobytes(), np.uint8)
        g.model.buffers.append(buffer)
        tensor.buffer, tensor.type = len(g.model.buffers) - 1, INT32
        items.append(f"constant {g.tensor_name(t)}: INT64 indices -> INT32")
    if not items:
        return PassResult(data)
    return PassResult(tflite_graph.write(g), tuple(items))


def _reads_as_int32(g, t: int) -> bool:
    """Whether every reader of ``t`` gives the same result on INT32 values (and ``t`` is no model output)."""
    users = g.consumers.get(t, [])
    if not users or t in g.graph_outputs:
        return False
    for user in users:
        kind, inputs = g.op_type(user), [int(i) for i in g.graph.operators[user].inputs]
        if kind == "CAST" and inputs[0] == t:
            continue
        position = INDEX_INPUTS.get(kind)
        if position is None or position >= len(inputs) or inputs[position] != t or inputs.count(t) != 1:
            return False
    return True


def _bounds(g, t: int, depth: int) -> tuple[float, float] | None:
    """A (low, high) range holding every value of ``t`` (infinite ends when unbounded), None when unknown."""
    tensor = g.graph.tensors[t]
    if tensor.type in INTEGER_RANGE:
        return INTEGER_RANGE[tensor.type]
    if tensor.type not in edit.FLOATS or depth > 48:
        return None
    values = edit.constant(g, t)
    if values is not None:
        if values.size == 0 or not np.all(np.isfinite(values)):
            return None
        return float(values.min()), float(values.max())
    if t not in g.producer:
        return None
    index = g.producer[t]
    kind, op = g.op_type(index), g.graph.operators[index]
    inputs = [int(i) for i in op.inputs if int(i) >= 0]
    if kind in BOUNDED:
        return BOUNDED[kind]
    parts = [_bounds(g, i, depth + 1) for i in inputs]
    if kind in SAME_VALUES:
        data = parts if kind in ("PACK", "CONCATENATION") else parts[:1]
        if not data or any(p is None for p in data):
            return None
        found = (min(p[0] for p in data), max(p[1] for p in data))
    elif kind == "RELU":
        found = None if parts[0] is None else (max(parts[0][0], 0.0), max(parts[0][1], 0.0))
    elif kind in ("FLOOR", "CEIL", "ROUND"):
        found = None if parts[0] is None else (math.floor(parts[0][0]), math.ceil(parts[0][1]))
    elif kind in ("ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM") and len(parts) == 2 and None not in parts:
        found = _combine(kind, parts[0], parts[1])
    else:
        return None
    if found is None:
        return None
    fused = g.fused_activation(index)
    if fused in FUSED:
        low, high = FUSED[fused]
        found = (min(max(found[0], low), high), max(min(found[1], high), low))
    return found


def _combine(kind: str, a, b):
    if kind == "ADD":
        low, high = a[0] + b[0], a[1] + b[1]
    elif kind == "SUB":
        low, high = a[0] - b[1], a[1] - b[0]
    elif kind == "MAXIMUM":
        low, high = max(a[0], b[0]), max(a[1], b[1])
    elif kind == "MINIMUM":
        low, high = min(a[0], b[0]), min(a[1], b[1])
    else:
        products = [x * y for x in a for y in b]
        if any(math.isnan(p) for p in products):  # 0 * inf: no bound
            return None
        low, high = min(products), max(products)
    return None if math.isnan(low) or math.isnan(high) else (low, high)


def _type(g, t: int) -> str:
    return {0: "FLOAT32", 1: "FLOAT16", 2: "INT32", 3: "UINT8", 6: "BOOL", 7: "INT16", 9: "INT8"}.get(
        g.graph.tensors[t].type, str(g.graph.tensors[t].type))


def _number(value: float) -> str:
    return f"{value:g}"
