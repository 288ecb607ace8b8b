"""The counting rules on graphs small enough to count by hand, and the errors a user can cause."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from deploykit.inspection.graph import GraphBuilder
from deploykit.inspection.rules import conv_layer_type
from tests.conftest import REPO, save_keras

DEPLOYKIT = [sys.executable, "-m", "deploykit.cli.app"]


def run(*args):
    return subprocess.run([*DEPLOYKIT, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=600)


@pytest.mark.parametrize("kernel, groups, channels, spatial, expected", [
    ((3, 3), 32, 32, (112, 112), "depthwise"),
    ((1, 1), 1, 32, (112, 112), "conv1x1"),
    ((1, 1), 1, 1024, (1, 1), "fully_connected"),  # Keras' MobileNet classifier is a 1x1 conv on a 1x1 map
    ((3, 3), 1, 3, (224, 224), "conv"),
    ((3, 3), 4, 64, (56, 56), "conv"),  # grouped, not depthwise (ShuffleNet, ResNeXt)
    ((1, 1), 3, 240, (28, 28), "conv"),  # ShuffleNet's grouped pointwise convolution
])
def test_layer_types(kernel, groups, channels, spatial, expected):
    assert conv_layer_type(kernel, groups, channels, spatial) == expected


def test_peak_memory_keeps_a_skip_connection_alive():
    """x -> a -> b -> add(x, b): x stays live until the add reads it, so the peak is x + a + b (floats)."""
    builder = GraphBuilder("model", "test")
    builder.input("x", (1, 100), "float32")
    for name, reads in (("a", ["x"]), ("b", ["a"]), ("y", ["x", "b"])):
        builder.activation(name, (1, 100), "float32")
        builder.layer(name=name, op="op", reads=reads, writes=[name])
    builder.output("y", (1, 100), "float32")
    assert builder.build().peak_activation_bytes == 3 * 400


def test_a_shared_weight_counts_once_and_a_folded_one_at_its_decoded_size():
    builder = GraphBuilder("model", "test")
    builder.input("x", (1, 8), "float32")
    builder.constant("w16", (8, 8), "float16")
    builder.fold([("w", (8, 8), "float32")], ["w16"])  # DEQUANTIZE of fp16 weights
    builder.constant("eps", (), "float32")
    for name, reads in (("a", ["x"]), ("b", ["a"])):
        builder.activation(name, (1, 8), "float32")
        builder.layer(name=name, op="FULLY_CONNECTED", layer_type="fully_connected", macs=64, reads=reads,
                      weights=["w"], writes=[name])
    builder.activation("c", (1, 8), "float32")
    builder.layer(name="c", op="ADD", reads=["b", "eps"], writes=["c"])  # a scalar is not a parameter
    result = builder.build()
    assert [layer.params for layer in result.layers] == [64, 0, 0]
    assert result.macs == 128
    assert result.weight_bytes == {"float16": 128, "float32": 4}


def test_errors_a_user_can_cause(tmp_path, model_dir):
    missing = run("inspect", tmp_path / "nope.tflite")
    assert missing.returncode == 2 and "model not found" in missing.stderr

    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 40)
    result = run("inspect", truncated)
    assert result.returncode == 2 and "not a readable TFLite flatbuffer" in result.stderr
    assert "Traceback" not in result.stderr

    package = tmp_path / "broken.mlpackage"
    (package / "Data" / "com.apple.CoreML").mkdir(parents=True)
    result = run("inspect", package)
    assert result.returncode == 2 and "Manifest.json" in result.stderr

    keras_file = save_keras("mobilenet", model_dir)
    h5 = tmp_path / "model.h5"
    shutil.copy(REPO / "deploykit" / "__init__.py", h5)  # the suffix alone makes it a legacy HDF5 file
    result = run("inspect", h5)
    assert result.returncode == 2 and "--allow-h5" in result.stderr

    result = run("inspect", keras_file, "--input", "1x64x64x3")
    assert result.returncode == 2 and "--input does not apply to a Keras model" in result.stderr


def test_keras_model_with_unknown_size_is_refused_with_the_fix(tmp_path):
    import keras

    inputs = keras.Input(shape=(None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    path = tmp_path / "dynamic.keras"
    model.save(path)
    result = run("inspect", path)
    assert result.returncode == 2
    assert "unknown size" in result.stderr and "fixed input shape" in result.stderr


def test_human_output_states_the_counting_convention(model_dir):
    result = run("inspect", save_keras("mobilenet", model_dir), "--per-layer")
    assert result.returncode == 0, result.stderr
    assert "batch norm" in result.stdout and "not counted" in result.stdout
    assert "1x1 convolution" in result.stdout and "depthwise convolution" in result.stdout
    data = json.loads(run("inspect", save_keras("mobilenet", model_dir), "--json", "--per-layer").stdout)
    assert {"params", "macs", "by_layer_type", "layers", "ops", "weight_bytes", "peak_activation_bytes"} <= set(data)
    assert sum(layer["macs"] for layer in data["layers"]) == data["macs"]
