"""One helper for pass tests: op types before and after, outputs unchanged within float tolerance,
interface names unchanged; plus flatbuffer edits that undo what converters fuse (to make graphs the
passes and the checker must handle)."""

from __future__ import annotations

from collections import Counter

import numpy as np


def assert_pass(before_ops, after_ops, *, removed: dict, added: dict | None = None, outputs=None, rtol=1e-5):
    """``removed``/``added``: op type -> count difference; ``outputs``: (before, after) arrays."""
    before, after = Counter(before_ops), Counter(after_ops)
    for op, count in removed.items():
        assert before[op] - after[op] == count, f"{op}: {before[op]} -> {after[op]}, expected {count} fewer"
    for op, count in (added or {}).items():
        assert after[op] - before[op] == count, f"{op}: {before[op]} -> {after[op]}, expected {count} more"
    if outputs is not None:
        a, b = (np.asarray(x, dtype=np.float64) for x in outputs)
        assert a.shape == b.shape
        scale = max(float(np.abs(a).max()), 1e-6)
        assert float(np.abs(a - b).max()) <= rtol * scale + 1e-7, f"outputs moved by {np.abs(a - b).max()} (scale {scale})"


def tflite_ops(data: bytes) -> list[str]:
    from deploykit.formats.tflite import graph as tflite_graph

    graph = tflite_graph.read(data)
    return [graph.op_type(i) for i in range(len(graph.graph.operators))]


def run_tflite_bytes(data: bytes, feeds: dict) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=data).get_signature_runner()
    return next(iter(runner(**feeds).values()))


def _new_tensor(model, graph, like: int, name: str, data: np.ndarray | None = None) -> int:
    import copy

    from ai_edge_litert import schema_py_generated as schema

    tensor = copy.deepcopy(graph.tensors[like]) if data is None else schema.TensorT()
    buffer = schema.BufferT()
    if data is not None:
        tensor.shape, tensor.type = list(data.shape), 0
        buffer.data = np.frombuffer(data.astype(np.float32).tobytes(), np.uint8)
    tensor.name = name.encode()
    tensor.buffer = len(model.buffers)
    model.buffers.append(buffer)
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _opcode(model, name: str) -> int:
    from ai_edge_litert import schema_py_generated as schema

    code = getattr(schema.BuiltinOperator, name)
    for index, existing in enumerate(model.operatorCodes):
        if max(existing.builtinCode, existing.deprecatedBuiltinCode) == code:
            return index
    entry = schema.OperatorCodeT()
    entry.builtinCode, entry.deprecatedBuiltinCode, entry.version = code, min(code, 127), 1
    model.operatorCodes.append(entry)
    return len(model.operatorCodes) - 1


def _insert_after(model, graph, index: int, ops: list[tuple[str, list]]) -> None:
    """Insert ops after operator ``index``: each (type, extra inputs); the chain ends in its old output."""
    from ai_edge_litert import schema_py_generated as schema

    conv = graph.operators[index]
    final = int(conv.outputs[0])
    current = _new_tensor(model, graph, final, f"split_{index}_0")
    conv.outputs = [current]
    new_ops = []
    for n, (kind, extra) in enumerate(ops):
        out = final if n == len(ops) - 1 else _new_tensor(model, graph, final, f"split_{index}_{n + 1}")
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = _opcode(model, kind), [current] + extra, [out]
        if kind in ("MUL", "ADD"):
            op.builtinOptionsType = getattr(schema.BuiltinOptions, f"{kind.title()}Options")
            op.builtinOptions = getattr(schema, f"{kind.title()}OptionsT")()
        new_ops.append(op)
        current = out
    graph.operators[index + 1:index + 1] = new_ops


def unfuse_activation(data: bytes, op_type: str = "CONV_2D") -> bytes:
    """Move the first ``op_type`` op's fused RELU6 / RELU into a standalone op after it."""
    from deploykit.formats.tflite import graph as tflite_graph
    from deploykit.formats.tflite.flatbuffer import read_model, write_model

    model = read_model(data)
    graph_view = tflite_graph.Graph(model)
    index = next(i for i in range(len(model.subgraphs[0].operators))
                 if graph_view.op_type(i) == op_type and graph_view.fused_activation(i) in ("RELU", "RELU6"))
    activation = graph_view.fused_activation(index)
    model.subgraphs[0].operators[index].builtinOptions.fusedActivationFunction = 0
    _insert_after(model, model.subgraphs[0], index, [(activation, [])])
    return write_model(model)


def unfold_batchnorm(data: bytes, scale: float = 1.0, shift: float = 0.0) -> bytes:
    """Put MUL(scale) and ADD(shift) per channel after the last CONV_2D without a fused activation."""
    from deploykit.formats.tflite import graph as tflite_graph
    from deploykit.formats.tflite.flatbuffer import read_model, write_model

    model = read_model(data)
    graph = model.subgraphs[0]
    view = tflite_graph.Graph(model)
    index = [i for i in range(len(graph.operators)) if view.op_type(i) in tflite_graph.CONV_LIKE
             and view.fused_activation(i) == "NONE"][-1]
    channels = int(graph.tensors[int(graph.operators[index].outputs[0])].shape[-1])
    mul = _new_tensor(model, graph, 0, "bn_scale", np.full(channels, scale))
    add = _new_tensor(model, graph, 0, "bn_shift", np.full(channels, shift))
    _insert_after(model, graph, index, [("MUL", [mul]), ("ADD", [add])])
    return write_model(model)
