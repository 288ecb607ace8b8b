"""Greedy non-maximum suppression in numpy: the reference the artifacts' NMS is checked against.

One detection per candidate box, of its best class (ultralytics' default, and what LiteRT's
NON_MAX_SUPPRESSION_V5 and Core ML's NonMaximumSuppression model compute): a box is a detection when that
score is above the threshold and no kept box of the same class (any class with ``class_agnostic``) overlaps it
by more than ``iou``; boxes are taken by score, ties by candidate order, at most ``max_detections``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deploykit.detection.decode import Candidates
from deploykit.detection.options import DetectorOptions


@dataclass(frozen=True)
class Detections:
    boxes: np.ndarray  # [M, 4] x1 y1 x2 y2 in input pixels
    classes: np.ndarray  # [M] int
    scores: np.ndarray  # [M]

    def __len__(self) -> int:
        return len(self.scores)

    def to_json(self, labels=None) -> list[dict]:
        return [{"class": int(c), **({"label": labels[int(c)]} if labels and int(c) < len(labels) else {}),
                 "score": round(float(s), 4), "box": [round(float(v), 2) for v in b]}
                for b, c, s in zip(self.boxes, self.classes, self.scores)]


def suppress(candidates: Candidates, options: DetectorOptions) -> Detections:
    best = candidates.scores.argmax(-1) if candidates.scores.size else np.zeros(0, int)
    confidence = candidates.scores.max(-1) if candidates.scores.size else np.zeros(0)
    order = [int(i) for i in np.argsort(-confidence, kind="stable") if confidence[i] > options.score_threshold]
    boxes = candidates.boxes
    kept: list[int] = []
    for index in order:
        if kept:
            others = np.array(kept)
            rivals = others if options.class_agnostic else others[best[others] == best[index]]
            if len(rivals) and float(iou(boxes[index], boxes[rivals]).max()) > options.iou:
                continue
        kept.append(index)
        if len(kept) == options.max_detections:
            break
    chosen = np.array(kept, int)
    return Detections(boxes[chosen].reshape(-1, 4), best[chosen].astype(int), confidence[chosen])


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one x1 y1 x2 y2 box with each of ``boxes`` (a box with no area overlaps nothing)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = width * height
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
