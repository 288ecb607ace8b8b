"""Detector bundles: the manifest's ``detector`` block (the record's, minus deploykit's internals), the schema's
rules for it, the labels, and the generated helpers: DeployKitDetector.kt compiled with kotlinc and run on the
JVM next to the bundle's own verifier, its boxes in the picture's pixels checked against ``detection.frame``.

The artifacts are the session's real converted files; their records are rewritten by hand as ``convert
--detector`` writes them (``tests/detection/records.py``): the bundle reads the record, not the model's graph."""

from __future__ import annotations

import base64
import copy
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from deploykit.bundle.builder import BundleOptions, bundle
from deploykit.bundle.detector import APP_KEYS
from deploykit.bundle.manifest import validate
from deploykit.core.errors import InputError, UsageError
from deploykit.detection.frame import picture_frame
from deploykit.image_io.spec import ImageInput
from tests.bundle.bundle_helpers import NAME
from tests.detection.records import LABELS, block, coreml_io, tflite_io, write_record

LETTERBOX = ImageInput("images", resize="letterbox", fill=114)


def _detector_dist(converted: Path, folder: Path, image=LETTERBOX, labels=LABELS) -> Path:
    """The session's .tflite and .mlpackage under detector records (64x64 input, letterbox)."""
    dist = folder / "dist"
    dist.mkdir(parents=True)
    shutil.copy(converted / "mobilenet.fp32.tflite", dist / "det.fp32.tflite")
    shutil.copytree(converted / "mobilenet.fp32.mlpackage", dist / "det.fp32.mlpackage")
    write_record(dist / "det.fp32.tflite", "tflite", *tflite_io((64, 64), image), block(labels=labels))
    write_record(dist / "det.fp32.mlpackage", "coreml", *coreml_io((64, 64), image), block("vision", labels=labels))
    return dist


