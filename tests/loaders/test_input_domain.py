"""Default inputs in the model's stated domain (issue 21, item 2): what each source format says about the values
its inputs take, and that parity draws its seeded inputs from there and records why."""

from __future__ import annotations

import json

import numpy as np
import pytest

import deploykit
from deploykit.loaders import load_source
from deploykit.loaders.input_domain import input_domains
from deploykit.parity.inputs import random_inputs


def _keras_image_model(folder, first_layer, name="pre"):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3), name="image")
    x = first_layer(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    path = folder / f"{name}.keras"
    keras.Model(inputs, outputs).save(path)
    return path


@pytest.mark.parametrize("scale, offset", [(1 / 255, 0.0), (1 / 127.5, -1.0)])
def test_keras_rescaling_means_pixels(tmp_path, scale, offset):
    import keras

    path = _keras_image_model(tmp_path, keras.layers.Rescaling(scale, offset))
    (domain,) = input_domains(load_source(path)).values()
    assert (domain.low, domain.high) == (0.0, 255.0)
    assert "Rescaling" in domain.why


def test_keras_normalization_means_its_statistics(tmp_path):
    import keras

    mean, variance = [123.675, 116.28, 103.53], [58.395 ** 2, 57.12 ** 2, 57.375 ** 2]
    path = _keras_image_model(tmp_path, keras.layers.Normalization(mean=mean, variance=variance))
    domains = input_domains(load_source(path))
    domain = domains["image"]
    assert domain.low == pytest.approx(103.53 - 57.375 * 3 ** 0.5, rel=1e-5)
    assert domain.high == pytest.approx(123.675 + 58.395 * 3 ** 0.5, rel=1e-5)
    assert "Normalization" in domain.why


def test_keras_first_layer_without_a_domain_keeps_the_default(tmp_path):
    import keras

    path = _keras_image_model(tmp_path, keras.layers.Conv2D(3, 1))
    assert input_domains(load_source(path)) == {}


def test_keras_embedding_means_token_ids(tmp_path):
    import keras

    inputs = keras.Input((12,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(500, 8)(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling1D()(x))
    path = tmp_path / "text.keras"
    keras.Model(inputs, outputs).save(path)
    domain = input_domains(load_source(path))["tokens"]
    assert (domain.low, domain.high) == (0, 500)


def _torch_text(tmp_path):
    import torch

    class Text(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(300, 8)
            self.head = torch.nn.Linear(8, 2)

        def forward(self, input_ids):
            return self.head(self.embed(input_ids).mean(1))

    torch.manual_seed(0)
    program = torch.export.export(Text().eval(), (torch.zeros(1, 10, dtype=torch.int64),))
    path = tmp_path / "text.pt2"
    torch.export.save(program, path)
    return path


def test_torch_embedding_means_token_ids(tmp_path):
    domain = input_domains(load_source(_torch_text(tmp_path)))["input_ids"]
    assert (domain.low, domain.high) == (0, 300)


def test_onnx_gather_from_a_table_means_token_ids(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    table = numpy_helper.from_array(np.random.default_rng(0).normal(size=(77, 4)).astype(np.float32), "table")
    graph = helper.make_graph([helper.make_node("Gather", ["table", "ids"], ["y"], axis=0)], "g",
                              [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 4])], initializer=[table])
    path = tmp_path / "gather.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    domain = input_domains(load_source(path))["ids"]
    assert (domain.low, domain.high) == (0, 77)


def test_random_inputs_draw_from_the_domain(tmp_path):
    source = load_source(_torch_text(tmp_path))
    drawn = random_inputs(source.inputs, samples=20, domains=input_domains(source))
    ids = np.concatenate([s["input_ids"].ravel() for s in drawn.samples])
    assert ids.min() >= 0 and ids.max() < 300 and ids.max() > 8  # the default integer range is [0, 8)
    assert drawn.origin["distribution"]["input_ids"] == "uniform integers [0, 300)"
    assert "embedding" in drawn.origin["domains"]["input_ids"]


def test_convert_records_the_inputs_and_why(tmp_path):
    import keras

    path = _keras_image_model(tmp_path, keras.layers.Rescaling(1 / 255))
    out = tmp_path / "out"
    deploykit.convert(path, to="tflite", out=out)
    parity = json.loads((out / "deploykit-report.json").read_text())["artifacts"][0]["parity"]
    assert parity["passed"] and parity["inputs"] == "random"
    assert parity["input_distribution"] == {"image": "uniform [0, 255)"}
    assert "Rescaling" in parity["input_domains"]["image"]
