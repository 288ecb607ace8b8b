"""``deploykit convert --detector`` the way a user mistypes it: one readable message and exit 2, nothing written."""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from tests.cli.test_convert_cmd import run


def _head(path, shape=(1, 22, 2100)):
    """A graph whose one output has ``shape`` (a yolov8-style head when [1, 4 + C, N])."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(shape))
    size = helper.make_tensor("shape", TensorProto.INT64, [len(shape)], list(shape))
    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], axes=[1, 2, 3], keepdims=0),
             helper.make_node("Expand", ["m", "shape"], ["e"]), helper.make_node("Sigmoid", ["e"], ["output0"])]
    graph = helper.make_graph(nodes, "head", [x], [y], initializer=[size])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    return path


def test_detector_flags_without_a_detector_are_a_usage_error(tmp_path):
    result = run("convert", _head(tmp_path / "m.onnx"), "--iou", "0.5", "--class-agnostic", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "--iou, --class-agnostic apply to --detector" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_preset_that_does_not_fit_names_the_outputs(tmp_path):
    result = run("convert", _head(tmp_path / "m.onnx"), "--detector", "yolox", "--to", "tflite", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "--detector yolox does not fit this model" in result.stderr and "output0 [1, 22, 2100]" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_unknown_preset_and_bad_values(tmp_path):
    model = _head(tmp_path / "m.onnx")
    result = run("convert", model, "--detector", "yolo9000", "--out", tmp_path / "out")
    assert result.returncode == 2 and "is not a preset" in result.stderr and "yolov8, yolox, picodet" in result.stderr
    result = run("convert", model, "--detector", "yolov8", "--iou", "1.5", "--out", tmp_path / "out")
    assert result.returncode == 2 and "--iou must be in (0, 1]" in result.stderr


def test_executorch_is_refused_before_anything_converts(tmp_path):
    result = run("convert", _head(tmp_path / "m.onnx"), "--detector", "yolov8", "--to", "executorch",
                 "--out", tmp_path / "out")
    assert result.returncode == 2
    assert "executorch" in result.stderr.lower() and "Traceback" not in result.stderr
