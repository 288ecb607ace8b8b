"""Bounded outputs: which outputs the source graph bounds, and how their errors are scaled."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from deploykit.loaders import load_source
from deploykit.loaders.output_ranges import bounded_outputs
from deploykit.parity import metrics as M
from deploykit.parity.compare import ParityReport, compare_output
from deploykit.parity.profiles import get_profile


def _save(tmp_path, nodes, outputs, initializers=(), name="m.onnx"):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info(o, TensorProto.FLOAT, shape) for o, shape in outputs.items()],
                              list(initializers))
    path = tmp_path / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    return path


def test_onnx_outputs_bounded_through_moves_and_not_through_arithmetic(tmp_path):
    shape = helper.make_tensor("shape", TensorProto.INT64, [1], [4])
    pad = helper.make_tensor("pad", TensorProto.FLOAT, [1, 4], [9.0] * 4)
    nodes = [helper.make_node("Sigmoid", ["x"], ["s"]), helper.make_node("Reshape", ["s", "shape"], ["probs"]),
             helper.make_node("Softmax", ["x"], ["soft"]), helper.make_node("Tanh", ["x"], ["t"]),
             helper.make_node("Concat", ["soft", "t"], ["joined"], axis=1),
             helper.make_node("Concat", ["soft", "pad"], ["padded"], axis=1),
             helper.make_node("Mul", ["s", "s"], ["squared"]), helper.make_node("Relu", ["x"], ["relu"])]
    path = _save(tmp_path, nodes, {"probs": [4], "joined": [1, 8], "padded": [1, 8], "squared": [1, 4], "relu": [1, 4]},
                 [shape, pad])
    assert bounded_outputs(load_source(path)) == {"probs": (0.0, 1.0), "joined": (-1.0, 1.0)}


def test_an_if_is_bounded_only_when_both_branches_are(tmp_path):
    def branch(op):
        out = helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])
        return helper.make_graph([helper.make_node(op, ["x"], ["b"])], op, [], [out])

    nodes = [helper.make_node("ReduceMax", ["x"], ["m"], keepdims=0),
             helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("z", TensorProto.FLOAT, [], [0.0])),
             helper.make_node("Greater", ["m", "zero"], ["c"]),
             helper.make_node("If", ["c"], ["both"], then_branch=branch("Sigmoid"), else_branch=branch("HardSigmoid")),
             helper.make_node("If", ["c"], ["one"], then_branch=branch("Sigmoid"), else_branch=branch("Relu"))]
    path = _save(tmp_path, nodes, {"both": [1, 4], "one": [1, 4]})
    assert bounded_outputs(load_source(path)) == {"both": (0.0, 1.0)}


def test_torch_export_softmax_output_is_bounded(tmp_path):
    import torch

    class Net(torch.nn.Module):
        def forward(self, x):
            return x * 2, torch.softmax(x, dim=-1).reshape(-1)

    path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(Net(), (torch.zeros(1, 4),)), path)
    model = load_source(path)
    assert bounded_outputs(model) == {model.outputs[1].name: (0.0, 1.0)}


def test_near_zero_probability_is_judged_against_its_range(tmp_path):
    """ONNX Runtime's Sigmoid against float64 on logits where the probability is ~5e-5: its absolute
    error (about 1e-7) is a large fraction of that tiny peak, but 1e-7 of the probability's range."""
    import onnxruntime as ort

    path = _save(tmp_path, [helper.make_node("Sigmoid", ["x"], ["p"])], {"p": [1, 4]})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    logits = [rng.uniform(-12.0, -10.0, (1, 4)).astype(np.float32) for _ in range(8)]
    exact = [1.0 / (1.0 + np.exp(-x.astype(np.float64))) for x in logits]
    fast = [session.run(None, {"x": x})[0] for x in logits]
    assert max(M.max_abs_error(e, f) for e, f in zip(exact, fast)) > 0  # the reference is not exact

    fp32 = get_profile("fp32")
    by_peak = compare_output("p", exact, fast, fp32)
    by_range = compare_output("p", exact, fast, fp32, value_range=(0.0, 1.0))
    worst = max(M.max_abs_error(e, f) for e, f in zip(exact, fast))
    assert by_range.metrics["max_rel_error"] == pytest.approx(worst)  # scale 1: the absolute error
    assert by_range.metrics["max_rel_error"] < by_peak.metrics["max_rel_error"]
    assert by_range.passed
    assert not by_peak.passed  # the motivation: scaled by its own peak, the inexact reference fails it
    # A wrong probability still fails against the range: 1e-3 off is 1e-3 of it.
    assert not compare_output("p", exact, [e + 1e-3 for e in exact], fp32, value_range=(0.0, 1.0)).passed


def test_value_range_round_trips_the_report():
    result = compare_output("p", [np.array([0.5])], [np.array([0.5])], get_profile("fp32"), value_range=(0.0, 1.0))
    report = ParityReport("s", "onnx", "a", "coreml", "fp32", "given", {}, (), {}, (result,))
    again = ParityReport.from_json(report.to_json())
    assert again.outputs[0].value_range == (0.0, 1.0)
    assert report.to_summary()["outputs"]["p"]["value_range"] == [0.0, 1.0]


def test_worst_sample_is_the_one_that_fails_max_rel_error():
    """A failing max_rel_error names the sample that fails it (what localization and the fp16 estimate
    use), even when another sample has the lower SNR."""
    fp32 = get_profile("fp32")
    refs = [np.ones(100), np.ones(100)]
    spike = np.zeros(100)
    spike[0] = 2e-4
    outs = [refs[0] + 9e-5, refs[1] + spike]  # sample 0: 80.9 dB, within max_rel; sample 1: 94 dB, 2e-4 off
    assert M.snr_db(refs[0], outs[0]) < M.snr_db(refs[1], outs[1])
    result = compare_output("y", refs, outs, fp32)
    assert not result.passed and "max_rel_error" in {c.metric for c in result.failed_checks}
    assert result.worst_sample == 1
    assert compare_output("y", refs[:1], outs[:1], fp32).worst_sample == 0
