"""ExecuTorch bundles: one real .pte (a torch zoo net, XNNPACK) bundled for Android and iOS next to its .tflite,
verified, tampered with, published and pulled; the Kotlin verifier and runner compiled with kotlinc."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from deploykit.bundle.builder import BundleOptions, bundle
from deploykit.bundle.client import pull
from deploykit.bundle.repository import publish
from deploykit.bundle.verify import verify_bundle
from deploykit.core.errors import IntegrityError
from tests.bundle.bundle_helpers import LABELS, NAME, rewrite_zip, serve

SHAPE = [1, 3, 32, 32]


@pytest.fixture(scope="module")
def et_converted(tmp_path_factory) -> Path:
    """A torch MobileNet-style zoo net converted to .pte (XNNPACK) and .tflite, once for all xdist workers."""
    from filelock import FileLock

    folder = tmp_path_factory.getbasetemp().parent / "bundle-executorch"
    folder.mkdir(exist_ok=True)
    dist = folder / "dist"
    with FileLock(str(folder / ".lock")):
        if not (dist / "deploykit-report.json").exists():
            import torch

            import deploykit
            from tests.zoo import torch_nets

            model = torch_nets.build("mobilenet", 0).eval()
            source = folder / "mobilenet.pt2"
            torch.export.save(torch.export.export(model, (torch.rand(*SHAPE),)), str(source))
            deploykit.convert(source, to=("executorch", "tflite"), out=dist)
    return dist


@pytest.fixture(scope="module")
def et_bundles(et_converted, keys, labels_file, tmp_path_factory) -> dict[str, Path]:
    """{"android-executorch-fp32": zip, "ios-executorch-fp32": zip, "android-fp32": zip}, signed, version 1.2.0."""
    options = BundleOptions(name=NAME, version="1.2.0", out=tmp_path_factory.mktemp("et-bundles"), labels=labels_file,
                            mean=(0.5,), std=(0.25,), sign_keys=(keys["publisher"][0],))
    built = bundle([et_converted / "mobilenet.fp32.pte", et_converted / "mobilenet.fp32.tflite"], options)
    return {f"{b.manifest['platform']}-{b.manifest['variant']}": b.path for b in built}


def _manifest(path: Path, keys) -> dict:
    return verify_bundle(path, [keys["publisher"][1]]).manifest.raw


def test_one_pte_gives_an_android_and_an_ios_bundle_with_runtime_and_min_os(et_bundles, et_converted, keys):
    assert set(et_bundles) == {"android-executorch-fp32", "ios-executorch-fp32", "android-fp32"}
    record = json.loads((et_converted / "deploykit-report.json").read_text())
    artifact = next(a for a in record["artifacts"] if a["path"] == "mobilenet.fp32.pte")
    for platform in ("android", "ios"):
        path = et_bundles[f"{platform}-executorch-fp32"]
        m = _manifest(path, keys)
        assert (m["platform"], m["runtime"], m["format"], m["model"]) == (platform, "executorch", "executorch",
                                                                           "model/model.pte")
        runtime = m["compatibility"]["runtime"]
        assert runtime["name"] == "executorch" and runtime["min_version"] == metadata.version("executorch")
        assert runtime["backend"] == artifact["quantization"]["backend"] == "xnnpack"
        assert "XnnpackBackend" in runtime["delegates"] and "delegated to XnnpackBackend" in runtime["delegation"]
        assert m["compatibility"]["min_runtime"] == runtime["min_version"]
        if platform == "android":
            assert m["compatibility"]["min_android_api"] == 23 and m["compatibility"]["min_ios"] is None
        else:
            assert m["compatibility"]["min_ios"] == "17.0" and m["compatibility"]["min_android_api"] is None
        assert m["io"]["inputs"][0]["shape"] == SHAPE and m["io"]["outputs"][0]["labels"]["count"] == len(LABELS)
        assert m["provenance"]["artifact_sha256"] == artifact["sha256"] and m["provenance"]["embedded_metadata"] == []
        with zipfile.ZipFile(path) as archive:
            pte = archive.read("model/model.pte")
            assert archive.read("assets/labels.txt").decode().split() == LABELS
        entry = next(f for f in m["files"] if f["path"] == "model/model.pte")
        # a .pte goes in as converted: its bytes are the artifact's, and the manifest lists their hash
        assert hashlib.sha256(pte).hexdigest() == entry["sha256"] == artifact["sha256"] and entry["length"] == len(pte)
    assert _manifest(et_bundles["android-fp32"], keys)["format"] == "tflite"


def test_old_manifests_stay_valid_and_an_executorch_manifest_must_say_its_runtime(et_bundles, keys):
    from deploykit.bundle.manifest import validate

    m = _manifest(et_bundles["android-executorch-fp32"], keys)
    broken = json.loads(json.dumps(m))
    del broken["compatibility"]["runtime"]
    with pytest.raises(IntegrityError, match="runtime"):
        validate(broken, "manifest", "test")
    broken = json.loads(json.dumps(m))
    broken["runtime"] = "litert"
    with pytest.raises(IntegrityError):
        validate(broken, "manifest", "test")
    validate(_manifest(et_bundles["android-fp32"], keys), "manifest", "test")  # no runtime block: still valid


def test_a_pte_delegated_to_core_ml_is_bundled_for_ios_only(et_converted, keys, tmp_path):
    import dataclasses

    from deploykit.targets import get
    from deploykit.core.types import ConversionReport

    report = ConversionReport.from_json(json.loads((et_converted / "deploykit-report.json").read_text()))
    artifact = next(a for a in report.artifacts if a.target == "executorch")
    assert [s[0] for s in get("executorch").bundle_slots(artifact)] == ["android", "ios"]
    coreml = dataclasses.replace(artifact, quantization={**artifact.quantization, "backend": "coreml"})
    assert [s[0] for s in get("executorch").bundle_slots(coreml)] == ["ios"]
    from deploykit.targets.executorch import compatibility
    from deploykit.core.errors import InputError

    with pytest.raises(InputError, match="Apple platforms only"):
        compatibility(coreml, "android", 21, {})
    assert compatibility(coreml, "ios", 21, {})["runtime"]["backend"] == "coreml"


def test_kotlin_and_swift_are_rendered_with_the_real_signature(et_bundles):
    with zipfile.ZipFile(et_bundles["android-executorch-fp32"]) as archive:
        runner = archive.read("integration/kotlin/DeployKitExecuTorch.kt").decode()
        model = archive.read("integration/kotlin/DeployKitModel.kt").decode()
        readme = archive.read("integration/README.md").decode()
    version = metadata.version("executorch")
    assert "val INPUT_SHAPE = longArrayOf(1L, 3L, 32L, 32L)" in runner
    assert "Module.load(model.absolutePath)" in runner and "EValue.from(Tensor.fromBlob(input, INPUT_SHAPE))" in runner
    assert "fun run(module: Module, input: FloatArray): FloatArray" in runner
    assert 'const val MODEL_PATH = "model/model.pte"' in model and 'const val INPUT_NAME = "x"' in model
    assert "val INPUT_SHAPE = intArrayOf(1, 3, 32, 32)" in model and 'VARIANT = "executorch-fp32"' in model
    assert f'org.pytorch:executorch-android:{version}' in readme and "Android API 23+" in readme
    with zipfile.ZipFile(et_bundles["ios-executorch-fp32"]) as archive:
        swift = archive.read("integration/swift/DeployKitModel.swift").decode()
        readme = archive.read("integration/README.md").decode()
        names = archive.namelist()
    assert "import ExecuTorch" in swift and "Module(filePath: model.path)" in swift and "import CoreML" not in swift
    assert "public static let inputShape: [Int] = [1, 3, 32, 32]  // float32" in swift
    assert "try module.forward(Tensor<Float>(input, shape: inputShape))" in swift
    assert 'public static let modelPath = "model/model.pte"' in swift and "MLModel" not in swift
    assert f"swiftpm-{version}" in readme and "iOS 17.0+" in readme and "backend_xnnpack" in readme
    assert not any(n.endswith(".kt") for n in names)
    for text in (runner, model, swift, readme):
        assert "{{" not in text


def test_verify_bundle_accepts_it_and_refuses_a_tampered_pte(et_bundles, keys, tmp_path):
    def verify(path):
        return subprocess.run([sys.executable, "-m", "deploykit.cli.app", "verify-bundle", str(path), "--trusted-key",
                               str(keys["publisher"][3])], capture_output=True, text=True, timeout=120)

    original = et_bundles["ios-executorch-fp32"]
    ok = verify(original)
    assert ok.returncode == 0, ok.stderr
    assert "ios/executorch-fp32" in ok.stdout
    with zipfile.ZipFile(original) as archive:
        pte = bytearray(archive.read("model/model.pte"))
    pte[len(pte) // 2] ^= 0x01
    tampered = rewrite_zip(original, tmp_path / "tampered.zip", replace={"model/model.pte": bytes(pte)})
    refused = verify(tampered)
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "model/model.pte" in refused.stderr


def test_pull_installs_the_pte_from_a_published_release_next_to_the_tflite(et_bundles, keys, tmp_path):
    repo = tmp_path / "repo"
    publish(list(et_bundles.values()), repo, "stable", keys["publisher"][0])
    public = keys["publisher"][1]
    with serve(repo) as url:
        android = pull(url, "stable", NAME, [public], tmp_path / "android", platform="android", variant="executorch-fp32")
        ios = pull(url, "stable", NAME, [public], tmp_path / "ios", platform="ios")
        litert = pull(url, "stable", NAME, [public], tmp_path / "litert", platform="android", variant="fp32")
    assert (android.status, android.variant, ios.status, ios.variant) == ("updated", "executorch-fp32", "updated",
                                                                          "executorch-fp32")
    for result in (android, ios):
        pte = result.path / "model" / "model.pte"
        assert pte.is_file() and (result.path / "assets" / "labels.txt").is_file()
        assert not (result.path / "model" / "model.tflite").exists()
    assert (litert.path / "model" / "model.tflite").is_file() and not (litert.path / "model" / "model.pte").exists()
    from deploykit.runners.executorch_runner import ExecutorchRunner

    # the installed program runs in the ExecuTorch runtime (in its child process) with the manifest's signature
    with ExecutorchRunner(android.path / "model" / "model.pte", input_names=["x"], output_names=["output"]) as runner:
        out = runner.infer({"x": np.random.default_rng(0).random(SHAPE, dtype=np.float32)})
    assert out["output"].shape == (1, 10)


KOTLIN_STUBS = r"""
package org.pytorch.executorch

