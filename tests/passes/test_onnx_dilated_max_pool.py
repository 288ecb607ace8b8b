"""``dilated_max_pool_as_phases`` (ladder rung ``onnx2tf:phased-dilated-pool``, and the direct ONNX -> Core ML
route before lowering) on small opset-17 graphs: the dilated MaxPool becomes an undilated one over the input's
phases, the interface is unchanged, and ONNX Runtime's outputs are bit-identical. The wheel's dilated graph is
converted to both targets in tests/converters/test_onnx_old_opsets.py."""

from __future__ import annotations

import numpy as np
import pytest


def _pool(x_shape, y_shape, dtype=1, **attrs):
    import onnx
    from onnx import helper

    node = helper.make_node("MaxPool", ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", dtype, x_shape)],
                              [helper.make_tensor_value_info("y", dtype, y_shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _run(model, x):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]


CASES = {  # the wheel's MaxPool2d_stride_padding_dilation, scaled down; ceil_mode, a floor that drops rows, 1-D
    "2d strided padded": ((1, 2, 40, 50), (1, 2, 11, 11), dict(kernel_shape=[6, 8], dilations=[3, 3], strides=[3, 3],
                                                             pads=[3, 2, 3, 2])),
    "2d unequal dilations": ((2, 3, 17, 13), (2, 3, 13, 4), dict(kernel_shape=[3, 4], dilations=[2, 3],
                                                                 pads=[0, 0, 0, 0])),
    "2d ceil_mode": ((1, 2, 11, 11), (1, 2, 4, 4), dict(kernel_shape=[2, 2], dilations=[2, 3], strides=[3, 3],
                                                         pads=[1, 1, 1, 1], ceil_mode=1)),
    "2d floor drops rows": ((1, 1, 15, 15), (1, 1, 3, 3), dict(kernel_shape=[3, 3], dilations=[2, 2], strides=[4, 4])),
    "1d": ((1, 2, 300), (1, 2, 13), dict(kernel_shape=[20], dilations=[10], strides=[10], pads=[10, 10])),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_dilated_max_pool_becomes_phased_and_computes_the_same(case):
    import onnx
    from onnx import helper

    from deploykit.passes.registry import get

    x_shape, y_shape, attrs = CASES[case]
    model = _pool(x_shape, y_shape, **attrs)
    x = np.random.default_rng(2).normal(size=x_shape).astype(np.float32)
    before = _run(model, x)
    assert before.shape == y_shape
    interface = [(v.name, str(v.type)) for v in list(model.graph.input) + list(model.graph.output)]
    assert get("dilated_max_pool_as_phases", "onnx").apply(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert [(v.name, str(v.type)) for v in list(model.graph.input) + list(model.graph.output)] == interface
    pools = [n for n in model.graph.node if n.op_type == "MaxPool"]
    assert len(pools) == 1
    attributes = {a.name: helper.get_attribute_value(a) for a in pools[0].attribute}
    assert "dilations" not in attributes and "strides" not in attributes
    assert max(len(v.type.tensor_type.shape.dim) for v in onnx.shape_inference.infer_shapes(model).graph.value_info) <= 5
    np.testing.assert_array_equal(_run(model, x), before)


def test_float16_pool_pads_with_its_own_type():
    from deploykit.passes.registry import get

    x_shape, y_shape, attrs = CASES["2d strided padded"]
    model = _pool(x_shape, y_shape, dtype=10, **attrs)
    x = np.random.default_rng(3).normal(size=x_shape).astype(np.float16)
    before = _run(model, x)
    assert get("dilated_max_pool_as_phases", "onnx").apply(model) == 1
    np.testing.assert_array_equal(_run(model, x), before)


def test_undilated_and_indexed_pools_are_left_alone():
    from onnx import TensorProto, helper

    from deploykit.passes.onnx_dilated_max_pool import dilated_max_pool_sites

    plain = _pool((1, 2, 8, 8), (1, 2, 4, 4), kernel_shape=[2, 2], strides=[2, 2])
    indexed = _pool((1, 2, 8, 8), (1, 2, 6, 6), kernel_shape=[2, 2], dilations=[2, 2])
    indexed.graph.node[0].output.append("indices")
    indexed.graph.output.append(helper.make_tensor_value_info("indices", TensorProto.INT64, (1, 2, 6, 6)))
    volume = _pool((1, 2, 8, 8, 8), (1, 2, 6, 6, 6), kernel_shape=[2, 2, 2], dilations=[2, 2, 2])
    assert [dilated_max_pool_sites(m) for m in (plain, indexed, volume)] == [0, 0, 0]


def test_rung_is_chosen_from_the_graph():
    from deploykit.converters.onnx2tf_remedies import GraphFacts, ladder

    x_shape, y_shape, attrs = CASES["2d strided padded"]
    facts = GraphFacts.of(_pool(x_shape, y_shape, **attrs))
    assert facts.dilated_max_pools == 1
    plan = ladder(facts)
    assert [name for name, _, _ in plan] == ["onnx2tf", "onnx2tf:phased-dilated-pool", "onnx2tf:layout-fix"]
    assert plan[1][2].rewrites == ("dilated_max_pool_as_phases",)
