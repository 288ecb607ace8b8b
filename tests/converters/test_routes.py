"""Every path is a ladder of routes (issue 21, item 1): when one upstream converter lacks an op, the next
route converts the same model, and the record says which route made the artifact and why the earlier
ones were left.

The failures are real upstream gaps, not injected ones:

- a GhostNet-style ghost module (``cat`` then a channel slice that keeps every channel) and a Swin-style
  shifted-window block (pad, roll, partition, crop back to the input size) exported with ``torch.export``
  hold an ``aten.alias``; coremltools' TorchScript frontend has no conversion for it
  ("op 'alias' not implemented"), and its ``torch.export`` frontend neither. deploykit's ``drop_alias``
  pass removes it (an alias is an identity); with ``--passes none`` only the ONNX route converts;
- MTCNN R-Net's per-channel PReLU after a Linear layer is refused by coremltools' torch frontend with
  ``--passes none``; the ONNX route's onnx2coreml lowers it;
- a Keras 3 grouped convolution (ConvNeXt's depthwise 7x7 is ``Conv2D(groups=C)``) is traced by Keras
  as an XLA-compiled function, which coremltools' TF frontend cannot read ("TF op
  'StatefulPartitionedCall' not implemented"); tf2onnx exports it (deploykit traces grouped convolutions
  as plain ops, ``converters.keras_onnx``) and onnx2coreml converts it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import deploykit
from deploykit.core.errors import DeployKitError, UsageError


def _ghost_module(channels: int = 16):
    import torch

    class Ghost(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.primary = torch.nn.Conv2d(3, channels // 2, 1)
            self.cheap = torch.nn.Conv2d(channels // 2, channels // 2, 3, padding=1, groups=channels // 2)
            self.head = torch.nn.Linear(channels, 5)

        def forward(self, x):
            primary = self.primary(x)
            out = torch.cat([primary, torch.relu(self.cheap(primary))], 1)
            out = out[:, :channels, :, :]  # GhostNet's slice to the output width: here every channel (an alias)
            return self.head(out.mean((2, 3)))

    return Ghost


@pytest.fixture(scope="module")
def ghost_pt2(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    module = _ghost_module()().eval()
    program = torch.export.export(module, (torch.rand(1, 3, 16, 16),))
    assert any("alias" in str(node.target) for node in program.graph.nodes), "the fixture must hold an alias"
    path = tmp_path_factory.mktemp("ghost") / "ghost.pt2"
    torch.export.save(program, path)
    return path


def _record(out):
    return json.loads((out / "deploykit-report.json").read_text())


def _worst(artifact):
    return max(output["max_rel_error"] for output in artifact["parity"]["outputs"].values())


def _artifact(record, target, variant="fp32"):
    return next(a for a in record["artifacts"] if a["target"] == target and a["variant"] == variant)


def test_alias_without_passes_reaches_core_ml_through_onnx(ghost_pt2, tmp_path):
    out = tmp_path / "out"
    deploykit.convert(ghost_pt2, to="coreml", out=out, passes="none")
    artifact = _artifact(_record(out), "coreml")
    attempts = artifact["attempts"]
    assert [a["name"] for a in attempts] == ["jit.trace", "torch.export", "onnx:onnx2coreml"]
    assert [a["outcome"] for a in attempts] == ["failed", "failed", "kept"]
    assert "alias" in attempts[0]["error"]
    assert artifact["converter"].startswith("torch->onnx (torch.onnx dynamo exporter) + ")
    assert artifact["parity"]["passed"]
    assert _worst(artifact) < 1e-5
    assert {"onnxscript", "onnx", "coremltools"} <= set(_record(out)["tool_versions"])


def test_drop_alias_keeps_the_first_route(ghost_pt2, tmp_path):
    out = tmp_path / "out"
    deploykit.convert(ghost_pt2, to="coreml", out=out)
    record = _record(out)
    artifact = _artifact(record, "coreml")
    assert artifact["converter"] == "torch->coreml (torch.jit.trace + coremltools)"
    assert [(a["name"], a["outcome"]) for a in artifact["attempts"]] == [("jit.trace", "kept")]
    (dropped,) = [p for p in artifact["passes"] if p["name"] == "drop_alias"]
    assert dropped["stage"] == "source" and dropped["count"] == 1 and dropped["items"] == ["alias"]
    assert _worst(artifact) < 1e-5


def test_torch_export_route_keeps_float32_outputs_in_fp16(ghost_pt2, tmp_path):
    import coremltools as ct

    out = tmp_path / "out"
    deploykit.convert(ghost_pt2, to="coreml", out=out, quantize="fp16", route="coreml=torch.export")
    record = _record(out)
    for variant in ("fp32", "fp16"):
        artifact = _artifact(record, "coreml", variant)
        assert artifact["converter"] == "torch->coreml (torch.export + coremltools)"
        assert artifact["parity"]["passed"]
    spec = ct.models.MLModel(str(out / "ghost.fp16.mlpackage"), skip_model_load=True).get_spec()
    float32 = ct.proto.FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    assert [o.type.multiArrayType.dataType for o in spec.description.output] == [float32]
    assert [i.type.multiArrayType.dataType for i in spec.description.input] == [float32]


def _swin_style_module():
    import torch
    import torch.nn.functional as F

    class SwinStyle(torch.nn.Module):
        """torchvision's shifted-window attention in small: pad to the window, roll, partition, attend, merge,
        roll back, crop to the input size (a crop that keeps everything when no padding was needed: an alias)."""

        def __init__(self, channels=8, window=4):
            super().__init__()
            self.qkv = torch.nn.Linear(channels, 3 * channels)
            self.proj = torch.nn.Linear(channels, channels)
            self.window = window

        def forward(self, x):  # B, H, W, C
            b, h, w, c = x.shape
            s = self.window
            x = torch.roll(F.pad(x, (0, 0, 0, (s - w % s) % s, 0, (s - h % s) % s)), shifts=(-2, -2), dims=(1, 2))
            ph, pw = x.shape[1], x.shape[2]
            windows = x.view(b, ph // s, s, pw // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, c)
            q, k, v = self.qkv(windows).chunk(3, -1)
            attended = self.proj(torch.softmax(q @ k.transpose(-2, -1) / c ** 0.5, -1) @ v)
            merged = attended.view(b, ph // s, pw // s, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(b, ph, pw, c)
            return torch.roll(merged, shifts=(2, 2), dims=(1, 2))[:, :h, :w, :].contiguous()

    return SwinStyle


@pytest.mark.parametrize("passes, kept", [("auto", "jit.trace"), ("none", "onnx:onnx2coreml")])
def test_swin_style_windows_reach_core_ml(tmp_path, passes, kept):
    import torch

    torch.manual_seed(0)
    program = torch.export.export(_swin_style_module()().eval(), (torch.rand(1, 8, 8, 8),))
    assert any("alias" in str(node.target) for node in program.graph.nodes)
    path = tmp_path / "swin.pt2"
    torch.export.save(program, path)
    deploykit.convert(path, to="coreml", out=tmp_path / "out", passes=passes)
    artifact = _artifact(_record(tmp_path / "out"), "coreml")
    assert artifact["attempts"][-1]["name"] == kept and artifact["attempts"][-1]["outcome"] == "kept"
    assert all(a["outcome"] == "failed" and "alias" in a["error"] for a in artifact["attempts"][:-1])
    assert _worst(artifact) < 1e-5


def test_prelu_reaches_core_ml_through_onnx_without_passes(tmp_path):
    from tests.pipeline.test_partial_targets import _prelu_net

    out = tmp_path / "out"
    deploykit.convert(_prelu_net(tmp_path), to="coreml", out=out, passes="none")
    artifact = _artifact(_record(out), "coreml")
    outcomes = {a["name"]: a["outcome"] for a in artifact["attempts"]}
    assert outcomes["jit.trace"] == "failed" and outcomes["onnx:onnx2coreml"] == "kept"
    assert "prelu" in next(a for a in artifact["attempts"] if a["name"] == "jit.trace")["error"].lower()
    assert _worst(artifact) < 1e-5


def test_unknown_route_is_a_usage_error_listing_the_routes(ghost_pt2, tmp_path):
    with pytest.raises(UsageError) as caught:
        deploykit.convert(ghost_pt2, to="coreml", out=tmp_path / "out", route="coreml=tflite-converter")
    assert caught.value.exit_code == 2
    assert "jit.trace" in caught.value.hint and "torch.export" in caught.value.hint and "onnx" in caught.value.hint
    assert not (tmp_path / "out").exists()


def test_route_for_a_target_not_asked_for_is_refused(ghost_pt2, tmp_path):
    with pytest.raises(DeployKitError) as caught:
        deploykit.convert(ghost_pt2, to="coreml", out=tmp_path / "out", route="executorch=onnx")
    assert caught.value.exit_code == 2


def test_cli_route_flag(ghost_pt2, tmp_path):
    from tests.cli.test_convert_cmd import run

    result = run("convert", ghost_pt2, "--to", "tflite", "--route", "onnx", "--out", tmp_path / "out", "--verbose")
    assert result.returncode == 0, result.stderr
    artifact = _artifact(_record(tmp_path / "out"), "tflite")
    assert artifact["converter"].startswith("torch->onnx (torch.onnx dynamo exporter) + onnx->tflite")
    assert all(a["name"].startswith("onnx") for a in artifact["attempts"])
    assert "onnx:onnx2tf" in " ".join((result.stdout + result.stderr).split())


# -- Keras --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def grouped_keras(tmp_path_factory):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 8), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", groups=8, name="depthwise_as_groups")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", groups=2, name="grouped")(x)
    x = keras.layers.LayerNormalization(epsilon=1e-6)(x)
    x = keras.layers.Dense(16, activation="gelu")(x)  # Keras 3's gelu is the exact (erf) one
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(4, name="scores")(x)
    path = tmp_path_factory.mktemp("keras") / "grouped.keras"
    keras.Model(inputs, outputs).save(path)
    return path


def test_keras_grouped_conv_export_matches_keras(grouped_keras, tmp_path):
    import onnxruntime as ort

    from deploykit.converters.keras_onnx import export_keras
    from deploykit.loaders import load_source

    source = load_source(grouped_keras)
    path = tmp_path / "grouped.onnx"
    export_keras(source, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).uniform(-1, 1, (1, 16, 16, 8)).astype(np.float32)
    got = session.run(None, {session.get_inputs()[0].name: x})[0]
    want = np.asarray(source.handle(x))
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()


def test_keras_grouped_conv_reaches_core_ml_through_onnx(grouped_keras, tmp_path):
    out = tmp_path / "out"
    deploykit.convert(grouped_keras, to="coreml", out=out)
    record = _record(out)
    artifact = _artifact(record, "coreml")
    first, *_, kept = artifact["attempts"]
    assert first["name"] == "coremltools" and first["outcome"] == "failed"
    assert "StatefulPartitionedCall" in first["error"]
    assert kept["name"].startswith("onnx:") and kept["outcome"] == "kept"
    assert artifact["converter"].startswith("keras->onnx (tf2onnx) + onnx->coreml")
    assert _worst(artifact) < 1e-5
    assert "tf2onnx" in record["tool_versions"]
