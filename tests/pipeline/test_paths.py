"""Every source-to-target path on every network style: real conversions, TFLite run with LiteRT and
compared to the source, Core ML checked structurally (numerics are checked by the parity tests)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import deploykit
from deploykit.core.hashing import sha256_file, sha256_tree
from tests.conftest import KERAS_SHAPE, TORCH_SHAPE, save_keras, save_onnx, save_pt2, save_torchscript
from tests.pipeline.tflite_run import run_tflite

NETS = ["mobilenet", "resnet", "shufflenet", "squeezenet", "efficientnet"]
# Compute ops Core ML must contain for each style (the structure that proves the network came through).
COREML_OPS = {
    "mobilenet": {"conv", "reduce_mean"},
    "resnet": {"conv", "add", "max_pool"},
    "shufflenet": {"conv", "concat"},
    "squeezenet": {"conv", "concat", "max_pool"},
    "efficientnet": {"conv", "sigmoid", "mul"},
}
# Keras' SiLU lowers to x*sigmoid(x); PyTorch's to silu.
FP32_TOLERANCE = 2e-5  # relative to the output's scale: float32 reassociation only


def source_outputs(framework: str, path, x: np.ndarray) -> np.ndarray:
    if framework == "keras":
        import keras

        return np.asarray(keras.saving.load_model(path)(x))
    if framework == "onnx":
        import onnxruntime as ort

        return ort.InferenceSession(str(path)).run(None, {"image": x})[0]
    import torch

    from deploykit.loaders import load_source

    module = load_source(path, inputs=["x=1x3x32x32"] if str(path).endswith(".ts.pt") else None).handle["module"]
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


def check_report(report, out_dir, source_path, framework):
    assert [a.target for a in report.artifacts] == ["tflite", "coreml"]
    record = json.loads((out_dir / "deploykit-report.json").read_text())
    assert record == json.loads(json.dumps(report.to_json()))
    assert record["source"]["sha256"] == sha256_file(source_path)
    assert record["source"]["framework"] == framework
    assert {"coremltools", "ai-edge-litert", "deploykit", "numpy"} <= set(record["tool_versions"])
    for artifact in report.artifacts:
        path = out_dir / artifact.path
        assert path.exists()
        digest = sha256_tree(path) if path.is_dir() else sha256_file(path)
        assert artifact.sha256 == digest
        assert artifact.size_bytes > 1000
        assert artifact.conversion_seconds > 0
        assert artifact.variant == "fp32"
        assert sum(artifact.op_histogram.values()) > 3
    assert not list(out_dir.glob(".deploykit-staging-*")), "staging directory left behind"


def check_tflite_parity(artifact_path, source_y, x, input_name, output_name):
    result = run_tflite(artifact_path, {input_name: x})
    assert set(result) == {output_name}
    y = result[output_name]
    scale = float(np.abs(source_y).max())
    assert np.abs(y - source_y).max() <= FP32_TOLERANCE * max(scale, 1.0)


@pytest.mark.parametrize("net", NETS)
def test_keras_to_both_targets(net, model_dir, tmp_path):
    path = save_keras(net, model_dir)
    report = deploykit.convert(path, to="tflite,coreml", out=tmp_path)
    check_report(report, tmp_path, path, "keras")
    tflite, coreml = report.artifacts
    assert [t.name for t in tflite.inputs] == ["image"] and [t.name for t in tflite.outputs] == ["logits"]
    assert tflite.inputs[0].shape == KERAS_SHAPE and tflite.inputs[0].layout == "NHWC"
    assert tflite.layout_changes == () and coreml.layout_changes == ()
    x = np.random.default_rng(1).random(KERAS_SHAPE, dtype=np.float32)
    check_tflite_parity(tmp_path / tflite.path, source_outputs("keras", path, x), x, "image", "logits")
    assert [t.name for t in coreml.inputs] == ["image"] and [t.name for t in coreml.outputs] == ["logits"]
    assert coreml.inputs[0].shape == KERAS_SHAPE and coreml.deployment_target == "iOS16"
    assert COREML_OPS[net] <= set(coreml.op_histogram) | ({"sigmoid", "mul"} if net == "efficientnet" else set())
    assert "batch_norm" not in coreml.op_histogram  # folded into conv by the converter


@pytest.mark.parametrize("net", NETS)
def test_pt2_to_both_targets(net, model_dir, tmp_path):
    path = save_pt2(net, model_dir)
    report = deploykit.convert(path, out=tmp_path)
    check_report(report, tmp_path, path, "torch")
    tflite, coreml = report.artifacts
    assert tflite.inputs[0].shape == TORCH_SHAPE and tflite.inputs[0].layout == "NCHW"
    assert [t.name for t in tflite.outputs] == ["output"] == [t.name for t in coreml.outputs]
    x = np.random.default_rng(2).random(TORCH_SHAPE, dtype=np.float32)
    check_tflite_parity(tmp_path / tflite.path, source_outputs("torch", path, x), x, tflite.inputs[0].name, "output")
    assert coreml.inputs[0].shape == TORCH_SHAPE and coreml.inputs[0].layout == "NCHW"
    expected = COREML_OPS[net] - ({"sigmoid", "mul"} if net == "efficientnet" else set())
    assert expected <= set(coreml.op_histogram)


@pytest.mark.parametrize("net", NETS)
def test_onnx_to_both_targets(net, model_dir, tmp_path):
    path = save_onnx(net, model_dir)
    report = deploykit.convert(path, out=tmp_path)
    check_report(report, tmp_path, path, "onnx")
    tflite, coreml = report.artifacts
    # onnx2tf makes image inputs channel-last: the record must say so. The direct Core ML route keeps NCHW.
    assert tflite.inputs[0].shape == (1, 32, 32, 3) and tflite.inputs[0].layout == "NHWC"
    assert tflite.layout_changes == ("image: NCHW -> NHWC",)
    assert coreml.converter == "onnx->coreml (onnx2coreml)" and coreml.layout_changes == ()
    assert coreml.inputs[0].shape == (1, 3, 32, 32) and coreml.inputs[0].layout == "NCHW"
    assert [a["outcome"] for a in coreml.attempts] == ["kept"] and coreml.attempts[0]["parity"]["passed"]
    assert [t.name for t in tflite.outputs] == ["logits"] == [t.name for t in coreml.outputs]
    x = np.random.default_rng(3).random(TORCH_SHAPE, dtype=np.float32)
    check_tflite_parity(tmp_path / tflite.path, source_outputs("onnx", path, x), x, "image", "logits")
    assert "conv" in coreml.op_histogram


@pytest.mark.parametrize("net", ["shufflenet", "efficientnet"])
def test_torchscript_to_both_targets(net, model_dir, tmp_path):
    path = save_torchscript(net, model_dir)
    report = deploykit.convert(path, inputs=["1x3x32x32"], out=tmp_path)
    check_report(report, tmp_path, path, "torch")
    tflite, coreml = report.artifacts
    assert "onnx2tf" in tflite.converter  # litert-torch refuses TorchScript
    assert tflite.layout_changes == ("x: NCHW -> NHWC",)
    x = np.random.default_rng(4).random(TORCH_SHAPE, dtype=np.float32)
    check_tflite_parity(tmp_path / tflite.path, source_outputs("torch", path, x), x, "x", "output")
    assert coreml.inputs[0].layout == "NCHW" and "conv" in coreml.op_histogram


def test_entrypoint_with_weights(tmp_path):
    import torch

    from tests.zoo import torch_nets

    trained = torch_nets.build("resnet", seed=7)
    weights = tmp_path / "resnet.pth"
    torch.save(trained.state_dict(), weights)
    entry = tmp_path / "nets.py"
    entry.write_text("from tests.zoo import torch_nets\n\ndef build():\n    return torch_nets.build('resnet', seed=0)\n")
    out = tmp_path / "out"
    report = deploykit.convert(f"{entry}:build", weights=weights, inputs=["1x3x32x32"], out=out, name="resnet")
    tflite = report.artifacts[0]
    assert tflite.path == "resnet.fp32.tflite"
    x = np.random.default_rng(5).random(TORCH_SHAPE, dtype=np.float32)
    with torch.no_grad():
        expected = trained(torch.from_numpy(x)).numpy()
    # The weights, not the factory's seed-0 initialization, must be what was converted.
    check_tflite_parity(out / tflite.path, expected, x, "x", "output")


def test_savedmodel_to_both_targets(tmp_path):
    from tests.zoo import keras_nets

    model = keras_nets.build("mobilenet")
    model.export(str(tmp_path / "sm"))
    report = deploykit.convert(tmp_path / "sm", out=tmp_path / "out")
    tflite, coreml = report.artifacts
    assert tflite.inputs[0].shape == KERAS_SHAPE
    x = np.random.default_rng(6).random(KERAS_SHAPE, dtype=np.float32)
    result = run_tflite(tmp_path / "out" / tflite.path, {tflite.inputs[0].name: x})
    assert np.abs(next(iter(result.values())) - np.asarray(model(x))).max() < 1e-4
    assert "conv" in coreml.op_histogram


def test_coreml_deployment_target_is_selectable(model_dir, tmp_path):
    from deploykit.formats.coreml.spec import load_spec

    report = deploykit.convert(save_keras("mobilenet", model_dir), to="coreml", coreml_target="iOS17", out=tmp_path)
    assert report.artifacts[0].deployment_target == "iOS17"
    assert load_spec(tmp_path / report.artifacts[0].path).specificationVersion == 8  # iOS17 = spec 8
