"""An artifact's detections read back from its outputs, in the reference's terms (x1 y1 x2 y2 input pixels).

The output conventions deploykit writes: TFLite's four outputs, which Task Library, ML Kit and MediaPipe
read (boxes ``[1, M, 4]`` as normalized ymin, xmin, ymax, xmax; classes and scores ``[1, M]``; the count
``[1]``), and Core ML's two, which Vision turns into ``VNRecognizedObjectObservation``s (``confidence``
``[K, C]``, ``coordinates`` ``[K, 4]`` as normalized centre x, centre y, width, height).
"""

from __future__ import annotations

import numpy as np

from deploykit.detection.nms import Detections

TFLITE_OUTPUTS = ("detection_boxes", "detection_classes", "detection_scores", "num_detections")
COREML_OUTPUTS = ("confidence", "coordinates")


def read_detections(outputs: dict, input_size: tuple[int, int]) -> Detections:
    """``outputs``: one run's outputs by name (either convention)."""
    height, width = input_size
    if all(name in outputs for name in COREML_OUTPUTS):
        confidence = np.asarray(outputs["confidence"], np.float64).reshape(-1, np.shape(outputs["confidence"])[-1])
        cx, cy, w, h = np.asarray(outputs["coordinates"], np.float64).reshape(-1, 4).T
        boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * [width, height, width, height]
        order = np.argsort(-confidence.max(-1), kind="stable") if len(confidence) else np.zeros(0, int)
        return Detections(boxes[order], confidence.argmax(-1)[order].astype(int) if len(confidence) else np.zeros(0, int),
                          confidence.max(-1)[order] if len(confidence) else np.zeros(0))
    missing = [name for name in TFLITE_OUTPUTS if name not in outputs]
    if missing:
        raise KeyError(f"no detector outputs: {', '.join(missing)} missing from {', '.join(outputs)}")
    count = int(round(float(np.asarray(outputs["num_detections"]).reshape(-1)[0])))
    boxes = np.asarray(outputs["detection_boxes"], np.float64).reshape(-1, 4)[:count]
    y1, x1, y2, x2 = boxes.T
    return Detections(np.stack([x1 * width, y1 * height, x2 * width, y2 * height], -1),
                      np.asarray(outputs["detection_classes"]).reshape(-1)[:count].round().astype(int),
                      np.asarray(outputs["detection_scores"], np.float64).reshape(-1)[:count])
