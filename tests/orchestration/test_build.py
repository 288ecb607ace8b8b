"""``deploykit build``: config checking with line numbers, the job plan and its keys, and real builds that
are reused when nothing changed and give byte-identical bundles serially, incrementally and in parallel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploykit.orchestration.config import ConfigError, load_config
from deploykit.orchestration.plan import plan
from deploykit.orchestration.run import BuildOptions, build
from tests.cli.test_convert_cmd import run
from tests.report.report_helpers import assert_self_contained, parse

CONFIG = """[build]
out = "out"

[signing]
key = "keys/deploykit.key"

[[models]]
name = "classifier"
source = "classifier.keras"
targets = ["tflite", "coreml"]
inputs = ["image=1x32x32x3"]
variants = { tflite = ["fp16"], coreml = ["fp16"] }
samples = 4

[models.bundle]
name = "com.example.classifier"
version = "1.0.0"
"""


def _write(folder: Path, text: str = CONFIG) -> Path:
    path = folder / "deploykit.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("change, message", [
    (('targets = ["tflite", "coreml"]', 'targets = ["tflite", "coreml", "tflit"]'),
     r"deploykit.toml:10: models\[0\].targets: 'tflit' is not allowed \(did you mean 'tflite'\?"),
    (('samples = 4', 'sample = 4'), r"deploykit.toml:13: unknown key 'sample' \(did you mean 'samples'\?"),
    (('version = "1.0.0"\n', ''), r"deploykit.toml:15: models\[0\].bundle.version is missing"),
    (('tflite = ["fp16"]', 'tflite = ["lut4"]'), r"models\[0\].variants: 'lut4' does not exist for tflite"),
    (('samples = 4', 'samples = 0'), r"deploykit.toml:13: models\[0\].samples: 0 is below 1"),
    (('[build]', '[build'), "not valid TOML"),
    (('samples = 4', 'samples = 4\ntolerances = ["bogus"]'), r"models\[0\].tolerances: bad --tolerance 'bogus'"),
])
def test_a_bad_config_names_the_line_the_key_and_what_is_allowed(tmp_path, change, message):
    path = _write(tmp_path, CONFIG.replace(*change))
    (tmp_path / "classifier.keras").write_bytes(b"")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_the_plan_and_what_changes_a_jobs_key(tmp_path):
    path = _write(tmp_path, CONFIG + CONFIG[CONFIG.index("[[models]]"):].replace('name = "classifier"', 'name = "other"')
                  .replace("com.example.classifier", "com.example.other").replace("classifier.keras", "other.keras"))
    (tmp_path / "classifier.keras").write_bytes(b"first")
    (tmp_path / "other.keras").write_bytes(b"other")
    jobs = plan(load_config(path))
    assert [j.id for j in jobs][:4] == ["classifier/tflite/fp32", "classifier/tflite/fp16", "classifier/coreml/fp32",
                                        "classifier/coreml/fp16"]
    assert [j.id for j in plan(load_config(path), ("other/coreml",))] == ["other/coreml/fp32", "other/coreml/fp16"]
    with pytest.raises(ConfigError, match="--only 'nobody' matches no job"):
        plan(load_config(path), ("nobody",))
    (tmp_path / "classifier.keras").write_bytes(b"second")
    changed = plan(load_config(path))
    assert all(a.key != b.key for a, b in zip(jobs[:4], changed[:4]))  # the source's bytes changed
    assert [a.key for a in jobs[4:]] == [b.key for b in changed[4:]]  # the other model's did not


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from deploykit.bundle.signing import generate_keypair
    from tests.zoo import keras_nets

    folder = tmp_path_factory.mktemp("project")
    keras_nets.build("mobilenet").save(folder / "classifier.keras")
    generate_keypair(folder / "keys")
    return _write(folder)


def _bundle_hashes(result) -> dict:
    return {Path(b["bundle"]).name: b["sha256"] for b in result.bundles}


def test_serial_incremental_parallel_and_ray_builds_give_the_same_bundles(project):
    config = load_config(project)
    first = build(config, BuildOptions(jobs=1))
    assert [j["status"] for j in first.jobs] == ["ok"] * 4 and not any(j["reused"] for j in first.jobs)
    assert all(j["parity"] is True for j in first.jobs)
    assert sorted(_bundle_hashes(first)) == [f"com.example.classifier-1.0.0-{p}-{v}.zip"
                                             for p in ("android", "ios") for v in ("fp16", "fp32")]
    record = json.loads((config.out / "deploykit-build.json").read_text())
    assert [j["id"] for j in record["jobs"]] == [j["id"] for j in first.jobs]
    job_record = json.loads((config.out / "jobs/classifier/coreml/fp16/dist/deploykit-report.json").read_text())
    assert [a["variant"] for a in job_record["artifacts"]] == ["fp16"]  # only this job's artifact is kept
    # ... and only it was written: its fp32 base stayed in the job's scratch space
    assert sorted(p.name for p in (config.out / "jobs/classifier/coreml/fp16/dist").iterdir()) == [
        "classifier.fp16.mlpackage", "deploykit-report.json", "report.html"]
    job_rows = parse((config.out / "jobs/classifier/coreml/fp16/dist/report.html").read_text()).rows
    assert [r.attrs["variant"] for r in job_rows] == ["fp16"]  # and so does its page
    page = first.report_path.read_text()
    rows = parse(page).rows
    assert first.report_path == config.out / "report.html"
    assert [r.attrs["path"] for r in rows] == [f"jobs/{j['id']}/{j['artifact']}" for j in first.jobs]
    assert [int(r.attrs["size-bytes"]) for r in rows] == [j["size_bytes"] for j in first.jobs]
    # TFLite: the build's own LiteRT measurement; Core ML: the estimate, not the numpy evaluator's time.
    assert [r.latency["ms"] for r in rows[:2]] == [j["latency"]["median_ms"] for j in first.jobs[:2]]
    assert [r.latency["source"] for r in rows] == ["litert", "litert", "estimate", "estimate"]
    assert_self_contained(page)

    again = build(config, BuildOptions(jobs=1))
    assert all(j["reused"] for j in again.jobs) and again.seconds < first.seconds / 3
    assert _bundle_hashes(again) == _bundle_hashes(first)

    parallel = build(config, BuildOptions(jobs=2, force=True))
    assert parallel.workers == 2 and not any(j["reused"] for j in parallel.jobs)
    assert _bundle_hashes(parallel) == _bundle_hashes(first)

    # A local Ray instance with 2 CPUs, started by the executor: one task per job, the same bundles.
    on_ray = build(config, BuildOptions(jobs=2, force=True, executor="ray"))
    assert [j.get("executor") for j in on_ray.jobs] == ["ray"] * 4 and all(j["status"] == "ok" for j in on_ray.jobs)
    assert _bundle_hashes(on_ray) == _bundle_hashes(first)


def test_cli_plan_json_and_a_bad_config_exit_2(project, tmp_path):
    result = run("build", project, "--plan", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["jobs"]
    assert [r["id"] for r in rows] == ["classifier/tflite/fp32", "classifier/tflite/fp16", "classifier/coreml/fp32",
                                       "classifier/coreml/fp16"]
    assert {r["action"] for r in rows} <= {"run", "reuse"}
    bad = _write(tmp_path, CONFIG.replace("targets", "target"))
    result = run("build", bad)
    assert result.returncode == 2 and "deploykit.toml:10: unknown key 'target' (did you mean 'targets'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_init_writes_a_config_that_loads(tmp_path):
    (tmp_path / "net.keras").write_bytes(b"x")
    result = run("build", tmp_path / "deploykit.toml", "--init", tmp_path / "net.keras")
    assert result.returncode == 0, result.stderr
    config = load_config(tmp_path / "deploykit.toml")
    assert config.models[0].name == "net" and config.models[0].variants == {"tflite": ("fp32", "fp16"), "coreml": ("fp32", "fp16")}
    again = run("build", tmp_path / "deploykit.toml", "--init", tmp_path / "net.keras")
    assert again.returncode == 2 and "does not overwrite" in again.stderr


def test_a_tolerance_in_the_config_decides_parity(project, tmp_path):
    """An impossible bound (max_rel_error 1e-12) fails the job's parity: the job is kept, marked, and the CLI exits 1."""
    import shutil

    shutil.copy(project.parent / "classifier.keras", tmp_path / "classifier.keras")
    strict = CONFIG.replace("[signing]\nkey = \"keys/deploykit.key\"\n", "").replace(
        'variants = { tflite = ["fp16"], coreml = ["fp16"] }', 'targets = ["tflite"]\ntolerances = ["max_rel_error=1e-12"]'
    ).replace('targets = ["tflite", "coreml"]\n', "")
    config = _write(tmp_path, strict)
    result = run("build", config, "--no-bundle")
    assert result.returncode == 1, result.stderr[-2000:]
    record = json.loads((tmp_path / "out" / "deploykit-build.json").read_text())
    (job,) = record["jobs"]
    assert job["status"] == "parity-failed" and "max_rel_error" in job["message"] and job["parity"] is False


