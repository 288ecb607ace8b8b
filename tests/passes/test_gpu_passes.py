"""The exact TFLite rewrites for LiteRT's GPU delegate, each applied by name to a small graph built here: op types
before and after, and every output's bytes unchanged on LiteRT's builtin kernels and under XNNPACK."""

from __future__ import annotations

import numpy as np
import pytest

from deploykit.passes import registry
from deploykit.passes import tflite_edit as edit
from deploykit.passes.registry import PassSelection
from tests.passes.helpers import assert_pass, tflite_ops

FLOAT32, INT32, INT64, BOOL = 0, 2, 4, 6
GPU_PASSES = ("gather_as_slice", "int64_as_int32", "slices_for_gpu", "split_relu_0_to_1", "fold_constant_broadcast")


def build(inputs: dict, body) -> bytes:
    """A one-subgraph .tflite: ``inputs`` name -> shape (float32); ``body(g, tensors)`` appends ops to the graph and
    returns {output name: tensor}."""
    from deploykit.formats.tflite import graph as tflite_graph
    from deploykit.formats.tflite.flatbuffer import set_signature, write_model

    s = edit.schema()
    model = s.ModelT()
    model.version, model.buffers, model.operatorCodes = 3, [s.BufferT()], []
    graph = s.SubGraphT()
    graph.tensors, graph.operators, graph.inputs, graph.outputs, graph.name = [], [], [], [], "main"
    model.subgraphs = [graph]
    g = tflite_graph.Graph(model)
    tensors = {name: edit.new_tensor(g, name, dims, FLOAT32) for name, dims in inputs.items()}
    graph.inputs = list(tensors.values())
    outputs = body(g, tensors)
    for name, t in outputs.items():
        g.graph.tensors[t].name = name.encode()
    graph.outputs = list(outputs.values())
    return set_signature(write_model(model), list(inputs), list(outputs))


def op(g, name, inputs, out_dims, out_type=FLOAT32, options=None, **fields):
    out = edit.new_tensor(g, f"t{len(g.graph.tensors)}", out_dims, out_type)
    g.graph.operators.append(edit.new_op(g, name, inputs, [out], options, **fields))
    return out


def const(g, values, type_):
    values = np.asarray(values, dtype=edit.NUMPY[type_])
    return edit.new_tensor(g, f"c{len(g.graph.tensors)}", values.shape, type_, values)


def run(data: bytes, feeds: dict, delegates: bool) -> dict:
    from deploykit.formats import litert_facade

    runner = litert_facade.interpreter(content=data, delegates=delegates).get_signature_runner()
    return {name: np.asarray(value).copy() for name, value in runner(**feeds).items()}


def apply(name: str, data: bytes, feeds: dict, *, removed=None, added=None):
    """Pass ``name`` looked up in the registry and applied; outputs compared byte for byte with both kernels."""
    result = registry.get(name, "tflite").apply(data)
    assert_pass(tflite_ops(data), tflite_ops(result.value), removed=removed or {}, added=added)
    for delegates in (False, True):
        before, after = run(data, feeds, delegates), run(result.value, feeds, delegates)
        assert before.keys() == after.keys()
        for key in before:
            assert before[key].dtype == after[key].dtype and before[key].shape == after[key].shape
            assert before[key].tobytes() == after[key].tobytes(), f"{name}: {key} changed"
    assert registry.get(name, "tflite").apply(result.value).items == ()  # nothing left to rewrite
    return result


def feeds_of(**shapes):
    rng = np.random.default_rng(0)
    return {name: (rng.standard_normal(dims) * 4).astype(np.float32) for name, dims in shapes.items()}


def test_the_passes_run_on_every_tflite_path_by_default():
    for name in GPU_PASSES:
        chosen = [p.name for p in PassSelection("auto").for_path("onnx", "tflite", "tflite")]
        assert name in chosen and name in [p.name for p in PassSelection("auto").for_path("torch", "tflite", "tflite")]
        entry = registry.get(name, "tflite")
        assert "Given:" in entry.doc and "Result:" in entry.doc and "Exact" in entry.doc
        assert name in registry.names()


