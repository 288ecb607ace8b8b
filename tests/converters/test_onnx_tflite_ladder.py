"""The ONNX -> TFLite remedy ladder on small graphs that reproduce the corpus's failures, with real
onnx2tf conversions and the pipeline's parity check (docs/conversion.md, "ONNX -> TFLite: the
remedy ladder").

- ``erf_net`` (Conv -> Erf -> Conv): plain onnx2tf writes FlexErf, as it does for PP-OCRv6's GELU;
  the pseudo-ops rung writes builtin ops only and passes fp32 parity.
- ``anchors_net`` (Conv -> Reshape -> Transpose -> ``anchors - t``): a YOLOv8 box decode in small.
  TF 2.21's TFLite converter turns ``C - transpose(x)`` into ``x' - C'`` (the whole output negated);
  the constant-lhs rung rewrites the Sub and passes.

The unit tests at the end check the rewrites, the layout fix's error reading and the rung selection
without converting anything.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import deploykit
from deploykit.core.errors import UnsupportedOperatorError

FP32_BOUND = 1e-4  # the fp32 profile's max_rel_error bound


# ---- small graphs --------------------------------------------------------------------------------

def _model(nodes, initializers, inputs, outputs):
    import onnx
    from onnx import helper, numpy_helper

    graph = helper.make_graph(nodes, "g", inputs, outputs,
                              initializer=[numpy_helper.from_array(v, k) for k, v in initializers.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _value(name, shape):
    from onnx import TensorProto, helper

    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def erf_net():
    from onnx import helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["image", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Erf", ["c1"], ["e"]),
             helper.make_node("Conv", ["e", "w2"], ["features"])]
    weights = {"w1": rng.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32),
               "b1": rng.normal(0, 0.1, 8).astype(np.float32),
               "w2": rng.normal(0, 0.3, (4, 8, 1, 1)).astype(np.float32)}
    return _model(nodes, weights, [_value("image", [1, 3, 16, 16])], [_value("features", [1, 4, 16, 16])])


def anchors_net():
    from onnx import helper

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["image", "w"], ["c"]),
             helper.make_node("Reshape", ["c", "shape"], ["r"]),  # [1, 4, 64]
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 1]),  # [1, 64, 4]
             helper.make_node("Sub", ["anchors", "t"], ["boxes"])]
    weights = {"w": rng.normal(0, 0.5, (4, 3, 1, 1)).astype(np.float32),
               "anchors": rng.random((1, 64, 4), dtype=np.float32) * 8,
               "shape": np.array([1, 4, 64], np.int64)}
    return _model(nodes, weights, [_value("image", [1, 3, 8, 8])], [_value("boxes", [1, 64, 4])])


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    import onnx

    folder = tmp_path_factory.mktemp("ladder-graphs")
    paths = {}
    for build in (erf_net, anchors_net):
        paths[build.__name__] = folder / f"{build.__name__}.onnx"
        onnx.save(build(), str(paths[build.__name__]))
    return paths


def _artifact(out):
    record = json.loads((out / "deploykit-report.json").read_text())
    (artifact,) = record["artifacts"]
    return artifact


def _max_rel(parity: dict) -> float:
    return max(o["max_rel_error"] for o in parity["outputs"].values())


def _independent_error(onnx_path, tflite_path, input_name, shape, output_name) -> float:
    """Max error relative to the output's peak, ONNX Runtime against LiteRT, on one seeded input."""
    import onnxruntime as ort

    from tests.pipeline.tflite_run import run_tflite

    x = np.random.default_rng(1).random(shape, dtype=np.float32)
    ref = ort.InferenceSession(str(onnx_path)).run([output_name], {input_name: x})[0]
    got = run_tflite(tflite_path, {input_name: x})[output_name]
    if got.shape != ref.shape and got.ndim == 4:
        got = got.transpose(0, 3, 1, 2)  # NHWC artifact output, NCHW source
    return float(np.abs(got - ref).max() / np.abs(ref).max())


# ---- real conversions ----------------------------------------------------------------------------

