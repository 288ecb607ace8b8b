"""Core ML passes inside coremltools.convert, the pass record, and --strict-graph on real conversions."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from deploykit.core.errors import ConversionError
from deploykit import convert
from tests.cli.test_convert_cmd import run
from tests.passes.helpers import assert_pass


def _evaluate(report, out, feeds):
    from deploykit.runners.coreml_eval import evaluate

    return next(iter(evaluate(out / report.artifacts[0].path, feeds).values()))


def test_keras_to_coreml_passes(keras_probe_file, tmp_path):
    feeds = {"image": np.random.default_rng(0).random((1, 32, 32, 3), dtype=np.float32)}
    plain = convert(keras_probe_file, to="coreml", out=tmp_path / "none", passes="none")
    check = plain.artifacts[0].passes[-1]
    # coremltools leaves the Dense + BatchNorm as matmul, mul, add and ReLU(max_value=4) as relu, minimum, maximum
    assert check["unfolded_batchnorms"] == ["matmul probe_1_fc_1_MatMul -> mul by a constant"]
    assert len(check["unfused_activations"]) == 1 and "relu + minimum" in check["unfused_activations"][0]

    fused = convert(keras_probe_file, to="coreml", out=tmp_path / "auto")
    artifact = fused.artifacts[0]
    assert artifact.passes[-1]["ok"]
    by_name = {(p["name"], p.get("by")): p for p in artifact.passes}
    assert by_name[("fold_batchnorm", "deploykit")]["items"] == ["stem + stem_bn", "dw + dw_bn", "pw + pw_bn", "fc + fc_bn"]
    assert by_name[("fuse_activation", "deploykit")]["count"] == 1
    assert_pass(Counter(plain.artifacts[0].op_histogram).elements(), Counter(artifact.op_histogram).elements(),
                removed={"maximum": 1, "minimum": 1, "mul": 1, "add": 1}, added={"clip": 1},
                outputs=(_evaluate(plain, tmp_path / "none", feeds), _evaluate(fused, tmp_path / "auto", feeds)))


def test_torch_linear_batchnorm_is_folded_for_coreml(torch_probe_files, tmp_path):
    import torch

    from tests.passes.nets import TorchProbe

    plain = convert(torch_probe_files / "probe.pt2", to="coreml", out=tmp_path / "none", passes="none")
    assert plain.artifacts[0].op_histogram["batch_norm"] == 1  # coremltools does not fold Linear + BatchNorm1d
    folded = convert(torch_probe_files / "probe.pt2", to="coreml", out=tmp_path / "auto")
    assert "batch_norm" not in folded.artifacts[0].op_histogram and folded.artifacts[0].passes[-1]["ok"]
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        expected = TorchProbe().eval()(x).numpy()
    assert_pass([], [], removed={}, outputs=(expected, _evaluate(folded, tmp_path / "auto", {"x": x.numpy()})), rtol=1e-4)


def test_strict_graph_catches_a_deliberately_unfolded_batchnorm(keras_probe_file, tmp_path):
    out = tmp_path / "strict"
    with pytest.raises(ConversionError) as caught:
        convert(keras_probe_file, to="coreml", out=out, passes="none", strict_graph=True)
    assert "unfolded batchnorm: matmul probe_1_fc_1_MatMul -> mul by a constant" in caught.value.message
    assert "unfused activation" in caught.value.message
    assert not out.exists()  # nothing is published
    report = convert(keras_probe_file, to="tflite,coreml", out=out, strict_graph=True)
    assert all(a.passes[-1]["ok"] for a in report.artifacts)
    tflite = report.artifacts[0]
    assert {"name": "fold_batchnorm", "stage": "conversion", "by": "keras->tflite converter", "count": 4,
            "items": ["stem + stem_bn", "dw + dw_bn", "pw + pw_bn", "fc + fc_bn"]} in list(tflite.passes)


def test_cli_strict_graph_and_passes_command(keras_probe_file, tmp_path):
    result = run("convert", keras_probe_file, "--to", "coreml", "--passes", "none", "--strict-graph", "--out", tmp_path / "o")
    assert result.returncode == 3, result.stderr
    assert "conversion failed: --strict-graph: 2 problem(s)" in result.stderr and "unfolded batchnorm" in result.stderr
    listed = run("passes", "--json")
    assert listed.returncode == 0
    rows = {(r["name"], r["stage"]): r for r in json.loads(listed.stdout)}
    assert set(rows) == {("fold_batchnorm", "source"), ("decompose_prelu", "source"), ("drop_alias", "source"),
                         ("fuse_activation", "tflite"), ("fuse_activation", "coreml"), ("exact_reciprocal", "coreml"),
                         ("shorten_names", "tflite"), ("shorten_names", "coreml"), ("gather_as_slice", "tflite"),
                         ("int64_as_int32", "tflite"), ("slices_for_gpu", "tflite"), ("split_relu_0_to_1", "tflite"),
                         ("fold_constant_broadcast", "tflite")}
    assert rows[("gather_as_slice", "tflite")]["auto"] == "any->tflite"
    assert rows[("fold_batchnorm", "source")]["auto"] == "keras->coreml, onnx->coreml, torch->coreml"
    doc = run("passes", "--doc", "fold_batchnorm")
    assert "Given:" in doc.stdout and "Result:" in doc.stdout
    bad = run("convert", keras_probe_file, "--passes", "fold_bn", "--out", tmp_path / "p")
    assert bad.returncode == 2 and "unknown pass fold_bn" in bad.stderr
