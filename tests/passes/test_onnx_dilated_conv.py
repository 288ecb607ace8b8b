"""``dilated_conv_as_dense`` (ladder rung ``onnx2tf:dense-dilated-conv``) on small opset-17 graphs through ONNX
Runtime: the Conv loses its dilations and gains a zero-filled kernel, the interface is unchanged, outputs equal
within ulps; the Convs onnx2tf writes with builtin ops are left alone. The wheel's three dilated graphs are
converted in tests/converters/test_onnx_old_opsets.py."""

from __future__ import annotations

import numpy as np
import pytest


def _conv(x_shape, w_shape, y_shape, bias=True, **attrs):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(size=w_shape).astype(np.float32), "w")]
    if bias:
        inits.append(numpy_helper.from_array(rng.normal(size=w_shape[:1]).astype(np.float32), "b"))
    node = helper.make_node("Conv", ["x", "w"] + (["b"] if bias else []), ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _run(model, x):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]


def _reference(model, x):
    """onnx's reference evaluator: ONNX Runtime has no dilated Conv with auto_pad SAME_*."""
    from onnx.reference import ReferenceEvaluator

    return ReferenceEvaluator(model).run(None, {"x": x})[0]


CASES = {  # the wheel's Conv2d_dilated / Conv3d_dilated / Conv3d_dilated_strided, with groups and auto_pad besides
    "2d strided": ((2, 3, 8, 8), (4, 3, 3, 3), (2, 4, 2, 2), dict(dilations=[2, 2], strides=[2, 2])),
    "3d": ((2, 3, 5, 5, 5), (4, 3, 2, 2, 2), (2, 4, 3, 3, 3), dict(dilations=[2, 2, 2])),
    "3d strided": ((2, 3, 5, 5, 5), (4, 3, 2, 2, 2), (2, 4, 2, 2, 2), dict(dilations=[2, 2, 2], strides=[2, 2, 2])),
    "grouped, padded": ((1, 4, 9, 7), (4, 2, 3, 2), (1, 4, 4, 4), dict(dilations=[2, 3], strides=[2, 2], group=2,
                                                                        pads=[1, 2, 1, 2])),
    "same_upper": ((1, 3, 9, 9), (2, 3, 3, 3), (1, 2, 5, 5), dict(dilations=[2, 2], strides=[2, 2],
                                                                   auto_pad="SAME_UPPER")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_dilated_conv_becomes_dense_and_computes_the_same(case):
    import onnx
    from onnx import helper, numpy_helper

    from deploykit.passes.registry import get

    x_shape, w_shape, y_shape, attrs = CASES[case]
    model = _conv(x_shape, w_shape, y_shape, **attrs)
    x = np.random.default_rng(1).normal(size=x_shape).astype(np.float32)
    before = _reference(model, x)
    interface = [(v.name, str(v.type)) for v in list(model.graph.input) + list(model.graph.output)]
    assert get("dilated_conv_as_dense", "onnx").apply(model) == 1
    onnx.checker.check_model(model)
    assert [(v.name, str(v.type)) for v in list(model.graph.input) + list(model.graph.output)] == interface
    (node,) = model.graph.node
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    assert "dilations" not in attributes and attributes.get("strides") == attrs.get("strides")
    dense = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}[node.input[1]]
    assert list(dense.shape[2:]) == attributes["kernel_shape"] == [
        d * (k - 1) + 1 for d, k in zip(attrs["dilations"], w_shape[2:])]
    assert "w" not in {t.name for t in model.graph.initializer}  # the dilated kernel is gone
    np.testing.assert_allclose(_run(model, x), before, rtol=1e-5, atol=1e-5)


def test_convs_onnx2tf_writes_are_left_alone():
    from deploykit.passes.onnx_dilated_conv import dilated_conv_sites

    kept = [_conv((1, 3, 8, 8), (4, 3, 3, 3), (1, 4, 4, 4), dilations=[2, 2]),  # 2-D, stride 1: CONV_2D dilates
            _conv((1, 3, 8, 8), (4, 3, 3, 3), (1, 4, 3, 3), strides=[2, 2]),  # not dilated
            _conv((1, 3, 8, 8, 8), (4, 3, 3, 3, 3), (1, 4, 6, 6, 6), dilations=[1, 1, 1])]
    assert [dilated_conv_sites(m.graph) for m in kept] == [{}, {}, {}]


def test_rung_is_chosen_from_the_graph():
    from deploykit.converters.onnx2tf_remedies import GraphFacts, ladder

    facts = GraphFacts.of(_conv((2, 3, 8, 8), (4, 3, 3, 3), (2, 4, 2, 2), dilations=[2, 2], strides=[2, 2]))
    assert facts.dilated_convs == 1
    plan = ladder(facts)
    assert [name for name, _, _ in plan] == ["onnx2tf", "onnx2tf:dense-dilated-conv", "onnx2tf:layout-fix"]
    assert plan[1][2].rewrites == ("dilated_conv_as_dense",)
