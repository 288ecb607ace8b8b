"""The two refusals of the onnx wheel's single-layer graphs that exact ONNX rewrites fix (issue 26.3), converted
the way a user does (``deploykit convert ... --to tflite`` in a subprocess), parity checked by the pipeline and
again here against ONNX Runtime or the wheel's expected output:

- 3-D pools: plain onnx2tf writes FlexMaxPool3D / FlexAvgPool3D (refused without --allow-flex); the rung
  ``onnx2tf:pool3d-as-2d`` splits them into 2-D pools (passes ``max_pool3d_as_2d``, ``average_pool3d_as_2d``).
- ``x.repeat(1, 2, 3, 4)`` (Tile): plain onnx2tf tiled the NHWC tensor by the NCHW repeats, [1, 6, 12, 8] instead
  of [1, 4, 9, 16], while the repeats were a Constant node it has no values for (the IR-3 graph onnxsim refused).
  Since the upgrade gives such graphs IR 7, onnxsim folds the repeats and plain onnx2tf is right; the rung
  ``onnx2tf:tile-as-concat`` (Concats of copies) stays for graphs onnxsim refuses, and is checked here by --route.

The rewrites themselves are tested in tests/passes/test_onnx_pool3d_and_tile.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO

FP32_BOUND = 1e-4  # the fp32 profile's max_rel_error bound


def _cli(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "deploykit.cli.app", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=900)


def _artifact(out: Path) -> dict:
    (artifact,) = json.loads((out / "deploykit-report.json").read_text())["artifacts"]
    return artifact


def _wheel_case(folder: str) -> Path:
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / folder


def _litert(path: Path, feeds: dict, expected: dict) -> dict:
    """Run the artifact by signature names; channel-first arrays are moved to the artifact's channel-last layout
    and its outputs back, where the shapes say so."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_runner()
    details = runner.get_input_details()
    ready = {}
    for name, value in feeds.items():
        if tuple(details[name]["shape"]) != value.shape:
            value = np.moveaxis(value, 1, -1)
        ready[name] = value
    got = runner(**ready)
    return {name: (np.moveaxis(got[name], -1, 1) if got[name].shape != ref.shape else got[name])
            for name, ref in expected.items()}


