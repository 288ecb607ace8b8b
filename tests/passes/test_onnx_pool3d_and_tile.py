"""The ONNX rewrites behind the ladder rungs ``onnx2tf:pool3d-as-2d`` and ``onnx2tf:tile-as-concat``, on small
opset-17 graphs through ONNX Runtime: op types before and after, the interface unchanged, outputs equal (bit for
bit for MaxPool and Tile, within ulps for AveragePool), and what each rewrite leaves alone. The conversions
themselves are in tests/converters/test_onnx_tflite_pool3d_tile.py."""

from __future__ import annotations

import numpy as np
import pytest

from tests.passes.helpers import assert_pass


def _model(nodes, inputs, outputs, initializers=None):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
                              initializer=[numpy_helper.from_array(v, k) for k, v in (initializers or {}).items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _run(model, x):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})


def _rewrite(model, name, x):
    """(op types before, after, outputs before, after, nodes changed) of pass ``name`` on ``model``."""
    import onnx

    from deploykit.passes.registry import get

    before_ops, before = [n.op_type for n in model.graph.node], _run(model, x)
    interface = [(v.name, str(v.type)) for v in list(model.graph.input) + list(model.graph.output)]
    changed = get(name, "onnx").apply(model)
    onnx.checker.check_model(model)
    assert [(v.name, str(v.type)) for v in list(model.graph.input) + list(model.graph.output)] == interface
    return before_ops, [n.op_type for n in model.graph.node], before, _run(model, x), changed


def _pool(op, shape, out, **attrs):
    from onnx import helper

    return _model([helper.make_node(op, ["x"], ["y"], **attrs)], [("x", shape)], [("y", out)])


MAX_POOLS = {
    # the onnx wheel's test_MaxPool3d_stride_padding
    "stride_padding": ([2, 3, 5, 5, 5], [2, 3, 3, 3, 3], dict(kernel_shape=[2, 2, 2], strides=[2, 2, 2], pads=[1] * 6)),
    "uneven": ([1, 2, 7, 6, 5], [1, 2, 2, 3, 5], dict(kernel_shape=[3, 2, 2], strides=[2, 2, 1], pads=[1, 0, 1, 0, 1, 0],
                                                      dilations=[2, 1, 1])),
    "ceil_mode": ([1, 2, 5, 5, 6], [1, 2, 3, 3, 3], dict(kernel_shape=[2, 2, 2], strides=[2, 2, 2], ceil_mode=1)),
    "same_upper": ([1, 2, 5, 6, 7], [1, 2, 3, 3, 4], dict(kernel_shape=[3, 3, 3], strides=[2, 2, 2], auto_pad="SAME_UPPER")),
    "depth_only": ([1, 2, 6, 4, 4], [1, 2, 3, 4, 4], dict(kernel_shape=[2, 1, 1], strides=[2, 1, 1])),
}


@pytest.mark.parametrize("case", sorted(MAX_POOLS))
def test_max_pool3d_as_2d_is_bit_exact(case):
    shape, out, attrs = MAX_POOLS[case]
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    before_ops, after_ops, before, after, changed = _rewrite(_pool("MaxPool", shape, out, **attrs), "max_pool3d_as_2d", x)
    assert changed == 1
    pools = 1 if case == "depth_only" else 2  # a side whose kernel, stride and pads are 1, 1, 0 is left out
    assert_pass(before_ops, after_ops, removed={"MaxPool": 1 - pools}, added={"Reshape": pools + 1})
    np.testing.assert_array_equal(after[0], before[0])


AVERAGE_POOLS = {
    # count_include_pad=0 (ONNX's default) with pads: the correction map
    "excluding_pads": ([1, 2, 4, 6, 6], [1, 2, 4, 6, 6], dict(kernel_shape=[3, 3, 3], pads=[1] * 6), 1),
    "including_pads": ([1, 2, 5, 6, 7], [1, 2, 3, 3, 4], dict(kernel_shape=[2, 3, 2], strides=[2, 2, 2],
                                                              pads=[1, 1, 0, 0, 1, 1], count_include_pad=1), 0),
    # the onnx wheel's test_AvgPool3d_stride
    "no_pads": ([2, 3, 5, 5, 5], [2, 3, 2, 2, 2], dict(kernel_shape=[2, 2, 2], strides=[2, 2, 2]), 0),
}


