"""deploykit's ONNX -> MIL lowerings for ops onnx2coreml lacks (Sum, Mean, LRN, CumSum, activations), and the
preparation that upgrades opset-9 graphs: each converts on the direct route and matches ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import deploykit
from deploykit.pipeline.request import VerifyOptions

SHAPE = [1, 4, 6, 6]


def _save(folder, name, nodes, opset=17, inits=(), out_shape=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape or SHAPE)
    graph = helper.make_graph(nodes, name, [x], [y], initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=7)
    onnx.checker.check_model(model)
    path = folder / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


GRAPHS = {
    "variadic": (lambda: [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Neg", ["x"], ["n"]),
                          helper.make_node("Sum", ["x", "r", "n"], ["s"]), helper.make_node("Mean", ["s", "r"], ["y"])],
                 {"add", "mul"}),  # coremltools turns the division by a constant into a mul
    "lrn": (lambda: [helper.make_node("LRN", ["x"], ["y"], size=3, alpha=1e-2, beta=0.75, bias=2.0)],
            {"local_response_norm"}),
    "cumsum": (lambda: [helper.make_node("CumSum", ["x", "axis"], ["y"], reverse=1)], {"cumsum"}),
    "activations": (lambda: [helper.make_node("Selu", ["x"], ["a"]), helper.make_node("Softsign", ["a"], ["b"]),
                             helper.make_node("Mish", ["b"], ["c"]), helper.make_node("Celu", ["c"], ["d"], alpha=0.5),
                             helper.make_node("ThresholdedRelu", ["d"], ["y"], alpha=0.01)],
                    {"softsign", "thresholded_relu", "elu", "tanh", "softplus"}),
}


@pytest.mark.parametrize("family", sorted(GRAPHS))
def test_lowering_on_direct_route(family, tmp_path):
    nodes, mil_ops = GRAPHS[family]
    inits = [numpy_helper.from_array(np.array(2, dtype=np.int64), "axis")] if family == "cumsum" else []
    path = _save(tmp_path, family, nodes(), opset=18 if family == "activations" else 17, inits=inits)
    report = deploykit.convert(path, to="coreml", out=tmp_path / "out")
    (artifact,) = report.artifacts
    assert artifact.converter == "onnx->coreml (onnx2coreml)", artifact.attempts
    assert mil_ops <= set(artifact.op_histogram), artifact.op_histogram
    assert artifact.parity["passed"] and artifact.parity["outputs"]["y"]["max_rel_error"] <= 1e-4


def test_opset9_graph_is_upgraded_and_converts_on_both_targets(tmp_path):
    """ONNX model-zoo style: opset 9 BatchNormalization, Upsample with a scales input, and Sum."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.uniform(0.5, 1.5, 4).astype(np.float32), n) for n in ("scale", "var")]
    inits += [numpy_helper.from_array(rng.normal(size=4).astype(np.float32), n) for n in ("bias", "mean")]
    inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], dtype=np.float32), "scales"))
    nodes = [helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"], ["b"], epsilon=1e-5),
             helper.make_node("Relu", ["b"], ["r"]), helper.make_node("Sum", ["b", "r", "x"], ["s"]),
             helper.make_node("Upsample", ["s", "scales"], ["y"], mode="nearest")]
    path = _save(tmp_path, "opset9", nodes, opset=9, inits=inits, out_shape=[1, 4, 12, 12])
    report = deploykit.convert(path, to="tflite,coreml", out=tmp_path / "out")
    for artifact in report.artifacts:
        steps = {p["name"]: p.get("items") for p in artifact.passes}
        assert steps["upgrade_opset"][0].startswith("9 -> 13 (when loaded"), artifact.passes
        assert artifact.parity["passed"] and artifact.parity["outputs"]["y"]["max_rel_error"] <= 1e-4
    assert report.artifacts[1].converter == "onnx->coreml (onnx2coreml)"


def test_data_dependent_if_becomes_cond(tmp_path):
    """openWakeWord-style head: a branch taken only when a score passes a threshold, reading an outer weight
    that no top-level node reads (onnx2coreml would prune it) and holding a Constant node of its own."""
    weight = numpy_helper.from_array(np.random.default_rng(1).normal(size=(1, 4, 1, 1)).astype(np.float32), "w")
    then_branch = helper.make_graph(
        [helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.array(0.5, dtype=np.float32))),
         helper.make_node("Mul", ["x", "w"], ["xw"]), helper.make_node("Add", ["xw", "k"], ["t"])],
        "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, SHAPE)])
    else_branch = helper.make_graph([helper.make_node("Neg", ["x"], ["e"])], "else", [],
                                    [helper.make_tensor_value_info("e", TensorProto.FLOAT, SHAPE)])
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], keepdims=0),
             helper.make_node("Greater", ["m", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["y"], then_branch=then_branch, else_branch=else_branch)]
    zero = numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero")
    path = _save(tmp_path, "branchy", nodes, opset=17, inits=[weight, zero])
    report = deploykit.convert(path, to="coreml", out=tmp_path / "out", verify_options=VerifyOptions(samples=16))
    (artifact,) = report.artifacts
    assert artifact.converter == "onnx->coreml (onnx2coreml)", artifact.attempts
    assert "cond" in artifact.op_histogram
    assert artifact.parity["passed"] and artifact.parity["outputs"]["y"]["max_rel_error"] <= 1e-4
    # the 16 seeded parity samples: the mean's sign differs between them, so both branches were compared
    from deploykit.parity.inputs import random_inputs

    means = [float(s["x"].mean()) for s in random_inputs(report_inputs(report), samples=16, seed=0).samples]
    assert min(means) < 0 < max(means)


def report_inputs(report):
    from deploykit.core.types import TensorSpec

    return tuple(TensorSpec.from_json(t) for t in report.source["inputs"])


def test_reciprocal_is_exact(tmp_path):
    """onnx2coreml lowers Reciprocal as MIL inverse with its default epsilon, 1 / (x + 1e-4); deploykit's
    correction (onnx_lowerings/corrections.py) is exact. On 1 / (x^2 + 1e-3), as a normalization's
    reciprocal of a small variance, the default epsilon is off by up to 9 % (1e-4 / 1.1e-3)."""
    eps = numpy_helper.from_array(np.array(1e-3, dtype=np.float32), "eps")
    nodes = [helper.make_node("Mul", ["x", "x"], ["sq"]), helper.make_node("Add", ["sq", "eps"], ["v"]),
             helper.make_node("Reciprocal", ["v"], ["y"])]
    report = deploykit.convert(_save(tmp_path, "reciprocal", nodes, inits=[eps]), to="coreml", out=tmp_path / "out")
    (artifact,) = report.artifacts
    assert artifact.converter == "onnx->coreml (onnx2coreml)", artifact.attempts
    assert "inverse" in artifact.op_histogram
    assert artifact.parity["outputs"]["y"]["max_rel_error"] <= 1e-6