def _rel(got, ref) -> float:
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def pools_3d_net():
    """The wheel's MaxPool3d (stride 2, padding 1) and an AvgPool3d that excludes its pads, side by side, at
    opset 17 (the wheel's own AvgPool3d graphs are opset 6, which ONNX Runtime no longer runs)."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("MaxPool", ["x"], ["peak"], kernel_shape=[2, 2, 2], strides=[2, 2, 2], pads=[1] * 6),
             helper.make_node("AveragePool", ["x"], ["mean"], kernel_shape=[3, 3, 3], pads=[1] * 6)]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 6, 6])]
    outputs = [helper.make_tensor_value_info("peak", TensorProto.FLOAT, [1, 3, 3, 4, 4]),
               helper.make_tensor_value_info("mean", TensorProto.FLOAT, [1, 3, 5, 6, 6])]
    graph = helper.make_graph(nodes, "pools", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.heavy  # ~70 s: a CLI conversion through the ladder (bench/results/corpus.md covers the wheel's layers)
def test_3d_pools_convert_without_flex_and_pass_parity(tmp_path):
    import onnx
    import onnxruntime as ort

    source = tmp_path / "pools.onnx"
    onnx.save(pools_3d_net(), str(source))
    result = _cli("convert", source, "--to", "tflite", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr[-2000:]
    artifact = _artifact(tmp_path / "out")
    attempts = artifact["attempts"]
    assert [(a["name"], a["outcome"]) for a in attempts] == [("onnx2tf", "failed"), ("onnx2tf:pool3d-as-2d", "kept")]
    assert "FlexAvgPool3D" in attempts[0]["error"] and "FlexMaxPool3D" in attempts[0]["error"]
    assert "3-D pools split into 2-D ones (rung onnx2tf:pool3d-as-2d)" in attempts[0]["error"]
    assert artifact["converter"] == "onnx->tflite (onnx2tf, pool3d-as-2d)"
    ops = artifact["op_histogram"]
    assert not any(op.startswith("Flex") for op in ops)
    assert ops.get("MAX_POOL_2D") == 2 and ops.get("AVERAGE_POOL_2D") == 2
    assert artifact["parity"]["passed"] is True
    x = np.random.default_rng(1).normal(size=(1, 3, 5, 6, 6)).astype(np.float32)
    ref = dict(zip(["peak", "mean"], ort.InferenceSession(str(source)).run(None, {"x": x})))
    got = _litert(tmp_path / "out" / artifact["path"], {"x": x}, ref)
    assert _rel(got["peak"], ref["peak"]) == 0.0  # measured 0
    assert _rel(got["mean"], ref["mean"]) <= FP32_BOUND


@pytest.mark.heavy  # ~45 s: two CLI conversions through the ladder
def test_repeat_converts_to_the_right_layout_and_passes_parity(tmp_path):
    import onnx
    from onnx import numpy_helper

    case = _wheel_case("pytorch-operator/test_operator_repeat")
    x = numpy_helper.to_array(onnx.load_tensor(str(case / "test_data_set_0" / "input_0.pb")))
    expected = numpy_helper.to_array(onnx.load_tensor(str(case / "test_data_set_0" / "output_0.pb")))
    for route, attempts, converter in ((None, [("onnx2tf", "kept")], "onnx->tflite (onnx2tf)"),
                                       ("onnx2tf:tile-as-concat", [("onnx2tf:tile-as-concat", "kept")],
                                        "onnx->tflite (onnx2tf, tile-as-concat)")):
        out = tmp_path / (route or "ladder").replace(":", "-")
        result = _cli("convert", case / "model.onnx", "--to", "tflite", "--out", out, *(["--route", route] if route else []))
        assert result.returncode == 0, result.stderr[-2000:]
        artifact = _artifact(out)
        assert [(a["name"], a["outcome"]) for a in artifact["attempts"]] == attempts
        assert artifact["converter"] == converter and artifact["parity"]["passed"] is True
        if route:
            assert artifact["op_histogram"] == {"CONCATENATION": 3}
        got = _litert(out / artifact["path"], {"t_0": x}, {"t_2": expected})  # names "0", "2" made identifiers
        np.testing.assert_array_equal(got["t_2"], expected)


def test_the_rungs_are_offered_where_their_rewrites_apply():
    import onnx
    from onnx import helper, numpy_helper

    from deploykit.converters.onnx2tf_remedies import GraphFacts, ladder
    from deploykit.converters.onnx_tflite import _flex_remedy_text

    pools = GraphFacts.of(pools_3d_net())
    # the excluded pads are the split's own correction: average-pool-pads has nothing left to do
    assert pools.pools_3d == 2 and pools.padded_average_pools == 0 and pools.constant_tiles == 0
    plan = ladder(pools)
    # the rewrite comes before the layout fix; the rank-5 input also gets keep-input-shape, after it
    assert [name for name, _, _ in plan] == ["onnx2tf", "onnx2tf:pool3d-as-2d", "onnx2tf:layout-fix",
                                             "onnx2tf:keep-input-shape"]
    assert plan[1][2].rewrites == ("max_pool3d_as_2d", "average_pool3d_as_2d")
    assert _flex_remedy_text(plan) == "3-D pools split into 2-D ones (rung onnx2tf:pool3d-as-2d)"

    repeat = onnx.load(str(_wheel_case("pytorch-operator/test_operator_repeat") / "model.onnx"))
    facts = GraphFacts.of(repeat)
    assert facts.constant_tiles == 1
    assert [name for name, _, _ in ladder(facts)] == ["onnx2tf", "onnx2tf:tile-as-concat", "onnx2tf:layout-fix"]
    # rank 2 (the wheel's test_operator_repeat_dim_overflow tiles after a Reshape to rank 4, which it converts)
    small = helper.make_graph([helper.make_node("Tile", ["x", "r"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [4, 9])],
                              initializer=[numpy_helper.from_array(np.array([2, 3], np.int64), "r")])
    assert GraphFacts.of(helper.make_model(small)).constant_tiles == 0
