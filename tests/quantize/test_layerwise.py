"""Per-layer compression (quantize/layerwise): localize a damaged layer, repair it, and ``--quantize auto``.

The model: four dense layers; the second ("damaged") has one input column of weights 400 times the others, on an
input the first layer holds at exactly zero (a dead channel, as pruning or a ReLU leaves them). In float the column
adds nothing; per-channel int8 spends its 255 levels on it and rounds the rest of every row to a step 3 times
their spread: the layer's output is mostly lost. Every other layer quantizes to within 0.4 % of its weights. A
real failure mode (outlier weights in transformers and BN-folded convolutions), put in one known place.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploykit import VerifyOptions, convert
from deploykit.core.errors import UsageError
from deploykit.quantize import AutoOptions
from deploykit.quantize.layerwise import choices, metric

WIDTH = 64
DEAD = 5


def _model(path):
    rng = np.random.default_rng(0)
    first = rng.normal(0.0, 1.0 / np.sqrt(WIDTH), (WIDTH, WIDTH))
    first[DEAD] = 0.0  # channel DEAD of the first layer's output is tanh(0) = 0 for every input
    damaged = rng.normal(0.0, 1.0 / np.sqrt(WIDTH), (WIDTH, WIDTH))
    damaged[:, DEAD] = 400.0 / np.sqrt(WIDTH)
    weights = {"w1": first, "damaged": damaged,
               "w3": rng.normal(0.0, 1.0 / np.sqrt(WIDTH), (WIDTH, WIDTH)), "w4": rng.normal(0.0, 1.0 / np.sqrt(WIDTH), (10, WIDTH))}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    inits += [numpy_helper.from_array(np.zeros(n, np.float32), f"b{i}") for i, n in enumerate((WIDTH, WIDTH, WIDTH, 10))]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b0"], ["h1"], transB=1),
        helper.make_node("Tanh", ["h1"], ["a1"]),
        helper.make_node("Gemm", ["a1", "damaged", "b1"], ["h2"], transB=1),
        helper.make_node("Tanh", ["h2"], ["a2"]),
        helper.make_node("Gemm", ["a2", "w3", "b2"], ["h3"], transB=1),
        helper.make_node("Tanh", ["h3"], ["a3"]),
        helper.make_node("Gemm", ["a3", "w4", "b3"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(nodes, "damaged", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    return path


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = tmp_path_factory.mktemp("layerwise")
    model = _model(folder / "damaged.onnx")
    rng = np.random.default_rng(1)
    np.savez(folder / "val.npz", x=rng.normal(0.0, 1.0, (200, WIDTH)).astype(np.float32))
    return folder, model


def _record(out):
    return {(a["target"], a["variant"]): a for a in json.loads((out / "deploykit-report.json").read_text())["artifacts"]}


DAMAGED = {"tflite": "matmul_1", "coreml": "damaged"}  # onnx2tf numbers the MatMuls; onnx2coreml keeps the name


@pytest.mark.parametrize("target", ["tflite", "coreml"])
def test_the_damaged_layer_is_localized_and_repaired(source, target):
    folder, model = source
    out = folder / f"repaired-{target}"
    convert(model, to=[target], out=out, quantize="int8-weights", verify_options=VerifyOptions(localize=True),
            keep_float="small=0")  # every layer quantized (TFLite's legacy rule would spare the 640-weight last one)
    variant = _record(out)[(target, "int8-weights")]
    failed, *tries = [a for a in variant["attempts"] if a["name"].startswith("int8-weights")]
    assert failed["outcome"] == "parity-failed" and not failed["parity"]["passed"]
    repair = variant["quantization"]["repair"]
    assert DAMAGED[target] in repair["ranked"][0] and repair["kept_float"][0] == repair["ranked"][0]
    assert tries[-1]["outcome"] == "kept" and variant["parity"]["passed"]
    assert len(repair["kept_float"]) == 1 and repair["tries"] == {"1": True}  # the damaged layer alone, first try
    # --localize on the repaired variant: the damaged layer is float now, so it contributes nothing
    rows = {r["layer"]: r for r in variant["quantization"]["localized"]["layers"]}
    assert rows[repair["kept_float"][0]]["noise_alone_db"] is None
    assert all(r["noise_alone_db"] < -30 for r in rows.values() if r["noise_alone_db"] is not None)
    assert 'data-plot="contributions' in (out / "report.html").read_text()


def test_localize_ranks_the_damaged_layer_first(source, tmp_path):
    from deploykit.quantize.layerwise.localize import localize_variant
    from deploykit.quantize.layerwise.tflite_make import make_tflite

    folder, model = source
    out = folder / "plain"
    convert(model, to=["tflite"], out=out, verify=False)
    base = out / "damaged.fp32.tflite"
    layers = {name: "int8" for name in _layer_names(base)}
    make_tflite(base, tmp_path / "int8.tflite", layers)
    feeds = [{"x": np.random.default_rng(2).normal(size=(1, WIDTH)).astype(np.float32)} for _ in range(4)]
    found = localize_variant("tflite", base, tmp_path / "int8.tflite", feeds)
    first, second = found["layers"][:2]
    assert DAMAGED["tflite"] in first["layer"] and first["noise_alone_db"] > second["noise_alone_db"] + 20
    assert first["error_at_layer"] > 0.1


def _layer_names(base):
    from deploykit.quantize.layerwise.layers import TFLiteLayers

    return [layer.name for layer in TFLiteLayers(base).layers]


@pytest.mark.parametrize("target", ["tflite", "coreml"])
def test_auto_stays_within_the_budget_and_beats_the_single_schemes(source, target):
    folder, model = source
    out = folder / f"auto-{target}"
    convert(model, to=[target], out=out, quantize="auto",
            auto=AutoOptions(max_accuracy_drop=1.0, validation=str(folder / "val.npz")))
    auto = _record(out)[(target, "auto")]
    q = auto["quantization"]
    assert q["chosen"]["within"] and q["chosen"]["made"] and q["chosen"]["cost"] <= 1.0
    assert q["validation"]["samples"] == 200
    assert "seconds" in q["bias_correction"]  # the step ran (checked under the record's profile, not "auto")
    damaged = next(r for r in q["layers"] if DAMAGED[target] in r["layer"])
    assert damaged["choice"] != "int8"  # its outliers take every int8 level; k-means tables give them their own entry
    within = [c for c in q["single_schemes"] if c["within"]]
    assert all(q["chosen"]["weight_bytes"] < c["weight_bytes"] for c in within)
    assert any(not c["within"] for c in q["single_schemes"])  # int8 everywhere breaks the damaged layer
    assert auto["parity"]["passed"]
    assert 'data-plot="pareto' in (out / "report.html").read_text()


def test_agreement_reads_sequences_as_ctc_and_skips_background():
    reference = [{"seq": np.eye(4)[[0, 2, 2, 0, 0, 3]][None]}]  # the symbols 2, 3 with blank 0
    shifted = [{"seq": np.eye(4)[[0, 0, 2, 2, 0, 3]][None]}]  # the same text, one frame later
    one_wrong = [{"seq": np.eye(4)[[0, 1, 1, 0, 0, 3]][None]}]
    assert metric.agreement(reference, shifted) == 100.0
    assert metric.agreement(reference, one_wrong) == pytest.approx(50.0)
    pixels = [{"map": np.eye(3)[[[0, 0, 0, 0], [0, 1, 2, 0]]][None]}]  # (1, 2, 4, 3): per position, 0 background
    wrong = [{"map": np.eye(3)[[[0, 0, 0, 0], [0, 1, 1, 0]]][None]}]
    assert metric.agreement(pixels, wrong) == pytest.approx(50.0)


def test_emulated_int8_matches_per_channel_symmetric_rounding():
    weight = np.array([[0.5, -1.0, 0.25], [2.0, 0.1, -0.3]], np.float32)
    rebuilt = choices.CHOICES["int8"].emulate(weight, 0)
    assert np.allclose(rebuilt[0], np.round(weight[0] / (1.0 / 127)) * (1.0 / 127))
    assert np.allclose(rebuilt[1], np.round(weight[1] / (2.0 / 127)) * (2.0 / 127))


def test_auto_needs_a_budget_and_real_samples(source):
    folder, model = source
    with pytest.raises(UsageError, match="needs a budget"):
        convert(model, to=["tflite"], out=folder / "x", quantize="auto")
    with pytest.raises(UsageError, match="real samples"):
        convert(model, to=["tflite"], out=folder / "x", quantize="auto", auto=AutoOptions(max_accuracy_drop=1.0))
    with pytest.raises(UsageError, match="apply to --quantize auto"):
        convert(model, to=["tflite"], out=folder / "x", quantize="fp16", auto=AutoOptions(max_error=0.1))


def test_sequence_labels_score_ctc_output_against_the_text():
    decided = [{"seq": np.eye(4)[[0, 2, 2, 0, 3, 3]][None]}, {"seq": np.eye(4)[[1, 0, 0, 0, 0, 0]][None]}]
    labels = np.array([[2, 3], [1, -1]])  # 2 3 read right; the second sample's 1 right
    assert metric.sequence_accuracy(decided, labels) == 100.0
    assert metric.sequence_accuracy(decided, np.array([[2, 1], [1, -1]])) == pytest.approx(100 * (1 - 1 / 3))


def test_a_class_read_only_in_the_margins_is_not_counted():
    """PP-OCR reads a line's empty margins as its space class: with that class trimmed from the ends, a variant
    that reads one margin space fewer loses nothing, and one that loses a character inside the line still pays."""
    def read(*steps):
        return {"seq": np.eye(5)[list(steps)][None]}

    labels = np.array([[1, 2, -1], [2, 1, -1], [1, 4, 2]])  # 4 (a space) only inside a label
    reference = [read(4, 0, 1, 0, 2, 4), read(4, 2, 0, 1, 0), read(1, 0, 4, 0, 2, 4)]
    margins = metric.margin_classes(reference, labels)
    assert margins == {4}
    fewer_margin_spaces = [read(0, 0, 1, 0, 2, 0), read(0, 2, 0, 1, 0), read(1, 0, 4, 0, 2, 0)]
    lost_inner_space = [read(4, 0, 1, 0, 2, 4), read(4, 2, 0, 1, 0), read(1, 0, 0, 0, 2, 4)]
    assert metric.sequence_accuracy(reference, labels, margins) == 100.0
    assert metric.sequence_accuracy(fewer_margin_spaces, labels, margins) == 100.0
    assert metric.sequence_accuracy(lost_inner_space, labels, margins) == pytest.approx(100 * (1 - 1 / 7))
    assert metric.sequence_accuracy(fewer_margin_spaces, labels) > metric.sequence_accuracy(reference, labels)
    validation = metric.Validation(tuple(reference), tuple(reference), labels)
    assert metric.cost(metric.Budget(max_accuracy_drop=1.0), validation, fewer_margin_spaces) == 0.0


def test_core_ml_choices_coremltools_would_skip_are_not_offered():
    from deploykit.quantize.layerwise.layers import CoreMLLayers, Layer

    assert not CoreMLLayers.allows(Layer("classifier", "linear", (6625, 120), 0), "lut8-g16")
    assert CoreMLLayers.allows(Layer("conv", "conv", (64, 60, 1, 1), 0), "lut8-g16")
    assert not CoreMLLayers.allows(Layer("conv", "conv", (64, 60, 1, 1), 0), "int4-block")
    assert CoreMLLayers.allows(Layer("conv", "conv", (64, 60, 1, 1), 0), "lut8")
