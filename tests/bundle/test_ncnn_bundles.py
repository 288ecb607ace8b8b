"""NCNN bundles end to end: a tiny torch model (seeded conv + relu + linear, torch.export.save) converted to an NCNN
pair, bundled for Android and iOS, checked by `verify-bundle`, published to a channel and pulled into an install
directory; both files of the pair are installed with the manifest's hashes and run, and a tampered .bin is refused
with nothing installed."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from deploykit.bundle.client import pull
from deploykit.bundle.manifest import canonical_json
from deploykit.bundle.repository import publish
from deploykit.bundle.signing import CHANNEL_PAYLOAD_TYPE, sign_envelope
from deploykit.bundle.verify import verify_bundle
from deploykit.core.errors import IntegrityError
from tests.bundle.bundle_helpers import LABELS, NAME, rewrite_zip, serve, tree_snapshot
from tests.bundle.ncnn_helpers import MEAN, SHAPE, STD, bundle_tiny, converted_tiny, tiny_module

PARAM, BIN = "model/model.ncnn.param", "model/model.ncnn.bin"


@pytest.fixture(scope="module")
def ncnn_dist(tmp_path_factory) -> Path:
    return converted_tiny(tmp_path_factory)


@pytest.fixture(scope="module")
def ncnn_bundles(ncnn_dist, keys, labels_file, tmp_path_factory) -> dict[str, Path]:
    return bundle_tiny(ncnn_dist, tmp_path_factory.mktemp("ncnn-bundles"), keys["publisher"][0], labels_file)


def _manifest(path: Path, keys) -> dict:
    return verify_bundle(path, [keys["publisher"][1]]).manifest.raw


def test_one_pair_gives_an_android_and_an_ios_bundle_with_the_ncnn_runtime(ncnn_bundles, ncnn_dist, keys):
    from importlib import metadata

    record = json.loads((ncnn_dist / "deploykit-report.json").read_text())
    artifact = next(a for a in record["artifacts"] if a["path"] == "tiny.fp32.ncnn")
    assert set(ncnn_bundles) == {"android", "ios"}
    for platform, path in ncnn_bundles.items():
        m = _manifest(path, keys)
        assert (m["platform"], m["runtime"], m["format"], m["variant"], m["model"]) == (platform, "ncnn", "ncnn",
                                                                                      "ncnn-fp32", PARAM)
        runtime = m["compatibility"]["runtime"]
        assert runtime == {"name": "ncnn", "min_version": metadata.version("ncnn"), "compute": "vulkan",
                           "fp16_storage": False, "cpu_only_layers": []}
        assert (m["compatibility"]["min_android_api"], m["compatibility"]["min_ios"]) == (
            (24, None) if platform == "android" else (None, "13.0"))
        x = m["io"]["inputs"][0]
        assert (x["name"], x["shape"], x["normalization"]) == ("x", list(SHAPE), {"mean": list(MEAN), "std": list(STD)})
        assert m["io"]["outputs"][0]["name"] == "output" and m["io"]["outputs"][0]["labels"]["count"] == len(LABELS)
        model_files = {f["path"]: f for f in m["files"] if f["role"] == "model"}
        assert set(model_files) == {PARAM, BIN}
        with zipfile.ZipFile(path) as archive:
            for name, src in ((PARAM, "model.ncnn.param"), (BIN, "model.ncnn.bin")):
                data = archive.read(name)  # the pair goes in as converted
                assert data == (ncnn_dist / "tiny.fp32.ncnn" / src).read_bytes()
                assert hashlib.sha256(data).hexdigest() == model_files[name]["sha256"]
            names = set(archive.namelist())
        expected = ({"integration/kotlin/DeployKitModel.kt", "integration/kotlin/BundleVerifier.kt",
                     "integration/kotlin/DeployKitNcnn.kt", "integration/cpp/deploykit_ncnn_jni.cpp",
                     "integration/cpp/CMakeLists.txt"} if platform == "android" else
                    {"integration/swift/DeployKitModel.swift", "integration/objc/DeployKitNcnnBridge.h",
                     "integration/objc/DeployKitNcnnBridge.mm"})
        assert expected | {"integration/cpp/DeployKitNcnn.h", "integration/cpp/DeployKitNcnn.cpp",
                           "integration/README.md"} <= names
        assert not any(n.endswith(".swift") for n in names) if platform == "android" else not any(
            n.endswith(".kt") for n in names)
        assert m["provenance"]["artifact_sha256"] == artifact["sha256"]


def test_verify_bundle_accepts_both_and_refuses_a_tampered_bin(ncnn_bundles, keys, tmp_path):
    def verify(path):
        return subprocess.run([sys.executable, "-m", "deploykit.cli.app", "verify-bundle", str(path), "--trusted-key",
                               str(keys["publisher"][3])], capture_output=True, text=True, timeout=120)

    for platform, path in ncnn_bundles.items():
        ok = verify(path)
        assert ok.returncode == 0, ok.stderr
        assert f"{platform}/ncnn-fp32" in ok.stdout
    original = ncnn_bundles["android"]
    with zipfile.ZipFile(original) as archive:
        weights = bytearray(archive.read(BIN))
    weights[len(weights) // 2] ^= 0x01  # one bit of one weight: same length, other bytes
    refused = verify(rewrite_zip(original, tmp_path / "tampered.zip", replace={BIN: bytes(weights)}))
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert BIN in refused.stderr


def test_pull_installs_the_param_and_the_bin_with_the_manifests_hashes(ncnn_bundles, keys, tmp_path):
    import torch

    from deploykit.core.types import TensorSpec
    from deploykit.runners.ncnn_runner import NcnnRunner

    repo = tmp_path / "repo"
    publish(list(ncnn_bundles.values()), repo, "stable", keys["publisher"][0])
    with serve(repo) as url:
        results = {platform: pull(url, "stable", NAME, [keys["publisher"][1]], tmp_path / platform, platform=platform)
                   for platform in ncnn_bundles}
    x = np.random.default_rng(0).random(SHAPE, dtype=np.float32)
    with torch.no_grad():
        expected = tiny_module()(torch.from_numpy(x)).numpy()
    for platform, result in results.items():
        assert (result.status, result.platform, result.variant) == ("updated", platform, "ncnn-fp32")
        manifest = _manifest(ncnn_bundles[platform], keys)
        for f in manifest["files"]:
            installed = result.path / f["path"]
            assert installed.is_file() and hashlib.sha256(installed.read_bytes()).hexdigest() == f["sha256"]
        # the pulled pair is the model: the ncnn runtime gives the source's outputs under the manifest's blob names
        with NcnnRunner(result.path / PARAM, inputs=(TensorSpec("x", SHAPE),),
                        outputs=(TensorSpec("output", (1, 10)),)) as runner:
            out = runner.infer({"x": x})["output"]
        np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def _release_of(repo: Path) -> tuple[dict, dict, Path]:
    index = json.loads(base64.b64decode(json.loads((repo / "channels" / "stable.json").read_bytes())["payload"]))
    release_path = repo / index["models"][NAME]["release"]["path"]
    return index, json.loads(release_path.read_text()), release_path


def _refused_without_a_trace(dest: Path, match: str, **kwargs) -> None:
    """The pull raises ``match`` and leaves nothing under ``dest`` but the state file (channel versions seen)."""
    before = {k: v for k, v in tree_snapshot(dest.parent).items() if not k.endswith(".deploykit-state.json")}
    with pytest.raises(IntegrityError, match=match):
        pull(**kwargs, dest=dest)
    after = {k: v for k, v in tree_snapshot(dest.parent).items() if not k.endswith(".deploykit-state.json")}
    after.pop(dest.name, None)
    assert after == {k: v for k, v in before.items() if k != dest.name}
    assert not (dest / NAME).exists()


def test_pull_refuses_a_tampered_bin_and_installs_nothing(ncnn_bundles, keys, tmp_path):
    publisher_key, public = keys["publisher"][0], keys["publisher"][1]
    repo = tmp_path / "repo"
    publish([ncnn_bundles["android"]], repo, "stable", publisher_key)
    index, release, release_path = _release_of(repo)
    ref = release["bundles"][0]
    served = repo / ref["path"]
    with zipfile.ZipFile(served) as archive:
        weights = bytearray(archive.read(BIN))
    weights[-1] ^= 0x80
    tampered = rewrite_zip(served, tmp_path / "tampered.zip", replace={BIN: bytes(weights)})
    # 1. the server's copy altered: its hash is not the one the signed release pins
    served.write_bytes(tampered.read_bytes()[:ref["length"]].ljust(ref["length"], b"\0"))
    with serve(repo) as url:
        _refused_without_a_trace(tmp_path / "a", "sha256 .* differs", repo=url, channel="stable", name=NAME,
                                 trusted=[public], platform="android")
    # 2. a release and channel index re-signed for the altered bundle (a publishing mistake, a stolen channel key):
    #    the bundle's own signed manifest still refuses the .bin
    data = tampered.read_bytes()
    bundle_path = f"bundles/{hashlib.sha256(data).hexdigest()}.zip"
    (repo / bundle_path).write_bytes(data)
    release["bundles"][0] = dict(ref, path=bundle_path, sha256=hashlib.sha256(data).hexdigest(), length=len(data))
    release_bytes = canonical_json(release)
    new_release = f"releases/{hashlib.sha256(release_bytes).hexdigest()}.json"
    (repo / new_release).write_bytes(release_bytes)
    index["models"][NAME]["release"] = {"path": new_release, "sha256": hashlib.sha256(release_bytes).hexdigest(),
                                        "length": len(release_bytes)}
    index["version"] += 1
    (repo / "channels" / "stable.json").write_bytes(sign_envelope(canonical_json(index), CHANNEL_PAYLOAD_TYPE,
                                                                  [publisher_key]))
    assert release_path.exists()
    with serve(repo) as url:
        _refused_without_a_trace(tmp_path / "b", "model/model.ncnn.bin", repo=url, channel="stable", name=NAME,
                                 trusted=[public], platform="android")