// The signatures deploykit's template calls, as the executorch-android Javadoc gives them; bodies for the test only.
class Tensor private constructor(private val data: FloatArray, val shape: LongArray) {
    val dataAsFloatArray: FloatArray get() = data
    companion object {
        @JvmStatic fun fromBlob(data: FloatArray, shape: LongArray): Tensor = Tensor(data, shape)
    }
}

class EValue private constructor(private val tensor: Tensor) {
    fun toTensor(): Tensor = tensor
    companion object {
        @JvmStatic fun from(tensor: Tensor): EValue = EValue(tensor)
    }
}

class Module private constructor(val path: String) {
    fun forward(vararg inputs: EValue): Array<EValue> {
        val x = inputs[0].toTensor().dataAsFloatArray
        return arrayOf(EValue.from(Tensor.fromBlob(floatArrayOf(x.sum(), x.size.toFloat()), longArrayOf(1, 2))))
    }
    companion object {
        @JvmStatic fun load(path: String): Module = Module(path)
    }
}
"""

KOTLIN_MAIN = r"""
import com.deploykit.generated.BundleVerifier
import com.deploykit.generated.DeployKitExecuTorch
import java.io.File
import java.util.Base64

fun main(args: Array<String>) {
    val bundle = BundleVerifier(listOf(Base64.getDecoder().decode(args[1]))).verify(File(args[0]), null, File(args[2]))
    println("verified " + bundle.platform + "/" + bundle.variant)
    val module = DeployKitExecuTorch.load(File(args[2], "model/model.pte"))
    val input = DeployKitExecuTorch.normalize(FloatArray(3 * 32 * 32) { 0.5f })
    val out = DeployKitExecuTorch.run(module, input)
    println("ran " + out[0] + " " + out[1])
}
"""


@pytest.mark.skipif(shutil.which("kotlinc") is None or shutil.which("java") is None, reason="kotlinc or java missing")
def test_kotlin_verifier_and_runner_compile_and_accept_the_executorch_bundle(et_bundles, keys, tmp_path):
    """BundleVerifier.kt and DeployKitExecuTorch.kt as shipped, with DeployKitModelInfo's rendered constants (the
    Android-only helpers left out) and stubs of the three executorch-android classes the runner calls."""
    import base64

    with zipfile.ZipFile(et_bundles["android-executorch-fp32"]) as archive:
        (tmp_path / "BundleVerifier.kt").write_bytes(archive.read("integration/kotlin/BundleVerifier.kt"))
        (tmp_path / "DeployKitExecuTorch.kt").write_bytes(archive.read("integration/kotlin/DeployKitExecuTorch.kt"))
        model = archive.read("integration/kotlin/DeployKitModel.kt").decode()
    info = model[model.index("object DeployKitModelInfo {"):model.index("    /** A picture of any size")]
    (tmp_path / "Info.kt").write_text("package com.deploykit.generated\n\n" + info + "}\n")
    (tmp_path / "Stubs.kt").write_text(KOTLIN_STUBS)
    (tmp_path / "Main.kt").write_text(KOTLIN_MAIN)
    sources = ["BundleVerifier.kt", "DeployKitExecuTorch.kt", "Info.kt", "Stubs.kt", "Main.kt"]
    built = subprocess.run(["kotlinc", *sources, "-include-runtime", "-d", "t.jar"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=600)
    assert built.returncode == 0, built.stdout + built.stderr
    key = base64.b64encode(keys["publisher"][1].raw).decode()
    ran = subprocess.run(["java", "-jar", "t.jar", str(et_bundles["android-executorch-fp32"]), key, str(tmp_path / "x")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == "verified android/executorch-fp32"
    # normalize() applied the manifest's (x - 0.5) / 0.25 to 3072 values of 0.5: all zero; run() passed them through
    assert lines[1] == "ran 0.0 3072.0"