def test_flex_erf_fails_the_first_rung_and_pseudo_ops_win(graphs, tmp_path):
    out = tmp_path / "out"
    deploykit.convert(graphs["erf_net"], to="tflite", out=out)
    artifact = _artifact(out)
    attempts = artifact["attempts"]
    assert [(a["name"], a["outcome"]) for a in attempts] == [("onnx2tf", "failed"), ("onnx2tf:pseudo-ops", "kept")]
    first = attempts[0]["error"]
    assert "FlexErf" in first and "stock LiteRT cannot run FlexErf" in first and "--allow-flex" in first
    assert "pseudo-op formulas for erf" in first  # what deploykit tries next
    assert artifact["converter"] == "onnx->tflite (onnx2tf, pseudo-ops)"
    assert not any(op.startswith("Flex") for op in artifact["op_histogram"])
    assert "EXP" in artifact["op_histogram"]  # the pseudo Erf is a polynomial in exp(-x^2)
    kept = _max_rel(attempts[1]["parity"])
    assert kept <= FP32_BOUND  # measured 2.4e-7
    assert artifact["parity"]["passed"] is True
    independent = _independent_error(graphs["erf_net"], out / artifact["path"], "image", (1, 3, 16, 16), "features")
    assert independent <= FP32_BOUND


def test_allow_flex_keeps_the_first_rungs_flex_artifact(graphs, tmp_path):
    out = tmp_path / "out"
    deploykit.convert(graphs["erf_net"], to="tflite", out=out, allow_flex=True)
    artifact = _artifact(out)
    # Kept without a parity check: stock LiteRT, which runs the check, cannot load Flex ops.
    assert [(a["name"], a["outcome"]) for a in artifact["attempts"]] == [("onnx2tf", "converted")]
    assert artifact["converter"] == "onnx->tflite (onnx2tf)"
    assert artifact["op_histogram"].get("FlexErf", 0) >= 1


def test_allowed_flex_candidate_skips_the_check_and_litert_names_the_ops(graphs, tmp_path):
    """The path module itself, with a check that must not be asked about a Flex candidate; then the
    LiteRT runner on that artifact raises a deploykit error naming the ops (exit 3), not LiteRT's
    RuntimeError."""
    from deploykit.converters import ConvertOptions, Workspace
    from deploykit.converters import onnx_tflite
    from deploykit.loaders import load_source
    from deploykit.runners.litert_runner import LiteRTRunner

    asked = []
    workspace = Workspace(root=tmp_path / "work", check=lambda path, target, variant="fp32": asked.append(path))
    workspace.root.mkdir()
    source = load_source(graphs["erf_net"])
    made = onnx_tflite.convert(source, tmp_path / "m.tflite", ConvertOptions(allow_flex=True), workspace)
    assert asked == []
    assert [(a.name, a.outcome) for a in made.attempts] == [("onnx2tf", "converted")]
    assert any("FlexErf" in note for note in made.notes)
    with pytest.raises(UnsupportedOperatorError) as caught:
        with LiteRTRunner(made.path):
            pass
    assert caught.value.exit_code == 3
    assert "FlexErf" in caught.value.message


def test_tflite_transpose_bug_is_fixed_by_the_constant_lhs_rung(graphs, tmp_path):
    out = tmp_path / "out"
    deploykit.convert(graphs["anchors_net"], to="tflite", out=out)
    artifact = _artifact(out)
    attempts = artifact["attempts"]
    assert [(a["name"], a["outcome"]) for a in attempts] == [
        ("onnx2tf", "parity-failed"), ("onnx2tf:layout-fix", "failed"), ("onnx2tf:constant-lhs", "kept")]
    # Plain onnx2tf: TFLite computes t - anchors, the negated output (measured: 2.0 of the peak).
    assert _max_rel(attempts[0]["parity"]) > 1.0
    assert "nothing to transpose" in attempts[1]["error"] and attempts[1]["seconds"] < 5  # reused run
    assert _max_rel(attempts[2]["parity"]) <= FP32_BOUND  # measured 5.7e-8
    assert artifact["converter"] == "onnx->tflite (onnx2tf, layout-fix, constant-lhs)"
    assert artifact["op_histogram"].get("NEG") == 1
    independent = _independent_error(graphs["anchors_net"], out / artifact["path"], "image", (1, 3, 8, 8), "boxes")
    assert independent <= FP32_BOUND


# ---- units: no conversion ------------------------------------------------------------------------

def _run_onnx(model, feeds):
    import onnxruntime as ort

    return ort.InferenceSession(model.SerializeToString()).run(None, feeds)[0]


def test_constant_lhs_rewrite_is_exact_for_sub_and_within_ulps_for_div():
    from onnx import helper

    from deploykit.passes.onnx_constant_lhs import constant_lhs

    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Sub", ["c", "x"], ["s"]), helper.make_node("Div", ["c", "s"], ["y"])]
    model = _model(nodes, {"c": rng.random((1, 5, 4), dtype=np.float32) + 1}, [_value("x", [1, 5, 4])],
                   [_value("y", [1, 5, 4])])
    x = {"x": rng.random((1, 5, 4), dtype=np.float32) * 0.5}
    before = _run_onnx(model, x)
    assert constant_lhs(model) == 2
    assert [n.op_type for n in model.graph.node] == ["Sub", "Neg", "Pow", "Mul"]
    assert constant_lhs(model) == 0  # nothing left to rewrite
    after = _run_onnx(model, x)
    np.testing.assert_allclose(after, before, rtol=3e-7, atol=0)


