"""Detector records written by hand, as ``deploykit convert --detector`` writes them (the block from
``detection.record.detector_block`` itself), beside an artifact file: what predict and bundle read."""

from __future__ import annotations

import json
from pathlib import Path

from deploykit.core.hashing import sha256_path, size_path
from deploykit.core.types import REPORT_FILENAME
from deploykit.detection.options import DetectorOptions
from deploykit.detection.presets import Head
from deploykit.detection.record import detector_block
from deploykit.image_io.spec import ImageInput

LABELS = ("cat", "dog", "bird")


def block(convention: str = "tflite-four-outputs", size=(64, 64), labels=LABELS, **options) -> dict:
    head = Head("yolov8", tuple(size), len(LABELS), 84, ("output0",), channels_first=True)
    return detector_block(head, DetectorOptions("yolov8", **options), labels, convention, "hand-written for tests")


def tflite_io(size, image: ImageInput | None, max_detections: int = 10) -> tuple[list, list]:
    height, width = size
    tensor = {"name": "images", "shape": [1, height, width, 3], "dtype": "uint8" if image else "float32",
              "layout": "NHWC"}
    if image is not None:
        tensor["image"] = {**image.to_json(), "pixels": "uint8 RGB, channels last; the graph normalizes"}
    outputs = [{"name": "detection_boxes", "shape": [1, max_detections, 4], "dtype": "float32", "layout": None},
               {"name": "detection_classes", "shape": [1, max_detections], "dtype": "float32", "layout": None},
               {"name": "detection_scores", "shape": [1, max_detections], "dtype": "float32", "layout": None},
               {"name": "num_detections", "shape": [1], "dtype": "float32", "layout": None}]
    return [tensor], outputs


def coreml_io(size, image: ImageInput | None, classes: int = len(LABELS)) -> tuple[list, list]:
    height, width = size
    tensor = {"name": "images", "shape": [1, 3, height, width], "dtype": "float32", "layout": "NCHW"}
    if image is not None:
        described = {**image.to_json(), "pixels": "Core ML image (RGB); the program normalizes"}
        del described["dtype"]
        tensor["image"] = described
    outputs = [{"name": "confidence", "shape": [None, classes], "dtype": "float32", "layout": None},
               {"name": "coordinates", "shape": [None, 4], "dtype": "float32", "layout": None}]
    return [tensor], outputs


def write_record(artifact: Path, target: str, inputs: list, outputs: list, detector: dict | None) -> Path:
    """A deploykit-report.json beside ``artifact`` listing it (its real size and sha256) with this interface."""
    entry = {"target": target, "variant": "fp32", "path": artifact.name, "size_bytes": size_path(artifact),
             "sha256": sha256_path(artifact), "inputs": inputs, "outputs": outputs,
             "converter": "hand-written", "conversion_seconds": 0.0, "op_histogram": {}}
    if detector is not None:
        entry["detector"] = detector
    report = artifact.parent / REPORT_FILENAME
    artifacts = json.loads(report.read_text())["artifacts"] if report.exists() else []
    artifacts = [a for a in artifacts if a["path"] != artifact.name] + [entry]
    report.write_text(json.dumps({"schema": "deploykit.report/1", "deploykit_version": "test", "failures": [],
                                  "inspection": None, "total_seconds": 0.0, "tool_versions": {},
                                  "source": {"sha256": "0" * 64, "framework": "torch", "format": "pt2",
                                             "name": "detector"},
                                  "artifacts": artifacts}))
    return report
