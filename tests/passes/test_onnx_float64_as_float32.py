"""``float64_as_float32`` (ladder rung ``onnx2tf:float32``): a float64 graph becomes a float32 one with the same
structure, and computes what the float64 graph computes within float32 rounding. The wheel's float64 graph is
converted in tests/converters/test_onnx_old_opsets.py."""

from __future__ import annotations

import numpy as np


def _double_graph(with_branch=False):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    constant = helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.array(0.5), "k"))
    nodes = [constant, helper.make_node("Add", ["x", "c"], ["a"]), helper.make_node("Mul", ["a", "k"], ["m"]),
             helper.make_node("Cast", ["m"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("Cast", ["f"], ["y"], to=TensorProto.DOUBLE)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.DOUBLE, [2, 3])],
                              initializer=[numpy_helper.from_array(np.array([1.5, 2.25, -3.0]), "c")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_double_graph_becomes_float_and_computes_the_same():
    import onnx
    import onnxruntime as ort

    from deploykit.passes.onnx_float64_as_float32 import float64_tensors
    from deploykit.passes.registry import get

    model = _double_graph()
    x = np.random.default_rng(4).normal(size=(2, 3))
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    assert float64_tensors(model) == 5  # x, y, the initializer, the Constant, the Cast to double
    assert get("float64_as_float32", "onnx").apply(model) == 5
    onnx.checker.check_model(model, full_check=True)
    assert float64_tensors(model) == 0
    assert [v.type.tensor_type.elem_type for v in (model.graph.input[0], model.graph.output[0])] == [1, 1]
    after = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x.astype(np.float32)})[0]
    assert after.dtype == np.float32 and after.shape == before.shape
    np.testing.assert_allclose(after, before, rtol=1e-6, atol=1e-6)


def test_rung_is_chosen_only_for_double_graphs():
    from deploykit.converters.onnx2tf_remedies import GraphFacts, ladder
    from tests.passes.test_onnx_dilated_max_pool import CASES, _pool

    plan = ladder(GraphFacts.of(_double_graph()))
    assert [name for name, _, _ in plan][:2] == ["onnx2tf", "onnx2tf:float32"]
    assert plan[1][2].rewrites == ("float64_as_float32",)
    x_shape, y_shape, attrs = CASES["2d strided padded"]
    assert GraphFacts.of(_pool(x_shape, y_shape, **attrs)).float64_places == 0
