"""The same figures from every format a model passes through: a source, its ONNX export, its artifacts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO
from tests.inspection.paper_nets import keras_application

DEPLOYKIT = [sys.executable, "-m", "deploykit.cli.app"]


def run(*args):
    return subprocess.run([*DEPLOYKIT, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=900)


def inspect_json(path, *args) -> dict:
    result = run("inspect", path, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def mobilenet_artifacts(tmp_path_factory):
    """MobileNet v1 0.5 at 160 (keras.applications, random weights) converted by the CLI to both targets,
    once for all pytest-xdist workers (the folder above each worker's temporary root is shared)."""
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / "inspection-mobilenet"
    folder.mkdir(exist_ok=True)
    source, dist = folder / "mobilenet.keras", folder / "dist"
    with FileLock(str(folder / ".lock")):
        if not (dist / "deploykit-report.json").exists():
            keras_application("mobilenet_v1_0.5_160").save(source)
            result = run("convert", source, "--to", "tflite,coreml", "--quantize", "fp32,fp16", "--samples", "2",
                         "--out", dist)
            assert result.returncode == 0, result.stderr
    return source, sorted(dist.glob("*.tflite")) + sorted(dist.glob("*.mlpackage"))


def test_artifacts_count_what_their_source_counts(mobilenet_artifacts):
    source, artifacts = mobilenet_artifacts
    expected = inspect_json(source)
    assert len(artifacts) == 4
    for artifact in artifacts:
        figures = inspect_json(artifact)
        assert figures["macs"] == expected["macs"], artifact.name  # the same convolutions, whatever the format
        # batch norm's scale and shift become conv biases when folded: 0.7 % of MobileNet's parameters
        assert figures["params"] == pytest.approx(expected["params"], rel=0.01), artifact.name
        for kind, row in expected["by_layer_type"].items():
            assert figures["by_layer_type"][kind]["macs_percent"] == pytest.approx(row["macs_percent"], abs=0.01)
        assert figures["inputs"][0]["shape"] in ([1, 160, 160, 3], [1, 3, 160, 160])
        assert figures["outputs"][0]["shape"] == [1, 1000]


def test_quantized_weights_count_at_their_decoded_size(mobilenet_artifacts):
    _, artifacts = mobilenet_artifacts
    by_name = {a.name: inspect_json(a) for a in artifacts}
    for target in ("tflite", "mlpackage"):
        fp32, fp16 = by_name[f"mobilenet.fp32.{target}"], by_name[f"mobilenet.fp16.{target}"]
        assert fp16["params"] == fp32["params"]
        # fp16 stores (almost) every weight in two bytes instead of four
        assert fp16["weight_bytes"]["float16"] == pytest.approx(2 * fp32["params"], rel=0.02)
        assert fp32["weight_bytes"]["float32"] == pytest.approx(4 * fp32["params"], rel=0.02)
        assert "float16" not in fp32["weight_bytes"]


def test_core_ml_fp16_halves_the_activation_memory(mobilenet_artifacts):
    _, artifacts = mobilenet_artifacts
    by_name = {a.name: inspect_json(a) for a in artifacts}
    fp32, fp16 = by_name["mobilenet.fp32.mlpackage"], by_name["mobilenet.fp16.mlpackage"]
    # the largest live set: the 80x80x32 input of the first depthwise layer and its output, in fp32
    assert fp32["peak_activation_bytes"] >= 2 * 80 * 80 * 32 * 4
    assert fp16["peak_activation_bytes"] == pytest.approx(fp32["peak_activation_bytes"] / 2, rel=0.05)


def test_onnx_export_and_pytorch_source_agree(tmp_path):
    import torch

    from tests.inspection.paper_nets import squeezenet1_0

    path = tmp_path / "squeezenet.onnx"
    torch.onnx.export(squeezenet1_0(), (torch.rand(1, 3, 224, 224),), str(path), dynamo=False, opset_version=17)
    onnx_figures = inspect_json(path)
    torch_figures = inspect_json(f"{REPO / 'tests' / 'inspection' / 'paper_nets.py'}:squeezenet1_0", "--input",
                                 "1x3x224x224")
    assert onnx_figures["macs"] == torch_figures["macs"]
    assert onnx_figures["params"] == torch_figures["params"]
    assert onnx_figures["ops"]["Conv"] == 26 and torch_figures["ops"]["conv2d"] == 26
