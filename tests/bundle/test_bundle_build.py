"""Bundles built from a real converted model: reproducible bytes, complete manifests, readable embedded
metadata, templates rendered with the real signature, and clear errors for bad input."""

from __future__ import annotations

import base64
import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest

from deploykit.bundle.archive import write_zip
from deploykit.bundle.builder import BundleOptions, bundle
from deploykit.bundle.manifest import validate
from deploykit.bundle.verify import verify_bundle
from deploykit.core.errors import InputError, UsageError
from tests.bundle.bundle_helpers import LABELS, NAME, make_bundles


def manifest_of(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(base64.b64decode(json.loads(archive.read("manifest.json"))["payload"]))


def test_same_inputs_give_byte_identical_bundles(converted, keys, labels_file, bundles, tmp_path):
    again = make_bundles(converted, tmp_path / "again", [keys["publisher"][0]], labels_file)
    for platform, path in bundles.items():
        assert path.read_bytes() == again[platform].read_bytes()


def test_source_date_epoch_sets_the_timestamp_and_is_clamped(converted, keys, labels_file, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")  # 2023-11-14
    first = make_bundles(converted, tmp_path / "a", [keys["publisher"][0]], labels_file)["android"]
    second = make_bundles(converted, tmp_path / "b", [keys["publisher"][0]], labels_file)["android"]
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        assert {i.date_time[:3] for i in archive.infolist()} == {(2023, 11, 14)}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "0")  # before 1980: clamped
    write_zip(tmp_path / "c.zip", [("a", b"1")])
    with zipfile.ZipFile(tmp_path / "c.zip") as archive:
        assert archive.infolist()[0].date_time == (1980, 1, 1, 0, 0, 0)


def test_zip_layout_is_canonical(bundles):
    for path in bundles.values():
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
        names = [i.filename for i in infos]
        assert names[0] == "manifest.json" and names[1:] == sorted(names[1:])
        assert {(i.compress_type, i.external_attr >> 16, i.create_system, i.extra, i.date_time) for i in infos} == {
            (zipfile.ZIP_STORED, 0o100644, 3, b"", (1980, 1, 1, 0, 0, 0))}


def test_manifest_is_complete_and_matches_the_files(bundles, keys):
    for platform, path in bundles.items():
        manifest = manifest_of(path)
        validate(manifest, "manifest", "test")
        assert (manifest["name"], manifest["version"], manifest["sequence"]) == (NAME, "1.2.0", 1_002_000)
        assert manifest["platform"] == platform and manifest["variant"] == "fp32"
        image = manifest["io"]["inputs"][0]
        assert (image["name"], image["shape"], image["layout"], image["dtype"]) == ("image", [1, 32, 32, 3], "NHWC", "float32")
        assert image["normalization"] == {"mean": [127.5], "std": [127.5]}
        assert manifest["io"]["outputs"][0]["labels"] == {"path": "assets/labels.txt", "count": 10}
        roles = {f["path"]: f["role"] for f in manifest["files"]}
        assert roles["assets/labels.txt"] == "labels" and roles["integration/README.md"] == "integration"
        provenance = manifest["provenance"]
        assert len(provenance["source"]["sha256"]) == 64 and provenance["tool_versions"]
        with zipfile.ZipFile(path) as archive:
            for entry in manifest["files"]:
                assert len(archive.read(entry["path"])) == entry["length"]
        assert verify_bundle(path, [keys["publisher"][1]]).keyids == (keys["publisher"][1].keyid,)
    assert manifest_of(bundles["ios"])["compatibility"]["min_ios"] == "16.0"
    assert manifest_of(bundles["android"])["compatibility"]["min_android_api"] == 21


def test_tflite_metadata_is_readable_and_the_model_runs_identically(bundles, converted, tmp_path):
    from deploykit.formats.tflite.metadata_read import read_metadata, runs_identically

    with zipfile.ZipFile(bundles["android"]) as archive:
        model = archive.read("model/model.tflite")
    original = (converted / "mobilenet.fp32.tflite").read_bytes()
    assert model != original and runs_identically(original, model) is True
    meta = read_metadata(model)
    assert {"TFLITE_METADATA", "deploykit", "min_runtime_version"} <= set(meta["entries"])
    assert meta["associated_files"] == ["labels.txt"]
    md = meta["model_metadata"]
    assert (md["name"], md["version"], md["author"], md["license"]) == (NAME, "1.2.0", "Example Inc.", "Apache-2.0")
    assert md["inputs"][0]["content"] == "image" and md["inputs"][0]["color_space"] == "rgb"
    assert md["inputs"][0]["normalization"] == {"mean": [127.5], "std": [127.5]}
    assert md["outputs"][0]["associated_files"] == [{"name": "labels.txt", "type": "TENSOR_AXIS_LABELS"}]
    assert meta["deploykit"]["labels"] == LABELS and meta["deploykit"]["sequence"] == 1_002_000
    manifest = manifest_of(bundles["android"])
    assert "runtime check: identical outputs" in manifest["provenance"]["embedded_metadata"]


def test_coreml_metadata_is_readable_and_the_package_still_loads(bundles, keys, tmp_path):
    from deploykit.formats.coreml.metadata import read_metadata

    verify_bundle(bundles["ios"], [keys["publisher"][1]], unpack_to=tmp_path / "x")
    package = tmp_path / "x" / "model" / "model.mlpackage"
    meta = read_metadata(package)
    assert (meta["author"], meta["license"], meta["version"]) == ("Example Inc.", "Apache-2.0", "1.2.0")
    assert json.loads(meta["user_defined"]["com.deploykit.labels"]) == LABELS
    assert meta["user_defined"]["com.deploykit.sequence"] == "1002000"
    assert "normalize (x - [127.5]) / [127.5]" in meta["inputs"]["image"]
    import coremltools as ct

    model = ct.models.MLModel(str(package), skip_model_load=True)  # validates package and specification
    assert model.author == "Example Inc." and model.version == "1.2.0"


def test_templates_are_rendered_with_the_real_signature(bundles, keys):
    with zipfile.ZipFile(bundles["ios"]) as archive:
        swift = archive.read("integration/swift/DeployKitModel.swift").decode()
        readme = archive.read("integration/README.md").decode()
    with zipfile.ZipFile(bundles["android"]) as archive:
        kotlin = archive.read("integration/kotlin/DeployKitModel.kt").decode()
    for text in (swift, readme, kotlin):
        assert "{{" not in text and base64.b64encode(keys["publisher"][1].raw).decode() in text
    assert 'inputName = "image"' in swift and "inputShape: [Int] = [1, 32, 32, 3]" in swift
    assert "mean: [Float] = [127.5]" in swift and 'modelPath = "model/model.mlpackage"' in swift
    assert 'INPUT_NAME = "image"' in kotlin and "INPUT_SHAPE = intArrayOf(1, 32, 32, 3)" in kotlin
    assert "MEAN = floatArrayOf(127.5f)" in kotlin and 'OUTPUT_NAME = "logits"' in kotlin
    assert "| `image` | float32 | 1x32x32x3 | NHWC | (x - [127.5]) / [127.5] |" in readme


def test_artifact_without_report_is_refused_with_a_hint(converted, tmp_path):
    lonely = tmp_path / "model.tflite"
    shutil.copy(converted / "mobilenet.fp32.tflite", lonely)
    with pytest.raises(InputError, match="no deploykit-report.json") as info:
        bundle([lonely], BundleOptions(name=NAME, version="1.0.0", out=tmp_path / "out"))
    assert "deploykit convert" in info.value.hint


def test_artifact_changed_since_conversion_is_refused(converted, tmp_path):
    copy = tmp_path / "dist"
    shutil.copytree(converted, copy)
    with open(copy / "mobilenet.fp32.tflite", "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(InputError, match="changed since `deploykit convert`"):
        bundle([copy / "mobilenet.fp32.tflite"], BundleOptions(name=NAME, version="1.0.0", out=tmp_path / "out"))


@pytest.mark.parametrize("change, error, match", [
    ({"name": "classifier"}, InputError, "reverse-DNS"),
    ({"version": "1.2"}, InputError, "semantic version"),
    ({"version": "2.0.0-rc.1"}, InputError, "cannot derive a sequence"),
    ({"mean": (1.0, 2.0), "std": (1.0, 2.0)}, UsageError, "3 channels"),
    ({"mean": (1.0,)}, UsageError, "go together"),
])
def test_bad_options_are_refused(converted, tmp_path, change, error, match):
    options = {"name": NAME, "version": "1.0.0", "out": tmp_path / "out", **change}
    with pytest.raises(error, match=match):
        bundle([converted / "mobilenet.fp32.tflite"], BundleOptions(**options))
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_labels_that_fit_no_output_are_refused(converted, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    with pytest.raises(InputError, match="2 lines but no output has 2 classes"):
        bundle([converted / "mobilenet.fp32.tflite"], BundleOptions(name=NAME, version="1.0.0", out=tmp_path, labels=labels))


def test_interrupted_write_leaves_no_partial_bundle(tmp_path):
    def entries():
        yield "manifest.json", b"{}"
        raise KeyboardInterrupt  # the process is stopped half-way

    with pytest.raises(KeyboardInterrupt):
        write_zip(tmp_path / "b.zip", entries())
    assert list(tmp_path.iterdir()) == []


def test_mlpackage_with_a_symlink_is_refused(converted, tmp_path):
    from deploykit.core.errors import UnsafeInputError

    copy = tmp_path / "dist"
    shutil.copytree(converted, copy, symlinks=True)
    (copy / "mobilenet.fp32.mlpackage" / "Data" / "secret").symlink_to("/etc/passwd")
    with pytest.raises(UnsafeInputError, match="symbolic link"):
        bundle([copy / "mobilenet.fp32.mlpackage"], BundleOptions(name=NAME, version="1.0.0", out=tmp_path / "out"))
    assert not list((tmp_path / "out").glob("*.zip"))


def test_mlpackage_manifest_pointing_outside_the_package_is_refused(converted, tmp_path):
    from deploykit.core.errors import UnsafeInputError
    from deploykit.core.hashing import sha256_tree
    from deploykit.core.types import ConversionReport

    copy = tmp_path / "dist"
    shutil.copytree(converted, copy)
    package = copy / "mobilenet.fp32.mlpackage"
    manifest = json.loads((package / "Manifest.json").read_text())
    manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"] = "../../../../etc/passwd"
    (package / "Manifest.json").write_text(json.dumps(manifest))
    report = json.loads((copy / "deploykit-report.json").read_text())
    for artifact in report["artifacts"]:  # an attacker who can edit files can edit the report too
        if artifact["target"] == "coreml":
            artifact["sha256"] = sha256_tree(package)
    (copy / "deploykit-report.json").write_text(json.dumps(ConversionReport.from_json(report).to_json()))
    with pytest.raises(UnsafeInputError, match="points outside the package"):
        bundle([package], BundleOptions(name=NAME, version="1.0.0", out=tmp_path / "out"))
