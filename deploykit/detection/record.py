"""The ``detector`` block of an artifact's record and of a bundle's manifest: what an app needs to read the
detections (which outputs, how a box is written, in which frame) without knowing the model."""

from __future__ import annotations

from deploykit.detection.options import DetectorOptions
from deploykit.detection.outputs import COREML_OUTPUTS, TFLITE_OUTPUTS
from deploykit.detection.presets import Head

CONVENTIONS = {
    # Task Library / ML Kit / MediaPipe's four outputs
    "tflite-four-outputs": {"outputs": dict(zip(("boxes", "classes", "scores", "count"), TFLITE_OUTPUTS)),
                            "box_format": "yxyx"},
    # Vision's VNRecognizedObjectObservation (Apple's and Create ML's object detectors)
    "vision": {"outputs": dict(zip(("confidence", "coordinates"), COREML_OUTPUTS)), "box_format": "cxcywh"},
}


def detector_block(head: Head, options: DetectorOptions, labels, convention: str, postprocess: str) -> dict:
    """``postprocess``: how the artifact computes it (which ops), for the record."""
    chosen = CONVENTIONS[convention]
    return {**options.to_json(), "convention": convention, "outputs": dict(chosen["outputs"]),
            "box_format": chosen["box_format"], "coordinates": "normalized to the model input (0..1)",
            "input_size": list(head.input_size), "classes": head.classes, "labels": list(labels) if labels else None,
            "head": head.to_json(), "postprocess": postprocess}