@pytest.fixture(scope="module")
def detector_bundles(converted, keys, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("detector-bundles")
    dist = _detector_dist(converted, folder)
    built = bundle([dist / "det.fp32.tflite", dist / "det.fp32.mlpackage"],
                   BundleOptions(name=NAME, version="2.0.0", out=folder / "out", sign_keys=(keys["publisher"][0],)))
    return {b.manifest["platform"]: b for b in built}


def _read(built, name: str) -> str:
    with zipfile.ZipFile(built.path) as archive:
        return archive.read(name).decode()


def test_the_manifest_carries_what_an_app_needs_of_the_record_block(detector_bundles):
    android, ios = detector_bundles["android"].manifest, detector_bundles["ios"].manifest
    for manifest, convention in ((android, "tflite-four-outputs"), (ios, "vision")):
        found = manifest["detector"]
        assert set(found) == set(APP_KEYS) and found["convention"] == convention
        assert found["labels"] == list(LABELS) and found["input_size"] == [64, 64] and found["classes"] == 3
        assert found["coordinates"] == "normalized to the model input (0..1)"
        # the labels name detections' classes: no output is labelled and no labels.txt beside the helpers
        assert all(t["labels"] is None for t in manifest["io"]["outputs"])
        assert not any(f["path"] == "assets/labels.txt" for f in manifest["files"])
        assert manifest["io"]["inputs"][0]["preprocessing"]["resize"] == "letterbox"
    assert android["detector"]["outputs"] == {"boxes": "detection_boxes", "classes": "detection_classes",
                                              "scores": "detection_scores", "count": "num_detections"}
    assert android["detector"]["box_format"] == "yxyx" and ios["detector"]["box_format"] == "cxcywh"
    assert "integration/kotlin/DeployKitDetector.kt" in {f["path"] for f in android["files"]}
    assert "integration/swift/DeployKitDetector.swift" in {f["path"] for f in ios["files"]}


def test_other_bundles_have_no_detector(bundles, keys):
    from deploykit.bundle.verify import verify_bundle

    for path in bundles.values():
        manifest = verify_bundle(path, [keys["publisher"][1]]).manifest.raw
        assert "detector" not in manifest
        assert not any("DeployKitDetector" in f["path"] for f in manifest["files"])
        with zipfile.ZipFile(path) as archive:
            assert "### Detections" not in archive.read("integration/README.md").decode()


@pytest.mark.parametrize("change, where", [
    (lambda d: d.update(head={"preset": "yolov8"}), "Additional properties"),
    (lambda d: d["outputs"].pop("count"), "'count' is a required property"),
    (lambda d: d.update(box_format="xyxy"), "'yxyx' was expected"),
    (lambda d: d.update(convention="onnx"), "is not one of"),
    (lambda d: d.update(score_threshold=1.5), "1.5"),
])
def test_the_schema_refuses_a_broken_block(detector_bundles, change, where):
    manifest = copy.deepcopy(detector_bundles["android"].manifest)
    validate(manifest, "manifest", "detector manifest")
    change(manifest["detector"])
    with pytest.raises(InputError, match=re.escape(where)):
        validate(manifest, "manifest", "detector manifest", error=InputError)


def test_labels_come_from_the_record_or_the_bundle_command(converted, tmp_path):
    dist = _detector_dist(converted, tmp_path, labels=None)
    labels = tmp_path / "labels.txt"
    labels.write_text("ant\nbee\nfly\n")
    options = BundleOptions(name=NAME, version="1.0.0", out=tmp_path / "out", labels=labels)
    (built,) = bundle([dist / "det.fp32.tflite"], options)
    assert built.manifest["detector"]["labels"] == ["ant", "bee", "fly"]
    labels.write_text("ant\nbee\n")
    with pytest.raises(UsageError, match="2 labels; the detector det.fp32.tflite has 3 classes"):
        bundle([dist / "det.fp32.tflite"], options)
    converted_with_labels = _detector_dist(converted, tmp_path / "again")
    labels.write_text("ant\nbee\nfly\n")
    with pytest.raises(UsageError, match="converted with other labels"):
        bundle([converted_with_labels / "det.fp32.tflite"], options)


def test_readme_shows_a_complete_call_per_platform(detector_bundles):
    kotlin_readme = _read(detector_bundles["android"], "integration/README.md")
    assert "### Detections" in kotlin_readme and "{{" not in kotlin_readme
    assert "DeployKitModelInfo.toInput(DeployKitModelInfo.prepare(bitmap))" in kotlin_readme
    assert "DeployKitDetector.detect(interpreter, input, bitmap.width, bitmap.height)" in kotlin_readme
    assert "interpreter.run(input, output)" not in kotlin_readme  # a classifier's call, not a detector's
    swift_readme = _read(detector_bundles["ios"], "integration/README.md")
    assert "let detections = try DeployKitDetector.detect(model, image: cgImage)" in swift_readme
    assert "origin bottom-left" in swift_readme and "{{" not in swift_readme


def test_swift_helper_is_rendered_with_the_block(detector_bundles):
    """No Swift toolchain here: the rendered constants are the block's and the frame arithmetic is predict's."""
    swift = _read(detector_bundles["ios"], "integration/swift/DeployKitDetector.swift")
    assert "{{" not in swift and 'labels: [String] = ["cat", "dog", "bird"]' in swift
    assert 'confidenceOutput = "confidence"' in swift and 'coordinatesOutput = "coordinates"' in swift
    assert "inputSize = CGSize(width: 64, height: 64)" in swift and "scoreThreshold: Float = 0.25" in swift
    assert "y: (1 - b.maxY) * inputSize.height" in swift  # Vision's bottom-left origin flipped
    model = _read(detector_bundles["ios"], "integration/swift/DeployKitModel.swift")
    assert 'imageResize = "letterbox"' in model and "imageFill: CGFloat = 114.0" in model


KOTLIN_STUB = """
package org.tensorflow.lite

// The two Interpreter calls DeployKitDetector makes; each output's canned values are written by a function.
class Interpreter(private val canned: Map<String, (Any) -> Unit>) {
    private val names = canned.keys.toList()
    fun getOutputIndex(opName: String): Int = names.indexOf(opName).also { require(it >= 0) { "no output $opName" } }
    fun runForMultipleInputsOutputs(inputs: Array<Any>, outputs: Map<Int, Any>) {
        require(inputs.size == 1)
        for ((index, target) in outputs) canned.getValue(names[index])(target)
    }
}
"""

KOTLIN_MAIN = """
import com.deploykit.generated.BundleVerifier
import com.deploykit.generated.DeployKitDetector
import org.tensorflow.lite.Interpreter
import java.io.File
import java.util.Base64

// Main.kt <bundle.zip> <trusted raw key, base64> <unpack dir>: verify, then read canned outputs for a 200x100 picture
@Suppress("UNCHECKED_CAST")
fun main(args: Array<String>) {
    val bundle = BundleVerifier(listOf(Base64.getDecoder().decode(args[1]))).verify(File(args[0]), null, File(args[2]))
    println("verified " + bundle.platform + "/" + bundle.variant)
    val interpreter = Interpreter(mapOf(
        "detection_boxes" to { o: Any ->
            val b = o as Array<Array<FloatArray>>
            b[0][0] = floatArrayOf(0.0f, 0.5f, 0.5f, 1.0f)
            b[0][1] = floatArrayOf(0.35f, 0.25f, 0.65f, 0.75f)
            b[0][2] = floatArrayOf(0.1f, 0.1f, 0.2f, 0.2f)
        },
        "detection_classes" to { o: Any -> (o as Array<FloatArray>)[0][0] = 2f; o[0][1] = 1f },
        "detection_scores" to { o: Any -> (o as Array<FloatArray>)[0][0] = 0.5f; o[0][1] = 0.9f; o[0][2] = 0.8f },
        "num_detections" to { o: Any -> (o as FloatArray)[0] = 2f }
    ))
    for (d in DeployKitDetector.detect(interpreter, ByteArray(0), 200, 100))
        println(String.format(java.util.Locale.ROOT, "%d %s %.4f %.4f %.4f %.4f %.4f", d.classIndex, d.label, d.score,
                              d.left, d.top, d.right, d.bottom))
}
"""


@pytest.mark.skipif(shutil.which("kotlinc") is None or shutil.which("java") is None, reason="kotlinc or java missing")
def test_kotlin_helper_compiles_and_maps_boxes_to_the_picture(detector_bundles, keys, tmp_path):
    """BundleVerifier.kt and DeployKitDetector.kt as shipped, a stub of LiteRT's Interpreter: the verifier takes
    the manifest with its detector block, and the helper's boxes are detection.frame's for the same outputs."""
    built = detector_bundles["android"]
    for name in ("BundleVerifier.kt", "DeployKitDetector.kt"):
        (tmp_path / name).write_text(_read(built, f"integration/kotlin/{name}"))
    (tmp_path / "Stub.kt").write_text(KOTLIN_STUB)
    (tmp_path / "Main.kt").write_text(KOTLIN_MAIN)
    compiled = subprocess.run(["kotlinc", "BundleVerifier.kt", "DeployKitDetector.kt", "Stub.kt", "Main.kt",
                               "-include-runtime", "-d", "t.jar"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=900)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    warnings = [line for line in compiled.stderr.splitlines() if re.search(r"DeployKitDetector\.kt:\d+:\d+: (warning|error)", line)]
    assert not warnings, "\n".join(warnings)
    key = base64.b64encode(keys["publisher"][1].raw).decode()
    ran = subprocess.run(["java", "-jar", "t.jar", str(built.path), key, str(tmp_path / "unpacked")], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0] == "verified android/fp32" and len(lines) == 3  # the count (2) cuts the third row
    frame = picture_frame(LETTERBOX, (64, 64), (200, 100))
    expected = {"dog": (1, 0.9, [0.25, 0.35, 0.75, 0.65]), "bird": (2, 0.5, [0.5, 0.0, 1.0, 0.5])}
    assert [line.split()[1] for line in lines[1:]] == ["dog", "bird"]  # best first
    for line in lines[1:]:
        index, label, score, *box = line.split()
        klass, confidence, normalized = expected[label]
        want = frame.to_picture(np.array(normalized) * 64)[0]
        assert int(index) == klass and float(score) == pytest.approx(confidence, abs=1e-4)
        np.testing.assert_allclose([float(v) for v in box], want, atol=1e-3)
    # the dog is the picture's (50, 20, 150, 80); the bird reaches into the padding above and is cut at row 0
    np.testing.assert_allclose([float(v) for v in lines[1].split()[3:]], [50, 20, 150, 80], atol=1e-3)
    np.testing.assert_allclose([float(v) for v in lines[2].split()[3:]], [100, 0, 200, 50], atol=1e-3)
