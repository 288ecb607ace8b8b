"""`convert` checks parity by default, records it, and fails (exit 1) with the artifacts kept for inspection."""

from __future__ import annotations

import json

import pytest

import deploykit
from deploykit.core.errors import ParityError
from deploykit.parity.profiles import parse_tolerances
from deploykit.pipeline.request import VerifyOptions
from tests.conftest import save_keras, save_pt2


def test_convert_verifies_every_artifact_by_default(model_dir, tmp_path):
    report = deploykit.convert(save_pt2("efficientnet", model_dir), out=tmp_path)
    for artifact in report.artifacts:
        assert artifact.parity["passed"] is True
        assert artifact.parity["profile"] == "fp32"
        metrics = artifact.parity["outputs"]["output"]
        assert metrics["cosine_similarity"] > 0.99999 and metrics["max_rel_error"] < 1e-4
    runners = {a.target: a.parity["artifact_runner"] for a in report.artifacts}
    assert "evaluator" in runners["coreml"]  # Core ML numerics checked on Linux
    record = json.loads((tmp_path / "deploykit-report.json").read_text())
    assert record["artifacts"][1]["parity"]["passed"] is True


def test_no_verify_skips_the_check(model_dir, tmp_path):
    report = deploykit.convert(save_keras("mobilenet", model_dir), to="tflite", out=tmp_path, verify=False)
    assert report.artifacts[0].parity is None


def test_parity_failure_raises_but_keeps_artifacts_and_record(model_dir, tmp_path):
    impossible = parse_tolerances(["snr_db=1000"])  # no float conversion reaches 1000 dB
    with pytest.raises(ParityError, match="snr_db") as info:
        deploykit.convert(save_keras("mobilenet", model_dir), to="tflite", out=tmp_path,
                          verify_options=VerifyOptions(tolerances=impossible))
    assert "--localize" in info.value.hint
    record = json.loads((tmp_path / "deploykit-report.json").read_text())
    assert record["artifacts"][0]["parity"]["passed"] is False
    assert (tmp_path / record["artifacts"][0]["path"]).is_file()
