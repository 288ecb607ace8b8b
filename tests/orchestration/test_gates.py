"""Baseline gates: a deliberately worse model fails the build with exit 1, a readable diff and JUnit XML;
the same model passes; accuracy is measured on labelled pictures exactly as `deploykit predict` runs them."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from deploykit.core.errors import InputError
from deploykit.orchestration.gates import check_gates, junit_xml, load_baseline
from deploykit.orchestration.settings import GateLimits
from tests.cli.test_convert_cmd import DEPLOYKIT, REPO


def run(*args):
    """The CLI as a user runs it, on a wide terminal so that tables do not wrap mid-word."""
    import os
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    return subprocess.run([*DEPLOYKIT, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

CONFIG = """[signing]
key = "keys/deploykit.key"

[publish]
repository = "repo"
channel = "stable"

[[models]]
name = "digits"
source = "digits.keras"
targets = ["tflite"]
validation = "validation"
data = "pictures"

[models.image]
input = "image"

[models.labels]
file = "labels.txt"

[models.bundle]
name = "com.example.digits"
version = "1.0.0"

[models.gates]
accuracy_drop = 2.0
size_growth = 10.0
"""


def _job(accuracy=90.0, size=1000, latency=1.0, parity=True, job_id="m/tflite/fp32"):
    return {"id": job_id, "model": "m", "artifact": "dist/m.tflite", "parity": parity, "size_bytes": size,
            "accuracy": {"top1": accuracy}, "latency": {"median_ms": latency}}


def test_each_gate_against_its_limit():
    baseline = {"m/tflite/fp32": {"accuracy": 90.0, "size_bytes": 1000, "latency_ms": 1.0}}
    limits = {"m": GateLimits(accuracy_drop=1.0, size_growth=10.0, latency_growth=50.0)}
    same = check_gates([_job()], baseline, limits)
    assert [(g.gate, g.status) for g in same] == [("parity", "passed"), ("accuracy", "passed"), ("size", "passed"),
                                                  ("latency", "passed")]
    worse = {g.gate: g for g in check_gates([_job(accuracy=88.5, size=1101, latency=1.6, parity=False)], baseline, limits)}
    assert {k: g.status for k, g in worse.items()} == {"parity": "failed", "accuracy": "failed", "size": "failed",
                                                       "latency": "failed"}
    assert worse["accuracy"].message == "dropped 1.50 points" and worse["size"].message == "grew +10.1 %"
    unknown = check_gates([_job(job_id="m/tflite/fp16")], baseline, limits)
    assert [g.status for g in unknown] == ["passed", "skipped", "skipped", "skipped"]
    assert [g.gate for g in check_gates([_job()], None, limits)] == ["parity"]  # no baseline: parity only


def test_junit_has_one_case_per_job_and_gate():
    results = check_gates([_job(accuracy=80.0)], {"m/tflite/fp32": {"accuracy": 90.0}},
                          {"m": GateLimits(accuracy_drop=1.0, size_growth=5.0)})
    suite = ET.fromstring(junit_xml(results))
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    failed = suite.find("testcase[@name='accuracy']/failure")
    assert failed.get("message") == "dropped 10.00 points" and "90.0 -> 80.0" in failed.text


def test_a_bad_baseline_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_baseline(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"hello": 1}')
    with pytest.raises(InputError, match="neither a deploykit build record nor a convert record"):
        load_baseline(tmp_path / "other.json")


def _digits_project(folder: Path, epochs: int) -> None:
    sys.path.insert(0, str(EXAMPLES))
    try:
        from make_example_model import build_digits_model, save_pictures, save_validation
    finally:
        sys.path.remove(str(EXAMPLES))
    model, _, (x, y) = build_digits_model(epochs=epochs)
    model.save(folder / "digits.keras")
    (folder / "labels.txt").write_text("".join(f"{d}\n" for d in range(10)))
    if not (folder / "validation").exists():
        save_pictures(x[:4], y[:4], folder / "pictures")
        save_validation(x[4:104], y[4:104], folder / "validation")


@pytest.mark.heavy  # heavy: ~2 min (trains and builds two models); the gate logic is covered by the fast tests above
def test_a_worse_model_fails_the_gate_with_exit_1(tmp_path):
    from deploykit.bundle.signing import generate_keypair

    (tmp_path / "deploykit.toml").write_text(CONFIG)
    generate_keypair(tmp_path / "keys")
    _digits_project(tmp_path, epochs=30)
    first = run("build", tmp_path / "deploykit.toml", "--json")
    assert first.returncode == 0, first.stderr[-2000:]
    record = json.loads(first.stdout)
    (job,) = record["jobs"]
    assert job["accuracy"]["samples"] == 100 and job["accuracy"]["top1"] > 90  # the example model: ~99 % on held-out digits
    (tmp_path / "baseline.json").write_text(first.stdout)

    same = run("build", tmp_path / "deploykit.toml", "--baseline", tmp_path / "baseline.json", "--publish")
    assert same.returncode == 0 and "gates: 3 of 3 passed" in same.stderr, same.stderr[-2000:]
    assert "published: channel stable version 1" in same.stderr
    channel = (tmp_path / "repo" / "channels" / "stable.json").read_bytes()

    _digits_project(tmp_path, epochs=1)
    # The baseline is now the release in production: the channel's current bundles, as published above.
    worse = run("build", tmp_path / "deploykit.toml", "--baseline", tmp_path / "repo", "--junit", tmp_path / "gates.xml",
                "--publish")
    assert worse.returncode == 1, worse.stdout[-2000:] + worse.stderr[-2000:]
    assert "gates: 2 of 3 passed" in worse.stderr, worse.stderr[-3000:]
    assert "accuracy" in worse.stderr and "failed: dropped" in worse.stderr
    assert "not published: 1 gate(s) failed" in worse.stderr
    assert (tmp_path / "repo" / "channels" / "stable.json").read_bytes() == channel  # the regression never shipped
    suite = ET.parse(tmp_path / "gates.xml").getroot()
    assert suite.find("testcase[@classname='digits/tflite/fp32'][@name='accuracy']/failure") is not None
    rebuilt = json.loads((tmp_path / "build" / "deploykit-build.json").read_text())
    assert rebuilt["jobs"][0]["reused"] is False  # the source's bytes changed


def test_an_inconclusive_verdict_skips_the_parity_gate_and_says_why():
    """An inconclusive parity (docs/verify.md: failures only where the source's own noise swamps the comparison)
    neither passes nor fails a build; a failed one still fails it."""
    from types import SimpleNamespace

    from deploykit.orchestration.jobs import _artifact

    made = SimpleNamespace(path="m.fp32.tflite", sha256="0" * 64, size_bytes=10,
                           parity={"passed": False, "status": "inconclusive"})
    job = {"id": "m/tflite/fp32", "model": "m", **_artifact(SimpleNamespace(artifacts=[made]))}
    assert job["parity"] is False and job["parity_status"] == "inconclusive"
    (gate,) = check_gates([job], None, {})
    assert gate.status == "skipped" and "inconclusive" in gate.message and "data:" in gate.message
    assert 'skipped="1"' in junit_xml([gate]) and 'failures="0"' in junit_xml([gate])
    failed = {**job, "parity_status": None}
    assert check_gates([failed], None, {})[0].status == "failed"
