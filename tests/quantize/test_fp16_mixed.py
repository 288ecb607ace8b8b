"""Mixed fp16: a model whose fp16 variant fails because of one layer gets that layer kept in float32.

The model: inputs scaled by 1000 (and a ReLU), then a fully-connected layer whose weights are ~5e-7 (below fp16's
smallest normal number, 6.1e-5: rounded to fp16 they keep 3-4 significant bits: 3 % off at its output), then three ordinary
layers. Its activations stay in fp16's normal range, so only that one weight tensor breaks fp16.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploykit.core.errors import ParityError
from deploykit.parity import metrics as M
from deploykit import convert
from deploykit.quantize import fp16_mixed

WIDTH = 64


def _model(path):
    rng = np.random.default_rng(0)
    weights = {
        "tiny": rng.normal(0.0, 5e-7, (WIDTH, WIDTH)),  # the layer fp16 cannot hold
        "w2": rng.normal(0.0, 1.0 / np.sqrt(WIDTH), (WIDTH, WIDTH)) * 100,
        "w3": rng.normal(0.0, 1.0 / np.sqrt(WIDTH), (WIDTH, WIDTH)),
        "w4": rng.normal(0.0, 1.0 / np.sqrt(WIDTH), (10, WIDTH)),
    }
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()]
    inits += [numpy_helper.from_array(np.zeros(n, np.float32), f"b{i}") for i, n in enumerate((WIDTH, WIDTH, WIDTH, 10))]
    inits.append(numpy_helper.from_array(np.array(1000.0, np.float32), "gain"))
    nodes = [
        helper.make_node("Mul", ["x", "gain"], ["scaled"]),
        helper.make_node("Relu", ["scaled"], ["a0"]),  # so no converter folds the gain into the weights
        helper.make_node("Gemm", ["a0", "tiny", "b0"], ["h1"], transB=1),
        helper.make_node("Relu", ["h1"], ["a1"]),
        helper.make_node("Gemm", ["a1", "w2", "b1"], ["h2"], transB=1),
        helper.make_node("Relu", ["h2"], ["a2"]),
        helper.make_node("Gemm", ["a2", "w3", "b2"], ["h3"], transB=1),
        helper.make_node("Relu", ["h3"], ["a3"]),
        helper.make_node("Gemm", ["a3", "w4", "b3"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(nodes, "tiny_weights", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    return path


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fp16_mixed")
    source = _model(folder / "tiny_weights.onnx")
    convert(source, to=["tflite", "coreml"], out=folder / "out", quantize="fp16")  # raises ParityError if fp16 fails
    record = json.loads((folder / "out" / "deploykit-report.json").read_text())
    return folder, source, {(a["target"], a["variant"]): a for a in record["artifacts"]}


@pytest.mark.parametrize("target", ["tflite", "coreml"])
def test_the_one_sensitive_layer_is_kept_in_float32(converted, target):
    _, _, artifacts = converted
    fp16 = artifacts[(target, "fp16")]
    plain, mixed = fp16["attempts"][-2:]
    assert plain["outcome"] == "parity-failed"
    assert plain["parity"]["outputs"]["logits"]["max_rel_error"] > 0.01  # all-fp16 misses the fp16 profile
    unit = "layer" if target == "tflite" else "segment"  # Core ML keeps runs of ops (fp16_estimate_coreml)
    assert mixed["outcome"] == "kept" and mixed["name"] == f"fp16 + 1 float32 {unit}(s)"
    chosen = fp16["quantization"]["mixed_precision"]
    assert chosen["verdict"] == "passed" and len(chosen["kept_float32"]) == 1
    assert chosen["estimate"]["all_fp16"] > 1.0 > chosen["estimate"]["mixed"]  # fractions of the fp16 limits
    assert fp16["parity"]["passed"] and fp16["parity"]["outputs"]["logits"]["max_rel_error"] <= 0.01
    # Still an fp16 artifact: one 64x64 layer of four stays float32.
    assert fp16["size_bytes"] < 0.75 * artifacts[(target, "fp32")]["size_bytes"]


def test_coreml_keeps_exactly_the_first_layer(converted):
    """The program is shorter than 16 ops, so each op is a segment of its own: the one kept is that layer."""
    _, _, artifacts = converted
    quantization = artifacts[("coreml", "fp16")]["quantization"]
    assert len(quantization["fp32_layers"]) == 1
    (segment,) = quantization["mixed_precision"]["kept_float32"]
    assert quantization["fp32_layers"][0] in segment


def test_without_parity_checking_nothing_is_rescued(converted, tmp_path):
    _, source, _ = converted
    convert(source, to=["tflite"], out=tmp_path / "out", quantize="fp16", verify=False)
    record = json.loads((tmp_path / "out" / "deploykit-report.json").read_text())
    fp16 = next(a for a in record["artifacts"] if a["variant"] == "fp16")
    assert "mixed_precision" not in fp16["quantization"] and not fp16["attempts"]


def test_a_model_no_layer_can_save_still_fails(tmp_path, monkeypatch):
    """With the search allowed no layer, the fp16 failure is reported as before, with what was tried."""
    monkeypatch.setattr(fp16_mixed, "MAX_LAYERS", 0)
    source = _model(tmp_path / "tiny_weights.onnx")
    with pytest.raises(ParityError):
        convert(source, to=["tflite"], out=tmp_path / "out", quantize="fp16")
    record = json.loads((tmp_path / "out" / "deploykit-report.json").read_text())
    fp16 = next(a for a in record["artifacts"] if a["variant"] == "fp16")
    assert fp16["parity"]["passed"] is False
    assert fp16["quantization"]["mixed_precision"]["kept_float32"] == []


class _Additive:
    """Each layer adds its own error (as a fraction of the limit); layer "c" alone carries most of it."""

    layers = ("a", "b", "c", "d")
    cost = {"a": 0.2, "b": 0.1, "c": 2.0, "d": 0.2}
    unit_bytes = {"a": 10, "b": 10, "c": 10, "d": 70}

    def error(self, kept):
        return sum(v for k, v in self.cost.items() if k not in kept)

    error_on_all = error


class _Spread(_Additive):
    """The error is spread: no single layer brings it under the target, three together do."""

    cost = {"a": 0.5, "b": 0.4, "c": 0.6, "d": 0.3}
    unit_bytes = {"a": 20, "b": 20, "c": 10, "d": 50}


def test_widened_search_adds_by_sensitivity_within_half_the_bytes(monkeypatch):
    monkeypatch.setattr(fp16_mixed, "MAX_LAYERS", 1)  # the greedy search may keep one layer only
    first = fp16_mixed.choose_layers(_Spread())
    assert first.kept == ("c",) and not first.reached  # 1.8 -> 1.2
    wider = fp16_mixed.widen(_Spread(), first)
    # "a" (0.5) then "b" (0.4): 1.2 -> 0.7 -> 0.3, under the 0.8 target after "a" already stops at 0.7
    assert wider.kept == ("c", "a") and wider.estimated_score == pytest.approx(0.7)
    assert wider.search == "widened" and wider.reached and wider.weight_share == pytest.approx(0.3)


def test_widened_search_stops_at_half_the_weight_bytes(monkeypatch):
    class Heavy(_Spread):
        unit_bytes = {"a": 40, "b": 30, "c": 10, "d": 20}

    monkeypatch.setattr(fp16_mixed, "MAX_LAYERS", 1)
    wider = fp16_mixed.widen(Heavy(), fp16_mixed.choose_layers(Heavy()))
    assert wider.kept == ("c", "a")  # adding "b" would hold 0.8 of the bytes
    monkeypatch.setattr(fp16_mixed, "WIDER_TARGET", 0.1)
    wider = fp16_mixed.widen(Heavy(), fp16_mixed.choose_layers(Heavy()))
    assert wider.kept == ("c", "a") and not wider.reached and wider.weight_share == pytest.approx(0.5)


def test_greedy_search_stops_once_under_target():
    choice = fp16_mixed.choose_layers(_Additive())
    assert choice.kept == ("c",)  # 2.5 -> 0.5 of the limit, under the 0.6 target
    assert choice.plain_score == pytest.approx(2.5) and choice.reached


def test_score_is_the_binding_metric_as_a_fraction_of_its_limit():
    limits = fp16_mixed.fp16_limits()
    ref = [{"y": np.array([1.0, -1.0, 0.5, 0.25])}]
    off = [{"y": ref[0]["y"] + np.array([0.005, 0.0, 0.0, 0.0])}]  # max_rel 0.005 of the peak 1
    value = fp16_mixed.score(ref, off, {}, limits)
    assert value == pytest.approx(max(0.005 / limits["max_rel_error"],
                                      (1 - M.cosine_similarity(ref[0]["y"], off[0]["y"])) / (1 - limits["cosine_similarity"]),
                                      10 ** ((limits["snr_db"] - M.snr_db(ref[0]["y"], off[0]["y"])) / 20)))
    assert fp16_mixed.score(ref, ref, {}, limits) == 0.0


def _offset_model(path):
    """Activations near 3000 carrying a signal of a few units: fp16 *results* (spacing 2 there) lose it,
    fp16 *weights* do not (3000 is exact in fp16, the weights keep 11 bits)."""
    rng = np.random.default_rng(1)
    inits = [numpy_helper.from_array(rng.normal(0.0, 1.0, (WIDTH, WIDTH)).astype(np.float32), "w1"),
             numpy_helper.from_array(np.full(WIDTH, 3000.0, np.float32), "b1"),
             numpy_helper.from_array(rng.normal(0.0, 0.2, (10, WIDTH)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.zeros(10, np.float32), "b2")]
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"], transB=1),
        helper.make_node("ReduceMean", ["h1"], ["mean"], axes=[-1], keepdims=1),
        helper.make_node("Sub", ["h1", "mean"], ["centred"]),
        helper.make_node("Gemm", ["centred", "w2", "b2"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(nodes, "offset", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, WIDTH])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)
    return path


def test_coreml_falls_back_to_fp16_weights_with_float32_compute(tmp_path, monkeypatch):
    """With the FLOAT16 program's search allowed nothing, the last candidate is fp16 weights + float32 compute:
    half the weight bytes, and it passes where fp16 results do not."""
    monkeypatch.setattr(fp16_mixed, "MAX_LAYERS", 0)
    source = _offset_model(tmp_path / "offset.onnx")
    convert(source, to=["coreml"], out=tmp_path / "out", quantize="fp16")
    record = json.loads((tmp_path / "out" / "deploykit-report.json").read_text())
    artifacts = {a["variant"]: a for a in record["artifacts"]}
    fp16 = artifacts["fp16"]
    plain, last = fp16["attempts"][0], fp16["attempts"][-1]
    assert (last["name"], last["outcome"]) == ("fp16 weights, float32 compute", "kept")
    assert plain["outcome"] == "parity-failed"
    assert plain["parity"]["outputs"]["logits"]["max_rel_error"] > 0.1  # fp16 results lose the signal (0.52)
    assert fp16["parity"]["passed"] and fp16["parity"]["outputs"]["logits"]["max_rel_error"] < 5e-3  # 1.0e-3
    assert fp16["quantization"]["activations"] == "float32" and fp16["quantization"]["fp32_weights"] == []
    assert fp16["op_histogram"].get("cast", 0) >= 2  # each weight stored fp16, cast where it is read
    assert fp16["size_bytes"] < 0.7 * artifacts["fp32"]["size_bytes"]
