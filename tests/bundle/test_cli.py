"""The commands as a user runs them (real processes, real exit codes): keygen -> bundle -> publish -> pull
over HTTP -> verify-bundle, plus the exit codes of refusals."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.bundle.bundle_helpers import NAME, rewrite_zip, serve


def deploykit(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploykit.cli.app", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_keygen_bundle_publish_pull_verify(converted, labels_file, tmp_path):
    keygen = deploykit("keygen", "--out", "keys", "--json", cwd=tmp_path)
    assert keygen.returncode == 0, keygen.stderr
    keyid = json.loads(keygen.stdout)["keyid"]

    built = deploykit("bundle", converted / "mobilenet.fp32.tflite", converted / "mobilenet.fp32.mlpackage",
                      "--name", NAME, "--version", "1.2.0", "--labels", labels_file, "--mean", "127.5", "--std", "127.5",
                      "--sign-key", "keys/deploykit.key", "--out", "bundles", "--json", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    paths = {b["platform"]: tmp_path / b["bundle"] for b in json.loads(built.stdout)["bundles"]}
    assert set(paths) == {"android", "ios"}

    published = deploykit("publish", *paths.values(), "--repo", "repo", "--channel", "stable", "--rollout", "100",
                          "--sign-key", "keys/deploykit.key", "--json", cwd=tmp_path)
    assert published.returncode == 0, published.stderr
    assert json.loads(published.stdout)["version"] == 1

    with serve(tmp_path / "repo") as url:
        pulled = deploykit("pull", "--repo", url, "--channel", "stable", "--name", NAME, "--trusted-key",
                           "keys/deploykit.pub", "--dest", "models", "--platform", "android", "--json", cwd=tmp_path)
    assert pulled.returncode == 0, pulled.stderr
    result = json.loads(pulled.stdout)
    assert result["status"] == "updated" and result["sequence"] == 1_002_000
    assert (Path(result["path"]) / "model" / "model.tflite").is_file()

    verified = deploykit("verify-bundle", paths["ios"], "--trusted-key", "keys/deploykit.pub", "--json", cwd=tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["signed_by"] == [keyid]


def test_verify_bundle_exit_codes(bundles, keys, tmp_path):
    trusted, attacker = keys["publisher"][3], keys["attacker"][3]
    ok = deploykit("verify-bundle", bundles["android"], "--trusted-key", trusted, cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.startswith("OK ")
    with zipfile.ZipFile(bundles["android"]) as archive:
        labels = archive.read("assets/labels.txt")
    tampered = rewrite_zip(bundles["android"], tmp_path / "t.zip", replace={"assets/labels.txt": labels.replace(b"0", b"1")})
    bad = deploykit("verify-bundle", tampered, "--trusted-key", trusted, cwd=tmp_path)
    assert bad.returncode == 4 and "verification failed" in bad.stderr and "assets/labels.txt" in bad.stderr
    untrusted = deploykit("verify-bundle", bundles["android"], "--trusted-key", attacker, cwd=tmp_path)
    assert untrusted.returncode == 4 and "untrusted key" in untrusted.stderr
    missing = deploykit("verify-bundle", tmp_path / "nope.zip", "--trusted-key", trusted, cwd=tmp_path)
    assert missing.returncode == 2


def test_bundle_without_report_and_publish_without_key_are_usage_errors(converted, tmp_path):
    lonely = tmp_path / "m.tflite"
    lonely.write_bytes((converted / "mobilenet.fp32.tflite").read_bytes())
    no_report = deploykit("bundle", lonely, "--name", NAME, "--version", "1.0.0", cwd=tmp_path)
    assert no_report.returncode == 2 and "hint:" in no_report.stderr
    no_key = deploykit("publish", "--repo", "repo", cwd=tmp_path)
    assert no_key.returncode == 2 and "--sign-key" in no_key.stderr


def test_cli_import_stays_light():
    heavy = ["tensorflow", "torch", "coremltools", "ai_edge_litert", "cryptography", "jsonschema", "urllib.request"]
    code = f"import sys, deploykit.cli.app; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.strip() == "[]"
