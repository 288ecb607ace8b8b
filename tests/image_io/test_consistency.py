"""Contradicting --image-input flags are refused before converting (issue 21, item 4; image_io/consistency.py):
each is a usage error naming the fix, and the consistent spellings of the same preprocessing pass."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import deploykit
from deploykit.core.errors import UsageError
from deploykit.image_io.consistency import check_statistics
from deploykit.image_io.spec import ImageInputOptions


def test_mean_outside_the_pixel_range_names_both_fixes():
    with pytest.raises(UsageError) as caught:
        check_statistics("0-1", (127.5,) * 3, (127.5,) * 3)
    assert "values near -127.5" in caught.value.message
    assert "--pixel-range 0-255" in caught.value.hint and "--mean 0.5 --std 0.5" in caught.value.hint


@pytest.mark.parametrize("pixel_range, mean, std", [
    ("0-1", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),  # torchvision
    ("0-255", (127.5,), (127.5,)),  # Keras MobileNet
    ("0-255", (103.94, 116.78, 123.68), (1.0,)),  # Caffe-era BGR means
    ("0-1", (0.5,), (0.5,)),  # PaddleOCR
    ("0-255", (0.0,), (1.0,)),  # raw pixels
    ("0-1", (0.0,), (2.0,)),  # a std above 1 shrinks the range: legal
])
def test_consistent_statistics_pass(pixel_range, mean, std):
    check_statistics(pixel_range, mean, std)


def _onnx_image_model(folder, input_name, metadata=None):
    weight = numpy_helper.from_array(np.random.default_rng(0).normal(size=(2, 3, 1, 1)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", [input_name, "w"], ["y"])], "colors",
                              [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    for key, value in (metadata or {}).items():
        model.metadata_props.add(key=key, value=value)
    path = folder / "colors.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("input_name, metadata, why", [
    ("image_rgb", None, "its input is named 'image_rgb'"),
    ("images", {"color_space": "RGB"}, "its ONNX metadata says color_space=RGB"),
])
def test_bgr_on_a_model_that_says_rgb_is_refused(tmp_path, input_name, metadata, why):
    source = _onnx_image_model(tmp_path, input_name, metadata)
    out = tmp_path / "out"
    with pytest.raises(UsageError) as caught:
        deploykit.convert(source, to="tflite", out=out,
                          image_inputs=ImageInputOptions(names=(input_name,), color="BGR"))
    assert caught.value.exit_code == 2
    assert caught.value.message == f"--color BGR contradicts the model: {why}"
    assert "pass --color RGB" in caught.value.hint
    assert not out.exists()


def test_the_stated_color_converts(tmp_path):
    source = _onnx_image_model(tmp_path, "image_rgb")
    report = deploykit.convert(source, to="tflite", out=tmp_path / "out",
                               image_inputs=ImageInputOptions(names=("image_rgb",), color="RGB"))
    assert report.artifacts[0].parity["passed"]


def test_a_word_inside_another_is_not_a_color():
    from deploykit.image_io.consistency import _stated_colors

    class Torch:
        framework = "torch"

    assert _stated_colors(Torch(), "pixel_values") == []
    assert _stated_colors(Torch(), "rgbd_frame") == []
    assert _stated_colors(Torch(), "frame_bgr") == [("BGR", "its input is named 'frame_bgr'")]
