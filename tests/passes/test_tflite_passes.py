"""TFLite-stage passes and the TFLite half of the --strict-graph checker, on a real converted model
and on copies with an activation split out of its conv or a batch norm's MUL + ADD put back."""

from __future__ import annotations

import numpy as np
import pytest

from deploykit.passes.check import check_tflite
from deploykit.passes.tflite_fuse_activation import fuse_activation_tflite
from deploykit.passes.tflite_names import shorten_names
from tests.passes.helpers import assert_pass, run_tflite_bytes, tflite_ops, unfold_batchnorm, unfuse_activation

X = {"image": np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)}


@pytest.fixture(scope="module")
def probe_tflite(tmp_path_factory) -> bytes:
    """The Keras probe converted to fp32 TFLite by the keras->tflite path (no deploykit passes)."""
    from deploykit.converters import ConvertOptions
    from deploykit.converters.keras_tflite import convert
    from deploykit.loaders import load_source
    from tests.passes.nets import keras_probe

    folder = tmp_path_factory.mktemp("tflite_probe")
    keras_probe().save(folder / "probe.keras")
    out = folder / "probe.tflite"
    convert(load_source(folder / "probe.keras"), out, ConvertOptions(), None)
    return out.read_bytes()


def test_converter_output_is_clean(probe_tflite):
    check = check_tflite(probe_tflite)
    assert check.ok and len(check.fused_activations) == 4
    assert fuse_activation_tflite(probe_tflite).items == ()  # TFLiteConverter fused everything already


@pytest.mark.parametrize("op_type, activation", [("CONV_2D", "RELU6"), ("DEPTHWISE_CONV_2D", "RELU"), ("FULLY_CONNECTED", "RELU")])
def test_fuse_activation(probe_tflite, op_type, activation):
    split = unfuse_activation(probe_tflite, op_type)
    check = check_tflite(split)
    assert len(check.unfused_activations) == 1 and check.unfused_activations[0].startswith(op_type)
    result = fuse_activation_tflite(split)
    assert len(result.items) == 1
    assert_pass(tflite_ops(split), tflite_ops(result.value), removed={activation: 1},
                outputs=(run_tflite_bytes(split, X), run_tflite_bytes(result.value, X)), rtol=1e-6)
    assert check_tflite(result.value).ok


def test_checker_finds_an_unfolded_batchnorm(probe_tflite):
    unfolded = unfold_batchnorm(probe_tflite, scale=1.5, shift=0.25)
    check = check_tflite(unfolded)
    assert not check.ok
    assert len(check.unfolded_batchnorms) == 1 and "-> MUL by a constant" in check.unfolded_batchnorms[0]
    assert "MUL" in tflite_ops(unfolded) and "ADD" in tflite_ops(unfolded)


def test_shorten_names(probe_tflite):
    result = shorten_names(probe_tflite)
    assert len(result.value) < len(probe_tflite) and "bytes of tensor names" in result.items[0]
    assert_pass(tflite_ops(probe_tflite), tflite_ops(result.value), removed={},
                outputs=(run_tflite_bytes(probe_tflite, X), run_tflite_bytes(result.value, X)), rtol=0)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=result.value)
    names = [d["name"] for d in interpreter.get_tensor_details()]
    assert len(names) == len(set(names)) and not any(";" in n for n in names)
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["image"], "outputs": ["logits"]}}
    assert shorten_names(result.value).items == ()  # idempotent


def test_long_names_are_cut_to_the_op():
    """litert-torch writes Python module paths; a name keeps its first segment and at most 96 characters."""
    from deploykit.passes.tflite_names import _short

    long = "tests.zoo.torch_nets.MobileNetV2/torch.nn.modules.container.Sequential_features/" * 3 + "ReLU6_2;other"
    short = _short(long)
    assert len(short) <= 96 and short.endswith("ReLU6_2") and ";" not in short
    assert _short("model/block_1_relu/Relu6;model/block_1_bn/add_1") == "model/block_1_relu/Relu6"
