"""Issue 26.1, end to end: the six opset-6 layers of the `onnx` wheel's backend test data that stopped before
converting ("ONNX Runtime cannot run ... BatchNormalization(6)") convert to TFLite and Core ML from the graph
upgraded when loaded, and pass parity on the file's own input against a reference that matches the file's own
expected output. About a minute per layer (heavy: `pytest -m heavy`; bench/corpus_onnx_layers.py runs all 117)."""

from __future__ import annotations

import numpy as np
import pytest

import deploykit
from deploykit.pipeline.request import VerifyOptions
from tests.loaders.test_onnx_upgrade import DATA, SIX, _reference_matches_file, _tensors


def _convert_with_its_data(folder, to: str, tmp_path):
    """``deploykit.convert`` of a wheel graph, parity on the graph's own input (its input_*.pb as --data)."""
    source = deploykit.load_source(folder / "model.onnx")
    data = tmp_path / "data.npz"
    np.savez(data, **dict(zip((t.name for t in source.inputs), _tensors(folder, "input"))))
    return deploykit.convert(folder / "model.onnx", to=to, out=tmp_path / "out", verify_options=VerifyOptions(data=str(data)))


@pytest.mark.heavy
@pytest.mark.parametrize("name", SIX)
def test_old_layer_converts_to_both_targets_and_passes_parity(name, tmp_path):
    folder = DATA / name
    assert _reference_matches_file(deploykit.load_source(folder / "model.onnx"), folder) == "onnxruntime"
    report = _convert_with_its_data(folder, "tflite,coreml", tmp_path)
    assert report.source["opset"] == {"file": 6, "upgraded_to": 13}
    assert sorted(a.target for a in report.artifacts) == ["coreml", "tflite"] and not report.failures
    for artifact in report.artifacts:
        assert artifact.parity["passed"], (artifact.target, artifact.parity)
        assert artifact.parity["inputs"] == "npz"
        steps = {p["name"]: p.get("items") for p in artifact.passes}
        assert steps["upgrade_opset"][0].startswith("6 -> 13 (when loaded")


def test_prelu_takes_the_pseudo_ops_rung():
    """TFLite's PRELU takes rank 4 at most; onnx2tf's pseudo PReLU (builtin RELU, ABS, SUB, MUL, ADD) is exact."""
    from deploykit.converters.onnx2tf_remedies import GraphFacts, ladder

    plan = ladder(GraphFacts(frozenset({"PRelu"}), (("x", 5),), 0))
    assert [name for name, _, _ in plan][:2] == ["onnx2tf", "onnx2tf:pseudo-ops"]
    assert plan[1][2].params["replace_to_pseudo_operators"] == ["prelu"]


def test_rank5_prelu_converts_to_tflite(tmp_path):
    """The wheel's PReLU over a 5-D input (opset 6, per-channel slope): plain onnx2tf stops on tfl.prelu's rank
    limit; the pseudo-ops rung writes builtin ops and matches the file's output exactly."""
    folder = DATA / "test_PReLU_3d_multiparam"
    report = _convert_with_its_data(folder, "tflite", tmp_path)
    (artifact,) = report.artifacts
    assert [(a["name"], a["outcome"]) for a in artifact.attempts] == [("onnx2tf", "failed"),
                                                                       ("onnx2tf:pseudo-ops", "kept")]
    assert "tfl.prelu" in artifact.attempts[0]["error"]
    assert "PRELU" not in artifact.op_histogram and not any(op.startswith("Flex") for op in artifact.op_histogram)
    assert artifact.parity["passed"] and max(o["max_rel_error"] for o in artifact.parity["outputs"].values()) == 0


def test_output_that_reads_both_ways_is_settled_and_recorded(tmp_path):
    """AvgPool2d: 2x3x6x6 -> 2x3x3x3, which onnx2tf writes channels-last as 2x3x3x3. Compared as NCHW it failed
    at 1.3 while the artifact was right; now the comparison settles it, the record says NHWC, and a later
    `deploykit verify` reads the record's layout."""
    folder = DATA / "test_AvgPool2d"
    report = _convert_with_its_data(folder, "tflite", tmp_path)
    (artifact,) = report.artifacts
    assert artifact.parity["passed"] and artifact.attempts[0]["outcome"] == "kept"
    (output,) = artifact.outputs
    assert output.shape == (2, 3, 3, 3) and output.layout == "NHWC"
    assert any("parity settled it" in note for note in artifact.layout_changes)
    again = deploykit.verify(folder / "model.onnx", tmp_path / "out" / artifact.path, data=str(tmp_path / "data.npz"))
    assert again.passed and again.outputs[0].layout == "transposed (0, 2, 3, 1) (channels-first <-> channels-last)"