@pytest.mark.parametrize("case", sorted(AVERAGE_POOLS))
def test_average_pool3d_as_2d_matches_onnx_within_ulps(case):
    shape, out, attrs, corrections = AVERAGE_POOLS[case]
    x = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    before_ops, after_ops, before, after, changed = _rewrite(_pool("AveragePool", shape, out, **attrs),
                                                             "average_pool3d_as_2d", x)
    assert changed == 1
    assert_pass(before_ops, after_ops, removed={"AveragePool": -1}, added={"Reshape": 3, "Mul": corrections})
    np.testing.assert_allclose(after[0], before[0], rtol=1e-6, atol=1e-6 * float(np.abs(before[0]).max()))


def test_pool3d_rewrites_leave_what_they_cannot_split_exactly():
    from onnx import TensorProto, helper

    from deploykit.passes.registry import get

    ceil_average = _pool("AveragePool", [1, 2, 5, 5, 5], [1, 2, 3, 3, 3], kernel_shape=[2, 2, 2], strides=[2, 2, 2],
                         ceil_mode=1)  # the divisor at a clipped edge differs between runtimes
    pool_2d = _pool("MaxPool", [1, 2, 6, 6], [1, 2, 3, 3], kernel_shape=[2, 2], strides=[2, 2])
    indices = _model([helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2, 2], strides=[2, 2, 2])],
                     [("x", [1, 1, 4, 4, 4])], [("y", [1, 1, 2, 2, 2])])
    indices.graph.output.append(helper.make_tensor_value_info("i", TensorProto.INT64, [1, 1, 2, 2, 2]))
    assert get("average_pool3d_as_2d", "onnx").apply(ceil_average) == 0
    assert get("max_pool3d_as_2d", "onnx").apply(pool_2d) == 0
    assert get("max_pool3d_as_2d", "onnx").apply(indices) == 0
    # each pass rewrites its own op type only
    assert get("average_pool3d_as_2d", "onnx").apply(_pool("MaxPool", [1, 1, 4, 4, 4], [1, 1, 2, 2, 2],
                                                           kernel_shape=[2, 2, 2], strides=[2, 2, 2])) == 0


def test_tile_as_concat_is_bit_exact_and_drops_the_repeats():
    """The onnx wheel's test_operator_repeat: ``x.repeat(1, 2, 3, 4)`` on a [1, 2, 3, 4] input, repeats a Constant."""
    from onnx import helper, numpy_helper

    repeats = helper.make_node("Constant", [], ["r"], value=numpy_helper.from_array(np.array([1, 2, 3, 4], np.int64)))
    model = _model([repeats, helper.make_node("Tile", ["x", "r"], ["y"])], [("x", [1, 2, 3, 4])], [("y", [1, 4, 9, 16])])
    x = np.random.default_rng(0).normal(size=(1, 2, 3, 4)).astype(np.float32)
    before_ops, after_ops, before, after, changed = _rewrite(model, "tile_as_concat", x)
    assert changed == 1
    assert after_ops == ["Concat", "Concat", "Concat"]
    assert [len(n.input) for n in model.graph.node] == [2, 3, 4]
    assert [n.attribute[0].i for n in model.graph.node] == [1, 2, 3]
    assert_pass(before_ops, after_ops, removed={"Tile": 1, "Constant": 1})
    np.testing.assert_array_equal(after[0], before[0])


def test_tile_as_concat_leaves_low_ranks_large_and_computed_repeats():
    from onnx import helper

    from deploykit.passes.onnx_graph import MAX_TILE_COPIES
    from deploykit.passes.onnx_tile_as_concat import tile_as_concat

    def tile(shape, out, repeats=None):
        if repeats is None:  # repeats computed from the input's shape
            nodes = [helper.make_node("Shape", ["x"], ["r"]), helper.make_node("Tile", ["x", "r"], ["y"])]
            return _model(nodes, [("x", shape)], [("y", out)])
        return _model([helper.make_node("Tile", ["x", "r"], ["y"])], [("x", shape)], [("y", out)],
                      {"r": np.array(repeats, np.int64)})

    assert tile_as_concat(tile([2, 3], [4, 9], [2, 3])) == 0  # rank 2: onnx2tf keeps its layout
    large = MAX_TILE_COPIES + 1
    assert tile_as_concat(tile([1, 1, 2], [1, large, 2], [1, large, 1])) == 0
    assert tile_as_concat(tile([1, 1, 2], [1, 1, 4])) == 0
    shared = tile([1, 2, 3], [1, 4, 3], [1, 2, 1])  # an initializer another node also reads stays
    shared.graph.node.append(helper.make_node("Identity", ["r"], ["r_copy"]))
    assert tile_as_concat(shared) == 1 and [i.name for i in shared.graph.initializer] == ["r"]