def test_gather_as_slice():
    def body(g, t):
        x, w = t["x"], t["w"]
        return {
            "cls": op(g, "GATHER", [x, const(g, 0, INT32)], [1, 16], options="GatherOptions", axis=1),  # x[:, 0]
            "mid": op(g, "GATHER", [x, const(g, [4, 5, 6, 7], INT64)], [1, 4, 16], options="GatherOptions", axis=1),
            "even": op(g, "GATHER", [x, const(g, [0, 2, 4], INT32)], [1, 64, 3], options="GatherOptions", axis=-1),
            "row": op(g, "GATHER", [w, const(g, 5, INT32)], [16], options="GatherOptions", axis=0),  # rank 2: a view
            "shuffled": op(g, "GATHER", [x, const(g, [3, 1, 2], INT32)], [1, 3, 16], options="GatherOptions", axis=1),
        }

    data = build({"x": [1, 64, 16], "w": [64, 16]}, body)
    result = apply("gather_as_slice", data, feeds_of(x=(1, 64, 16), w=(64, 16)), removed={"GATHER": 4},
                   added={"SLICE": 3, "STRIDED_SLICE": 1, "RESHAPE": 3})
    assert result.items[0] == "GATHER cls (axis 1, indices 0) -> SLICE + RESHAPE"
    assert result.items[1] == "GATHER mid (axis 1, indices 4:8) -> SLICE"
    assert result.items[2] == "GATHER even (axis 2, indices 0:6:2) -> STRIDED_SLICE"
    assert result.items[3] == "GATHER row (axis 0, indices 5) -> RESHAPE + SLICE + RESHAPE"
    assert tflite_ops(result.value).count("GATHER") == 1  # [3, 1, 2] is no slice


def test_int64_as_int32():
    def body(g, t):
        x = t["x"]
        level = op(g, "MUL", [op(g, "LOGISTIC", [x], [1, 16]), const(g, 7.0, FLOAT32)], [1, 16], options="MulOptions")
        wide = op(g, "CAST", [level], [1, 16], INT64, "CastOptions", inDataType=FLOAT32, outDataType=INT64)
        free = op(g, "CAST", [x], [1, 16], INT64, "CastOptions", inDataType=FLOAT32, outDataType=INT64)  # unbounded
        rows = op(g, "GATHER", [t["table"], const(g, [3, 1, 2], INT64)], [3, 16], options="GatherOptions", axis=0)
        return {
            "level": op(g, "CAST", [wide], [1, 16], FLOAT32, "CastOptions", inDataType=INT64, outDataType=FLOAT32),
            "free": op(g, "CAST", [free], [1, 16], FLOAT32, "CastOptions", inDataType=INT64, outDataType=FLOAT32),
            "rows": rows,
        }

    data = build({"x": [1, 16], "table": [8, 16]}, body)
    feeds = feeds_of(x=(1, 16), table=(8, 16))
    feeds["x"][0, :4] = [3e9, -3e9, 1e12, -0.0]  # where INT64 and INT32 truncation part: that CAST must stay INT64
    result = apply("int64_as_int32", data, feeds)
    assert result.items == ("CAST t5: FLOAT32 -> INT32 (values in [0, 7])",
                            "constant c7: INT64 indices -> INT32")
    from deploykit.formats.tflite import graph as tflite_graph

    types = [tensor.type for tensor in tflite_graph.read(result.value).graph.tensors]
    assert types.count(INT64) == 1  # the unbounded CAST (3e9 does not fit in INT32)


