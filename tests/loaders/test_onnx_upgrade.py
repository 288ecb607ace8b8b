"""Old ONNX graphs are upgraded before anything runs them (issue 26.1), on the `onnx` wheel's own single-layer
graphs (PyTorch layers exported at opset 6, each with its input and expected output): ONNX Runtime no longer
implements BatchNormalization-6, AveragePool-1, Mul-6 or PRelu-6, so the loader upgrades the graph first and
the parity reference runs the upgraded graph; a graph that cannot be upgraded is run as it is (ONNX Runtime's
old kernels, else onnx's reference evaluator), recorded as such; the converters start from the same graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploykit.converters.onnx_prepare import _upgrade_opset
from deploykit.loaders import load_source
from deploykit.runners import runner_for_source
from deploykit.runners.onnx_reference_runner import OnnxReferenceRunner
from deploykit.runners.onnxrt_runner import OnnxRuntimeRunner

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data" / "pytorch-converted"
# Issue 26's six layers: exit 2 before converting ("Could not find an implementation for BatchNormalization(6)")
SIX = ("test_AvgPool1d", "test_AvgPool3d", "test_BatchNorm1d_3d_input_eval", "test_BatchNorm2d_eval", "test_GLU",
       "test_PReLU_3d")


def _tensors(folder: Path, kind: str) -> list[np.ndarray]:
    found = []
    for path in sorted((folder / "test_data_set_0").glob(f"{kind}_*.pb"), key=lambda p: int(p.stem.split("_")[1])):
        tensor = onnx.TensorProto()
        tensor.ParseFromString(path.read_bytes())
        found.append(numpy_helper.to_array(tensor))
    return found


def _reference_matches_file(source, folder: Path) -> str:
    """The parity reference on the file's input equals the file's expected output; the runner's name."""
    feeds = dict(zip((t.name for t in source.inputs), _tensors(folder, "input")))
    with runner_for_source(source) as runner:
        got = runner.infer(feeds)
    for spec, want in zip(source.outputs, _tensors(folder, "output")):
        np.testing.assert_allclose(got[spec.name], want, rtol=1e-5, atol=1e-6)
    return runner.name


@pytest.mark.parametrize("name", SIX)
def test_old_layer_is_upgraded_when_loaded_and_its_reference_matches_the_file(name):
    folder = DATA / name
    source = load_source(folder / "model.onnx")
    assert source.opset == {"file": 6, "upgraded_to": 13}
    assert source.to_json()["opset"] == {"file": 6, "upgraded_to": 13}
    assert next(o.version for o in source.handle.opset_import if o.domain in ("", "ai.onnx")) == 13
    assert isinstance(runner_for_source(source), OnnxRuntimeRunner)
    assert _reference_matches_file(source, folder) == "onnxruntime"
    # IR 3 listed the weights among the inputs; the upgraded graph has the IR opset 13 needs, weights as weights
    assert source.handle.ir_version == 7
    assert [v.name for v in source.handle.graph.input] == [t.name for t in source.inputs]


def test_upgraded_ir3_graph_is_simplified(tmp_path):
    """The version converter turns Split-6's sizes into an initializer; kept at IR 3 the graph was invalid (an
    initializer that is no input) and onnxsim refused it, leaving a Constant onnx2tf writes as FlexSplitV."""
    from deploykit.converters import Workspace
    from deploykit.converters.onnx_prepare import prepared

    source = load_source(DATA.parent / "pytorch-operator" / "test_operator_chunk" / "model.onnx")
    steps = prepared(source, Workspace(root=tmp_path)).steps
    assert "onnxsim: 2 -> 1 nodes" in steps, steps


@pytest.mark.parametrize("name", ["test_PReLU_1d_multiparam", "test_PReLU_2d_multiparam", "test_PReLU_3d_multiparam"])
def test_channel_prelu_keeps_its_meaning_through_the_upgrade(name):
    """PRelu-6 applied a (C,) slope per channel; opset 7 broadcasts it from the right, which the version converter
    leaves as it is (ONNX Runtime then refuses the upgraded graph). The slope becomes (C, 1, ..., 1)."""
    folder = DATA / name
    source = load_source(folder / "model.onnx")
    assert source.opset == {"file": 6, "upgraded_to": 13}
    (slope,) = source.handle.graph.initializer
    rank = len(_tensors(folder, "input")[0].shape)
    assert tuple(slope.dims) == (3,) + (1,) * (rank - 2)
    assert _reference_matches_file(source, folder) == "onnxruntime"


