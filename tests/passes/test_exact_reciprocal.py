"""``exact_reciprocal`` (coreml stage): coremltools' PyTorch and TensorFlow frontends lower an exact reciprocal as
MIL ``inverse`` with its default epsilon, 1 / (x + 1e-4). On 1 / (x^2 + 1e-3) that is 9 % off; the pass makes
the first route exact, and without it the ladder finds the exact ONNX route on its own (routes, issue 21)."""

from __future__ import annotations

import json

import pytest

import deploykit


@pytest.fixture(scope="module")
def reciprocal_pt2(tmp_path_factory):
    import torch

    class Reciprocal(torch.nn.Module):
        def forward(self, x):
            return torch.reciprocal(x * x + 1e-3)  # a normalization's reciprocal of a small variance

    path = tmp_path_factory.mktemp("reciprocal") / "reciprocal.pt2"
    torch.export.save(torch.export.export(Reciprocal().eval(), (torch.rand(1, 3, 8, 8),)), path)
    return path


def _artifact(out):
    return json.loads((out / "deploykit-report.json").read_text())["artifacts"][0]


def _error(attempt):
    return attempt["parity"]["outputs"]["output"]["max_rel_error"]


def test_the_pass_makes_the_first_route_exact(reciprocal_pt2, tmp_path):
    deploykit.convert(reciprocal_pt2, to="coreml", out=tmp_path / "out")
    artifact = _artifact(tmp_path / "out")
    (attempt,) = artifact["attempts"]
    assert attempt["name"] == "jit.trace" and attempt["outcome"] == "kept"
    assert _error(attempt) <= 1e-6
    (record,) = [p for p in artifact["passes"] if p["name"] == "exact_reciprocal"]
    assert record["stage"] == "coreml" and record["items"] == ["inverse output: epsilon 1e-4 -> 0"]


def test_without_passes_the_frontends_drift_and_the_onnx_route_is_kept(reciprocal_pt2, tmp_path):
    deploykit.convert(reciprocal_pt2, to="coreml", out=tmp_path / "out", passes="none")
    attempts = _artifact(tmp_path / "out")["attempts"]
    assert [(a["name"], a["outcome"]) for a in attempts] == [
        ("jit.trace", "parity-failed"), ("torch.export", "parity-failed"), ("onnx:onnx2coreml", "kept")]
    assert _error(attempts[0]) == pytest.approx(1e-4 / 1.1e-3, rel=0.01)  # 1e-4 / x at the smallest x
    assert _error(attempts[2]) <= 1e-6