def test_layout_fix_reads_the_yolov8_concat_error():
    """onnx2tf's error on nudenet-320n (YOLOv8n), verbatim, against the ONNX shapes of the Concat."""
    from onnx import helper

    from deploykit.converters.onnx2tf_remedies import layout_fixes
    from deploykit.core.errors import ConversionError

    nodes = [helper.make_node("Identity", ["boxes_in"], ["/model.22/Mul_5_output_0"]),
             helper.make_node("Identity", ["scores_in"], ["/model.22/Sigmoid_output_0"]),
             helper.make_node("Concat", ["/model.22/Mul_5_output_0", "/model.22/Sigmoid_output_0"], ["output0"],
                              axis=1, name="/model.22/Concat_25")]
    model = _model(nodes, {}, [_value("boxes_in", [1, 4, 2100]), _value("scores_in", [1, 18, 2100])],
                   [_value("output0", [1, 22, 2100])])
    error = ConversionError("onnx2tf failed")
    error.onnx_op_name = "wa/model.22/Concat_25"
    error.detail = YOLO_CONCAT_ERROR
    assert layout_fixes(error, model) == [
        {"op_name": "wa/model.22/Concat_25", "param_target": "inputs", "param_name": "wa/model.22/Mul_5_output_0",
         "pre_process_transpose_perm": [0, 2, 1]}]


YOLO_CONCAT_ERROR = """ValueError: Exception encountered when calling layer "tf.concat_21" (type TFOpLambda).

Dimension 0 in both shapes must be equal, but are 4 and 2100. Shapes are [4] and [2100]. for '{{node tf.concat_21/concat}} = ConcatV2[N=2, T=DT_FLOAT, Tidx=DT_INT32](Placeholder, Placeholder_1, tf.concat_21/concat/axis)' with input shapes: [1,2100,4], [1,18,2100], [] and with computed input tensors: input[2] = <1>.

Call arguments received by layer "tf.concat_21" (type TFOpLambda):
  \u2022 values=['tf.Tensor(shape=(1, 2100, 4), dtype=float32)', 'tf.Tensor(shape=(1, 18, 2100), dtype=float32)']
  \u2022 axis=1
  \u2022 name='wa/model.22/Concat_25'"""


def test_rungs_are_chosen_from_the_graph():
    from deploykit.converters.onnx2tf_remedies import GraphFacts, ladder

    plain = GraphFacts(frozenset({"Conv", "Relu"}), (("image", 4),), 0)
    assert [name for name, _, _ in ladder(plain)] == ["onnx2tf", "onnx2tf:layout-fix"]
    everything = GraphFacts(frozenset({"Conv", "Erf", "Atan"}), (("image", 4), ("tokens", 3)), 2)
    plan = ladder(everything)
    assert [name for name, _, _ in plan] == ["onnx2tf", "onnx2tf:pseudo-ops", "onnx2tf:layout-fix",
                                             "onnx2tf:constant-lhs", "onnx2tf:keep-input-shape"]
    last = plan[-1][2]  # each rung keeps the remedies below it
    assert last.params == {"replace_to_pseudo_operators": ["atan", "erf"],
                           "keep_shape_absolutely_input_names": ["tokens"]}
    assert last.rewrites == ("constant_lhs",) and last.layout_fix


def test_node_names_tensorflow_refuses_are_rewritten(tmp_path):
    import onnx
    from onnx import helper

    from deploykit.converters.onnx2tf_facade import sanitize_node_names

    nodes = [helper.make_node("Relu", ["x"], ["r"], name="Relu@0"), helper.make_node("Softmax", ["r"], ["y"], name="Softmax@0"),
             helper.make_node("Identity", ["y"], ["z"], name="/model.0/keep:me")]
    path = tmp_path / "m.onnx"
    onnx.save(_model(nodes, {}, [_value("x", [1, 4])], [_value("z", [1, 4])]), str(path))
    assert sanitize_node_names(path) == 2
    assert [n.name for n in onnx.load(str(path)).graph.node] == ["Relu_0", "Softmax_0", "/model.0/keep:me"]