def test_slices_for_gpu():
    def body(g, t):
        qkv, x = t["qkv"], t["x"]
        parts = {}
        for k, name in enumerate("qkv"):  # PP-OCRv4's q, k, v: rank-5 STRIDED_SLICEs on axis 0
            begin, end = const(g, [k, 0, 0, 0, 0], INT32), const(g, [k + 1, 0, 0, 0, 0], INT32)
            parts[name] = op(g, "STRIDED_SLICE", [qkv, begin, end, const(g, [1] * 5, INT32)], [1, 1, 8, 40, 15],
                             options="StridedSliceOptions", beginMask=30, endMask=30)
        parts["first"] = op(g, "STRIDED_SLICE", [x, const(g, [0, 0, 0], INT32), const(g, [1, 1, 16], INT32),
                                                 const(g, [1, 1, 1], INT32)], [1, 16],
                            options="StridedSliceOptions", shrinkAxisMask=2)  # x[:, 0] with a shrink mask
        parts["two_axes"] = op(g, "SLICE", [qkv, const(g, [0, 0, 2, 0, 0], INT32), const(g, [2, 1, 2, 40, 15], INT32)],
                               [2, 1, 2, 40, 15], options="SliceOptions")  # cuts two axes: left alone
        return parts

    data = build({"qkv": [3, 1, 8, 40, 15], "x": [1, 64, 16]}, body)
    result = apply("slices_for_gpu", data, feeds_of(qkv=(3, 1, 8, 40, 15), x=(1, 64, 16)),
                   removed={"STRIDED_SLICE": 3}, added={"SLICE": 3, "RESHAPE": 5})
    assert result.items[:2] == ("STRIDED_SLICE q (rank 5) -> RESHAPE + SLICE + RESHAPE",
                                "STRIDED_SLICE k (rank 5) -> SLICE + RESHAPE")  # k reuses q's view
    assert result.items[3] == "STRIDED_SLICE first (rank 3, shrink_axis_mask) -> STRIDED_SLICE + RESHAPE"
    assert len(result.items) == 4


def test_split_relu_0_to_1():
    data = build({"x": [1, 8, 8, 4]}, lambda g, t: {"y": op(g, "RELU_0_TO_1", [t["x"]], [1, 8, 8, 4])})
    feeds = feeds_of(x=(1, 8, 8, 4))
    feeds["x"].ravel()[:8] = [-0.0, 0.0, 1.0, -1.0, 1e30, -1e30, np.inf, -np.inf]
    result = apply("split_relu_0_to_1", data, feeds, removed={"RELU_0_TO_1": 1}, added={"RELU": 1, "MINIMUM": 1})
    assert result.items == ("RELU_0_TO_1 y -> RELU + MINIMUM(1)",)


def test_fold_constant_broadcast():
    def body(g, t):
        edit.opcode(g, "BROADCAST_TO", version=2)  # LiteRT registers BROADCAST_TO from version 2
        mask = op(g, "BROADCAST_TO", [const(g, [[[True], [False], [True], [True]]], BOOL), const(g, [1, 4, 4], INT32)],
                  [1, 4, 4], BOOL)
        bias = op(g, "SELECT_V2", [mask, const(g, 0.0, FLOAT32), const(g, -np.inf, FLOAT32)], [1, 4, 4])
        return {"y": op(g, "ADD", [t["x"], bias], [1, 4, 4], options="AddOptions"),
                "z": op(g, "BROADCAST_TO", [t["x"], const(g, [1, 4, 4], INT32)], [1, 4, 4])}  # not a constant: kept

    data = build({"x": [1, 4, 1]}, body)
    result = apply("fold_constant_broadcast", data, feeds_of(x=(1, 4, 1)), removed={"BROADCAST_TO": 1})
    assert result.items == ("BROADCAST_TO t3 [1, 4, 1] -> [1, 4, 4] (16 bytes)",)


@pytest.mark.parametrize("name", GPU_PASSES)
def test_a_graph_without_the_pattern_is_returned_as_it_was(name):
    data = build({"x": [1, 4, 4, 2]}, lambda g, t: {"y": op(g, "RELU", [t["x"]], [1, 4, 4, 2])})
    if name == "split_relu_0_to_1":
        data = build({"x": [1, 4, 4, 2]}, lambda g, t: {"y": op(g, "TANH", [t["x"]], [1, 4, 4, 2])})
    result = registry.get(name, "tflite").apply(data)
    assert result.value is data and result.items == ()
