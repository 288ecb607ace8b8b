"""Names every runtime accepts, every output checked by name, in the source's order (issue 9, items 3-4).

The model has PaddleOCR-style names (``x.1`` in, ``sigmoid_0.tmp_0`` out, which Core ML refuses) and
three outputs whose order differs from the alphabetical one, so pairing by position or by sorted name
would be caught by the parity check.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import deploykit
from deploykit.core.names import feature_names

IN, OUTS = "x.1", ["sigmoid_0.tmp_0", "boxes/out", "2d.scores"]


def _model(folder):
    import torch
    from torch import nn

    class Head(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
            self.prob, self.box = nn.Conv2d(8, 1, 1), nn.Conv2d(8, 4, 1)
            self.score = nn.Linear(8, 5)

        def forward(self, x):
            f = self.body(x)
            return torch.sigmoid(self.prob(f)), self.box(f), self.score(f.mean((2, 3)))

    path = folder / "paddle_names.onnx"
    torch.onnx.export(Head().eval(), (torch.rand(1, 3, 16, 16),), str(path), dynamo=False, opset_version=17,
                      input_names=[IN], output_names=OUTS)
    return path


def test_feature_names_rule():
    assert feature_names(["sigmoid_0.tmp_0", "x", "2d", "a-b", "a_b", ""]) == \
        ["sigmoid_0_tmp_0", "x", "t_2d", "a_b", "a_b_2", "t_"]


@pytest.mark.parametrize("target", ["coreml", "tflite"])
def test_names_sanitized_kept_and_paired(target, tmp_path):
    path = _model(tmp_path)
    report = deploykit.convert(path, to=target, out=tmp_path / "out")
    (artifact,) = report.artifacts
    safe = feature_names(OUTS)
    # every output, in the source's order, under its identifier-safe name, with the original kept
    assert [t.name for t in artifact.outputs] == safe
    assert [t.original_name for t in artifact.outputs] == OUTS
    assert artifact.inputs[0].name == "x_1" and artifact.inputs[0].original_name == IN
    # parity compared each output, paired by name: all pass at fp32
    outputs = artifact.parity["outputs"]
    assert set(outputs) == set(OUTS) and all(o["passed"] for o in outputs.values())
    assert all(o["max_rel_error"] <= 1e-4 for o in outputs.values())
    record = json.loads((tmp_path / "out" / "deploykit-report.json").read_text())
    assert [o["original_name"] for o in record["artifacts"][0]["outputs"]] == OUTS


def test_verify_reports_each_output(tmp_path):
    from deploykit.pipeline.verify import verify

    path = _model(tmp_path)
    report = deploykit.convert(path, to="coreml", out=tmp_path / "out")
    result = verify(path, tmp_path / "out" / report.artifacts[0].path)
    assert result.passed
    assert [(o.name, o.artifact_name) for o in result.outputs] == list(zip(OUTS, feature_names(OUTS)))
    # a wrong pairing would compare the 1x1x16x16 probability map with the 1x4x16x16 boxes and fail on shape
    assert [o.shape for o in result.outputs] == [(1, 1, 16, 16), (1, 4, 16, 16), (1, 5)]
    assert all(np.isfinite(o.metrics["snr_db"]) and o.metrics["snr_db"] > 80 for o in result.outputs)


def test_bundle_manifest_keeps_original_names(tmp_path):
    import zipfile

    from deploykit.bundle.builder import BundleOptions, bundle
    from deploykit.bundle.signing import generate_keypair, load_signing_key

    path = _model(tmp_path)
    report = deploykit.convert(path, to="tflite", out=tmp_path / "out")
    private, _, _ = generate_keypair(tmp_path / "keys")
    options = BundleOptions(name="com.example.ocr", version="1.0.0", sequence=None, out=tmp_path / "bundles", labels=None,
                            mean=None, std=None, sign_keys=(load_signing_key(private),), author="", license="",
                            description="")
    (built,) = bundle([tmp_path / "out" / report.artifacts[0].path], options)
    with zipfile.ZipFile(built.path) as archive:  # the signed DSSE envelope's payload is the manifest
        import base64

        manifest = json.loads(base64.b64decode(json.loads(archive.read("manifest.json"))["payload"]))
    assert manifest == built.manifest
    outputs = manifest["io"]["outputs"]
    assert [(t["name"], t["original_name"]) for t in outputs] == list(zip(feature_names(OUTS), OUTS))