def test_single_axis_slices_rewrite_is_exact():
    from onnx import helper

    from deploykit.passes.onnx_single_axis_slices import single_axis_slices

    nodes = [helper.make_node("Slice", ["x", "starts", "ends", "axes"], ["y"])]
    consts = {"starts": np.array([0, 1], np.int64), "ends": np.array([3, 5], np.int64), "axes": np.array([1, 2], np.int64)}
    model = _model(nodes, consts, [_value("x", [2, 6, 5])], [_value("y", [2, 3, 4])])
    x = {"x": np.random.default_rng(0).random((2, 6, 5), dtype=np.float32)}
    before = _run_onnx(model, x)
    assert single_axis_slices(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Slice", "Slice"]
    np.testing.assert_array_equal(_run_onnx(model, x), before)


def test_average_pool_pads_rewrite_matches_onnx_within_an_ulp():
    """The model-zoo Inception v1 case: 6x6 input, 7x7 kernel, one padded row and column."""
    from onnx import helper

    from deploykit.passes.onnx_average_pool_pads import average_pool_pads

    nodes = [helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=[7, 7], pads=[0, 0, 1, 1])]
    model = _model(nodes, {}, [_value("x", [1, 4, 6, 6])], [_value("y", [1, 4, 1, 1])])
    x = {"x": np.random.default_rng(0).random((1, 4, 6, 6), dtype=np.float32)}
    before = _run_onnx(model, x)
    assert average_pool_pads(model) == 1
    assert [n.op_type for n in model.graph.node] == ["AveragePool", "Mul"]
    correction = next(i for i in model.graph.initializer if i.name.endswith("pad_correction"))
    assert np.allclose(np.frombuffer(correction.raw_data, np.float32), 49 / 36)
    np.testing.assert_allclose(_run_onnx(model, x), before, rtol=3e-7, atol=0)


def test_subgraph_constants_copies_outer_initializers_into_branches():
    import onnx
    from onnx import TensorProto, helper

    from deploykit.passes.onnx_subgraph_constants import subgraph_constants

    w = np.random.default_rng(0).random((4, 4), dtype=np.float32)
    then_branch = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["t"])], "then", [], [_value("t", [1, 4])])
    else_branch = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [], [_value("e", [1, 4])])
    nodes = [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
             helper.make_node("Greater", ["s", "zero"], ["cond"]),
             helper.make_node("If", ["cond"], ["y"], then_branch=then_branch, else_branch=else_branch)]
    model = _model(nodes, {"w": w, "zero": np.array(0, np.float32)}, [_value("x", [1, 4])], [_value("y", [1, 4])])
    x = {"x": np.random.default_rng(1).random((1, 4), dtype=np.float32)}
    before = _run_onnx(model, x)
    assert subgraph_constants(model) == 1  # the then branch; the else branch reads only x
    branch = next(a.g for a in model.graph.node[2].attribute if a.name == "then_branch")
    assert [i.name for i in branch.initializer] == ["w"] and branch.initializer[0].data_type == TensorProto.FLOAT
    onnx.checker.check_model(model)
    np.testing.assert_array_equal(_run_onnx(model, x), before)


def test_scalar_division_rewrite_is_a_mul_by_the_reciprocal():
    """MobileViT's attention ``scores / sqrt(24)`` (exported by torch's TorchScript exporter) stops onnx2tf's Div
    accuracy correction; the rewrite gives a Mul, within an ulp of the Div. A division by a tensor, by zero or of
    a constant is left alone, and the ladder offers the remedy only where a site exists."""
    from onnx import helper

    from deploykit.converters.onnx2tf_remedies import GraphFacts, ladder
    from deploykit.passes.onnx_scalar_division import scalar_division

    nodes = [helper.make_node("Div", ["x", "scale"], ["a"]), helper.make_node("Div", ["a", "x"], ["b"]),
             helper.make_node("Div", ["b", "zero"], ["c"]), helper.make_node("Div", ["scale", "x"], ["y"])]
    consts = {"scale": np.array(24 ** 0.5, np.float32), "zero": np.array(0, np.float32)}
    model = _model(nodes, consts, [_value("x", [1, 4])], [_value("y", [1, 4])])
    assert GraphFacts.of(model).scalar_divisions == 1
    assert "onnx2tf:scalar-division" in [name for name, _, _ in ladder(GraphFacts.of(model))]
    x = {"x": np.random.default_rng(0).uniform(0.5, 2, (1, 4)).astype(np.float32)}
    before = _run_onnx(model, x)
    assert scalar_division(model) == 1
    assert [n.op_type for n in model.graph.node] == ["Mul", "Div", "Div", "Div"]
    np.testing.assert_allclose(_run_onnx(model, x), before, rtol=3e-7, atol=0)
    assert GraphFacts.of(model).scalar_divisions == 0