def test_graph_that_cannot_be_upgraded_runs_in_onnx_reference_evaluator(monkeypatch, tmp_path):
    """The version converter fails and ONNX Runtime has no BatchNormalization-6: onnx's reference evaluator runs
    the file's own graph, which stays the handle (the converters get it as it is), and the record says so."""
    from onnx import version_converter

    def refuse(model, version):
        raise RuntimeError("No Adapter For BatchNormalization")

    monkeypatch.setattr(version_converter, "convert_version", refuse)
    folder = DATA / "test_BatchNorm2d_eval"
    source = load_source(folder / "model.onnx")
    assert source.opset == {"file": 6, "not_upgraded": "RuntimeError: No Adapter For BatchNormalization",
                            "reference": "onnx.reference"}
    assert next(o.version for o in source.handle.opset_import if o.domain in ("", "ai.onnx")) == 6
    runner = runner_for_source(source)
    assert isinstance(runner, OnnxReferenceRunner)
    assert _reference_matches_file(source, folder) == "onnx.reference"
    feeds = dict(zip((t.name for t in source.inputs), _tensors(folder, "input")))
    with runner:
        (record,) = runner.trace(feeds)
    assert record.op == "BatchNormalization" and record.value.shape == _tensors(folder, "output")[0].shape
    _, step = _upgrade_opset(source.handle, source.opset)  # preparation keeps that graph and says why
    assert step == "upgrade_opset: kept opset 6 (RuntimeError: No Adapter For BatchNormalization; reference: " \
                   "onnx.reference)"


def test_upgraded_graph_onnxruntime_refuses_falls_back_to_the_file_in_the_reference_evaluator(tmp_path):
    """A PRelu-6 whose per-channel slope is a graph input (no constant to reshape): the upgraded graph broadcasts
    it against the last axis, which ONNX Runtime refuses; the file's own graph runs in onnx's reference evaluator."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 5])
    slope = helper.make_tensor_value_info("slope", TensorProto.FLOAT, [3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 5])
    graph = helper.make_graph([helper.make_node("PRelu", ["x", "slope"], ["y"])], "prelu6", [x, slope], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)], ir_version=3)
    path = tmp_path / "prelu6.onnx"
    onnx.save(model, str(path))
    source = load_source(path)
    assert source.opset["reference"] == "onnx.reference"
    assert source.opset["not_upgraded"].startswith("ONNX Runtime cannot run the upgraded graph")
    feeds = {"x": np.random.default_rng(0).normal(size=(1, 3, 4, 5)).astype(np.float32),
             "slope": np.array([0.1, 0.2, 0.3], np.float32)}
    with runner_for_source(source) as runner:
        got = runner.infer(feeds)["y"]
    want = np.where(feeds["x"] > 0, feeds["x"], feeds["x"] * feeds["slope"].reshape(1, 3, 1, 1))
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_experimental_op_without_adapter_keeps_onnxruntime(tmp_path):
    """ImageScaler (opset 8, tiny-YOLOv2 era) has no version-converter adapter and no reference implementation;
    ONNX Runtime still runs the file's graph, and stays the reference."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    node = helper.make_node("ImageScaler", ["x"], ["y"], bias=[1.0, 2.0, 3.0], scale=2.0)
    model = helper.make_model(helper.make_graph([node], "scaler", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 8)], ir_version=3)
    path = tmp_path / "scaler.onnx"
    onnx.save(model, str(path))
    source = load_source(path)
    assert source.opset["reference"] == "onnxruntime" and source.opset["file"] == 8
    assert isinstance(runner_for_source(source), OnnxRuntimeRunner)


def test_current_graph_is_recorded_and_left_alone():
    from deploykit.core.types import SourceModel

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x],
                                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])]),
                              opset_imports=[helper.make_opsetid("", 13)])
    assert _upgrade_opset(model, {"file": 13}) == (model, None)
    assert _upgrade_opset(model, {"file": 6, "upgraded_to": 13})[1].startswith("upgrade_opset: 6 -> 13 (when loaded")
    assert "opset" not in SourceModel("torch", "pt2", "m.pt2", "", "m", (), ()).to_json()  # other records unchanged


def test_current_graph_loads_as_it_is(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu", [x],
                                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])]),
                              opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(tmp_path / "relu.onnx"))
    source = load_source(tmp_path / "relu.onnx")
    assert source.opset == {"file": 17} and source.handle.opset_import[0].version == 17
