"""The numpy reference of each preset's decode: raw head outputs -> candidate boxes and their class scores.

Boxes come out as (x1, y1, x2, y2) in the model input's pixels, scores as [candidates, classes]; ``nms.suppress``
turns them into detections. Each decode is the one the model's own project runs (ultralytics, YOLOX's
``demo_postprocess``, PaddleDetection's PicoDet post-process as rapid-layout ships it), written once here so the
artifacts' decodes (``tflite_postprocess``, ``coreml_postprocess``) have one thing to agree with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deploykit.core.errors import InputError
from deploykit.detection.presets import Head

PROBABILITY_SLACK = 1e-3  # scores this far outside [0, 1] are still rounding, not logits


@dataclass(frozen=True)
class Candidates:
    boxes: np.ndarray  # [N, 4] float64, x1 y1 x2 y2 in input pixels
    scores: np.ndarray  # [N, C] float64, probabilities


def decode(head: Head, outputs: dict) -> Candidates:
    """``outputs``: the source's raw outputs for one image (name -> array with a batch of 1)."""
    found = [np.asarray(outputs[name], np.float64)[0] for name in head.outputs]
    boxes, scores = {"yolov8": _yolov8, "yolox": _yolox, "picodet": _picodet}.get(head.preset, _boxes_scores)(head, found)
    check_probabilities(head, scores)
    return Candidates(boxes, scores)


def check_probabilities(head: Head, scores: np.ndarray) -> None:
    low, high = (float(scores.min()), float(scores.max())) if scores.size else (0.0, 0.0)
    if low < -PROBABILITY_SLACK or high > 1 + PROBABILITY_SLACK:
        raise InputError(f"--detector {head.preset}: the score output holds values from {low:.3g} to {high:.3g}, "
                         "not probabilities in [0, 1]",
                         hint="the head's scores must have their sigmoid / softmax applied (export the model with it); "
                              "a threshold on logits would mean something else")


def corners(cx, cy, w, h) -> np.ndarray:
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def _yolov8(head: Head, found):
    table = found[0] if head.channels_first else found[0].T  # [4 + C, N]
    return corners(*table[:4]), table[4:].T


def _yolox(head: Head, found):
    table = found[0]  # [N, 5 + C]
    grid, stride = grid_cells(head, offset=0.0)
    cx, cy = (table[:, 0] + grid[:, 0]) * stride, (table[:, 1] + grid[:, 1]) * stride
    w, h = np.exp(table[:, 2]) * stride, np.exp(table[:, 3]) * stride
    return corners(cx, cy, w, h), table[:, 4:5] * table[:, 5:]


def _picodet(head: Head, found):
    levels = len(head.strides)
    scores, distances = found[:levels], found[levels:]
    centre, stride = grid_cells(head, offset=0.5)
    bins = np.concatenate([d.reshape(-1, 4, head.reg_max + 1) for d in distances])
    weights = np.exp(bins - bins.max(-1, keepdims=True))
    expected = (weights / weights.sum(-1, keepdims=True) * np.arange(head.reg_max + 1)).sum(-1) * stride[:, None]
    x, y = centre[:, 0] * stride, centre[:, 1] * stride
    boxes = np.stack([x - expected[:, 0], y - expected[:, 1], x + expected[:, 2], y + expected[:, 3]], axis=-1)
    return boxes, np.concatenate(scores)


def _boxes_scores(head: Head, found):
    boxes, scores = found
    a, b, c, d = boxes.T
    if head.box_format == "yxyx":
        a, b, c, d = b, a, d, c
    if head.box_format == "xywh":
        c, d = a + c, b + d
    if head.box_format == "cxcywh":
        a, b, c, d = corners(a, b, c, d).T
    out = np.stack([a, b, c, d], axis=-1)
    if head.normalized:
        height, width = head.input_size
        out = out * np.array([width, height, width, height], np.float64)
    return out, scores


def grid_cells(head: Head, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate's grid cell (x, y) + ``offset`` and its stride, level by level, rows outer (YOLOX, PicoDet)."""
    cells, strides = [], []
    for (rows, cols), stride in zip(head.level_sizes(), head.strides):
        xs, ys = np.meshgrid(np.arange(cols), np.arange(rows))
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=-1) + offset)
        strides.append(np.full(rows * cols, float(stride)))
    return np.concatenate(cells).astype(np.float64), np.concatenate(strides)
