"""The GitHub Actions example (examples/github-actions/deploykit-build.yml) works: every `run:` step of its three
stages runs here, in order, in a temporary copy of the example project, with the matrix the plan step wrote.

What GitHub provides is stood in for, and only that (the steps see the environment a runner has, without the
test harness' own TensorFlow settings): `./setup.sh` steps are skipped (the copy links this
environment's .venv), `uses:` steps (checkout, artifact upload and download) become file copies between the
stages, `$GITHUB_OUTPUT` is a file, `${{ matrix.job }}` the matrix entry, and the signing-key secret is unset
(the step then makes a key, as on a fork).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "examples" / "github-actions" / "deploykit-build.yml"


def _run_steps(job: dict, cwd: Path, env: dict, matrix_job: str | None = None) -> dict[str, str]:
    """Run a workflow job's `run:` steps; returns what they wrote to $GITHUB_OUTPUT."""
    outputs: dict[str, str] = {}
    for step in job["steps"]:
        if "run" not in step or step["run"].strip() == "./setup.sh":
            continue
        script = step["run"].replace("${{ matrix.job }}", matrix_job or "")
        assert "${{" not in script, f"unexpanded expression in {step.get('name')}: {script}"
        output_file = cwd / "github_output"
        output_file.write_text("")
        step_env = {**env, "GITHUB_OUTPUT": str(output_file),
                    **{k: "" if "secrets." in str(v) else str(v) for k, v in step.get("env", {}).items()}}
        done = subprocess.run(["bash", "-eo", "pipefail", "-c", script], cwd=cwd, env=step_env, capture_output=True,
                              text=True, timeout=900)
        assert done.returncode == 0, f"step {step.get('name')!r} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        for line in output_file.read_text().splitlines():
            key, _, value = line.partition("=")
            outputs[key] = value
    return outputs


@pytest.mark.heavy  # heavy: ~6 min under load (a whole CI matrix: plan, one build per slice, assemble); run with -m heavy
def test_the_workflow_plans_builds_slices_and_assembles(tmp_path):
    workflow = yaml.safe_load(WORKFLOW.read_text())
    project = tmp_path / "clone"
    project.mkdir()
    shutil.copytree(REPO / "examples", project / "examples", ignore=shutil.ignore_patterns("models", "__pycache__"))
    (project / ".venv").symlink_to(REPO / ".venv")
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    # The steps run as on a CI runner, not with the test harness' TensorFlow settings (tests/conftest.py turns
    # oneDNN off, which trains the example model to other weights, whose lut4 variant fails its profile).
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)

    plan = _run_steps(workflow["jobs"]["plan"], project, env)
    matrix = json.loads(plan["matrix"])["job"]
    assert matrix == ["digits/tflite/fp32", "digits/tflite/fp16", "digits/tflite/int8-weights",
                      "digits/coreml/fp32", "digits/coreml/fp16", "digits/coreml/lut4"]

    artifacts = project / "job-artifacts"
    for job_id in matrix:  # each matrix runner builds its slice; its job folder is uploaded
        _run_steps(workflow["jobs"]["build"], project, env, job_id)
        slug = re.sub("/", "-", job_id)
        shutil.move(project / "dist" / "build" / "jobs" / job_id, artifacts / f"job-{slug}")
    assert not list((project / "dist" / "build" / "jobs").rglob("job.json"))  # the assemble stage starts empty
    assert not (project / "dist" / "build" / "bundles").exists()

    _run_steps(workflow["jobs"]["assemble"], project, env)
    record = json.loads((project / "dist" / "build" / "deploykit-build.json").read_text())
    assert [j["id"] for j in record["jobs"]] == matrix
    assert all(j["reused"] and j["status"] == "ok" for j in record["jobs"])  # the slices' outputs, not rebuilt
    assert len(record["bundles"]) == 6
    gates = record["gates"]
    assert gates and all(g["status"] == "passed" for g in gates), [g for g in gates if g["status"] != "passed"]
    assert (project / "dist" / "gates.xml").read_text().count("<testcase") == len(gates)
    assert record["published"]["channel"] == "stable" and "com.example.digits" in record["published"]["models"]
    assert (project / "dist" / "repo" / "channels" / "stable.json").is_file()

    # The fanned-out build gives the bundles a local build gives.
    assembled = {b["bundle"].rsplit("/", 1)[-1]: b["sha256"] for b in record["bundles"]}
    local = subprocess.run([str(project / ".venv" / "bin" / "deploykit"), "build", "examples/deploykit.toml", "--force",
                            "--jobs", "2", "--json", "--quiet"], cwd=project, env=env, capture_output=True, text=True,
                           timeout=900)
    assert local.returncode == 0, local.stderr[-2000:]
    assert {b["bundle"].rsplit("/", 1)[-1]: b["sha256"] for b in json.loads(local.stdout)["bundles"]} == assembled