def test_npz_validation_measures_top1_against_labels(project, tmp_path):
    """x, y in an .npz: y is the Keras source's own top class for each x, so the fp32 artifact must agree on
    (nearly) all; y shifted by one class must give (nearly) none right."""
    import shutil

    import keras
    import numpy as np

    shutil.copy(project.parent / "classifier.keras", tmp_path / "classifier.keras")
    x = np.random.default_rng(4).uniform(-1, 1, (40, 32, 32, 3)).astype(np.float32)
    top = keras.models.load_model(tmp_path / "classifier.keras").predict(x, verbose=0).argmax(axis=1)
    np.savez(tmp_path / "right.npz", x=x, y=top)
    np.savez(tmp_path / "wrong.npz", x=x, y=(top + 1) % 10)
    results = {}
    for name in ("right", "wrong"):
        text = (CONFIG.replace('[signing]\nkey = "keys/deploykit.key"\n', "")
                .replace('targets = ["tflite", "coreml"]\n', 'targets = ["tflite"]\n')
                .replace('variants = { tflite = ["fp16"], coreml = ["fp16"] }', f'validation = "{name}.npz"')
                .replace('out = "out"', f'out = "out-{name}"'))
        config = load_config(_write(tmp_path, text))
        result = build(config, BuildOptions(jobs=1, bundle=False))
        (job,) = result.jobs
        assert job["status"] == "ok", job.get("message")
        results[name] = job["accuracy"]
        (row,) = parse(result.report_path.read_text()).rows
        assert row.top1 == job["accuracy"]["top1"]
    assert results["right"]["samples"] == 40 and results["right"]["top1"] >= 95.0
    assert results["wrong"]["top1"] <= 5.0