def test_dilated_strided_conv3d_converts_to_tflite_without_flex(tmp_path):
    """The wheel's Conv3d_dilated_strided: plain onnx2tf stops ("strides > 1 not supported in conjunction with
    dilation_rate > 1"); the rung onnx2tf:dense-dilated-conv writes an undilated CONV_3D with a zero-filled kernel."""
    folder = DATA / "test_Conv3d_dilated_strided"
    report = _convert_with_its_data(folder, "tflite", tmp_path)
    (artifact,) = report.artifacts
    assert [(a["name"], a["outcome"]) for a in artifact.attempts] == [("onnx2tf", "failed"),
                                                                       ("onnx2tf:dense-dilated-conv", "kept")]
    assert "dilation_rate" in artifact.attempts[0]["error"]
    assert "CONV_3D" in artifact.op_histogram and not any(op.startswith("Flex") for op in artifact.op_histogram)
    assert artifact.parity["passed"]


def test_split_of_an_old_graph_converts_to_tflite_without_flex(tmp_path):
    """The wheel's test_operator_chunk (Split-6 of a 1-D tensor into [2, 1]): upgraded at IR 3, onnxsim refused
    the graph and onnx2tf wrote the sizes' Constant as a captured int64 tensor, hence FlexSplitV; at IR 7 the graph
    is simplified and SPLIT_V is builtin."""
    folder = DATA.parent / "pytorch-operator" / "test_operator_chunk"
    report = deploykit.convert(folder / "model.onnx", to="tflite", out=tmp_path / "out")
    (artifact,) = report.artifacts
    assert not any(op.startswith("Flex") for op in artifact.op_histogram) and artifact.parity["passed"]


@pytest.mark.heavy
def test_dilated_max_pool_converts_to_both_targets(tmp_path):
    """The wheel's MaxPool2d_stride_padding_dilation (kernel 60x80, dilations 10, on 1000x1000): onnx2tf wrote
    FlexDilation2D and onnx2coreml dropped the dilations (97x97 instead of 43x25); the rewrite into an undilated
    pool over the input's phases gives both targets the file's expected output exactly."""
    folder = DATA / "test_MaxPool2d_stride_padding_dilation"
    report = _convert_with_its_data(folder, "tflite,coreml", tmp_path)
    tflite, coreml = sorted(report.artifacts, key=lambda a: a.target != "tflite")
    assert [(a["name"], a["outcome"]) for a in tflite.attempts] == [("onnx2tf", "failed"),
                                                                     ("onnx2tf:phased-dilated-pool", "kept")]
    assert not any(op.startswith("Flex") for op in tflite.op_histogram)
    assert coreml.converter == "onnx->coreml (onnx2coreml, phased-dilated-pool)"
    for artifact in (tflite, coreml):
        assert artifact.parity["passed"], artifact.parity
        assert max(o["max_rel_error"] for o in artifact.parity["outputs"].values()) == 0.0, artifact.parity


def test_small_dilated_max_pool_converts_to_coreml_directly(tmp_path):
    """A dilated, strided, padded MaxPool: the direct route lowers it exactly after the rewrite, so the fallback
    through onnx2tf (which changes the interface to NHWC) is never needed."""
    import onnx

    from tests.passes.test_onnx_dilated_max_pool import CASES, _pool

    x_shape, y_shape, attrs = CASES["2d strided padded"]
    onnx.save(_pool(x_shape, y_shape, **attrs), tmp_path / "pool.onnx")
    report = deploykit.convert(tmp_path / "pool.onnx", to="coreml", out=tmp_path / "out")
    (artifact,) = report.artifacts
    assert artifact.converter == "onnx->coreml (onnx2coreml, phased-dilated-pool)"
    assert [(a["name"], a["outcome"]) for a in artifact.attempts] == [("onnx2coreml", "kept")]
    assert artifact.parity["passed"] and artifact.parity["outputs"]["y"]["max_rel_error"] == 0.0, artifact.parity


def test_float64_graph_converts_to_tflite_in_float32(tmp_path):
    """The wheel's test_operator_add_size1_broadcast (a PyTorch DoubleTensor Add): onnx2tf kept float64, which no
    TFLite kernel takes (FlexAddV2); the rung onnx2tf:float32 computes it in float32, as Core ML does, and the
    artifact's interface is float32."""
    folder = DATA.parent / "pytorch-operator" / "test_operator_add_size1_broadcast"
    assert {t.dtype for t in deploykit.load_source(folder / "model.onnx").inputs} == {"float64"}
    report = _convert_with_its_data(folder, "tflite", tmp_path)
    (artifact,) = report.artifacts
    assert [(a["name"], a["outcome"]) for a in artifact.attempts] == [("onnx2tf", "failed"),
                                                                       ("onnx2tf:float32", "kept")]
    assert "FlexAddV2" in artifact.attempts[0]["error"]
    assert {t.dtype for t in artifact.inputs} == {"float32"} and artifact.op_histogram == {"ADD": 1}
    assert artifact.parity["passed"], artifact.parity
