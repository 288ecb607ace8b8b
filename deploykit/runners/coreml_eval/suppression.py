"""Core ML's ``NonMaximumSuppression`` model type in numpy, as NonMaximumSuppression.proto documents it.

The documented algorithm (PickTop): discard the boxes below ``confidenceThreshold``; sort the rest by descending
confidence; take the top box and keep it, discard every remaining box within the IoU radius of it (with
``perClass``, only boxes of the same label: "the argmax of the confidence"); repeat on the boxes neither kept nor
discarded; output the kept ones. ``iouThreshold`` and ``confidenceThreshold`` may be overridden by optional
double inputs. The outputs have the inputs' types, one row per kept box; an output shape range (or fixed
shape) bounds their number ("to limit the number of output boxes"), and rows short of its minimum are zeros.

Where the documentation is silent or contradicts itself, this implementation decides, and says so:
- A box's confidence is its largest class confidence and its label the argmax of its row (the proto names the
  argmax for ``perClass``; it does not say which value is sorted and thresholded). On a tie of class scores the
  first class wins (numpy's argmax).
- "Below the threshold" is read literally: a box whose confidence equals ``confidenceThreshold`` is kept.
- The proto's sentence on the radius is inverted ("within the radius ... if their IOU score is less than this
  value"); its other sentence fixes the meaning: "Setting it to 1.0 means there will be no suppression based on
  IOU", so a box is suppressed when its IoU with a kept box is *above* ``iouThreshold`` (equal does not suppress).
- Boxes of equal confidence are taken in input order (a stable sort); the documentation does not order ties.
- When the output bound is reached, the boxes kept so far are the output: the highest-confidence ones.
- IoU is computed in float64 on the (centre x, centre y, width, height) rows turned into corners; a box with no
  area overlaps nothing (the reference's rule; Core ML's handling of degenerate boxes is not documented).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deploykit.core.errors import InputError, UnsupportedOperatorError


@dataclass(frozen=True)
class NonMaximumSuppression:
    """One NMS model of a package, as its protobuf describes it (``compile_nms``)."""

    confidence_input: str
    coordinates_input: str
    confidence_output: str
    coordinates_output: str
    iou_threshold: float
    confidence_threshold: float
    per_class: bool
    labels: tuple  # stringClassLabels or int64ClassLabels (empty when absent)
    iou_input: str | None = None  # optional double inputs overriding the thresholds
    confidence_threshold_input: str | None = None
    min_boxes: int = 0
    max_boxes: int | None = None  # None: unbounded

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(n for n in (self.confidence_input, self.coordinates_input, self.iou_input,
                                 self.confidence_threshold_input) if n)

    @property
    def optional_names(self) -> tuple[str, ...]:
        return tuple(n for n in (self.iou_input, self.confidence_threshold_input) if n)

    @property
    def output_names(self) -> tuple[str, ...]:
        return self.confidence_output, self.coordinates_output

    def run(self, feeds: dict) -> dict:
        confidence = np.asarray(feeds[self.confidence_input])
        coordinates = np.asarray(feeds[self.coordinates_input])
        if confidence.ndim != 2 or coordinates.ndim != 2 or coordinates.shape != (confidence.shape[0], 4):
            raise InputError(f"Core ML NonMaximumSuppression: confidence {confidence.shape} and coordinates "
                             f"{coordinates.shape} must be [boxes, classes] and [boxes, 4]")
        if self.labels and confidence.shape[1] != len(self.labels):
            raise InputError(f"Core ML NonMaximumSuppression: dimension 1 of the confidence ({confidence.shape[1]}) "
                             f"is not the number of class labels ({len(self.labels)})")
        iou = _threshold(feeds, self.iou_input, self.iou_threshold)
        least = _threshold(feeds, self.confidence_threshold_input, self.confidence_threshold)
        if not 0.0 <= iou <= 1.0 or least < 0.0:
            raise InputError(f"Core ML NonMaximumSuppression: iouThreshold {iou} must lie in [0, 1] and "
                             f"confidenceThreshold {least} must not be negative")
        kept = suppress(confidence, coordinates, iou, least, self.per_class, self.max_boxes)
        rows = max(len(kept), self.min_boxes)
        out_confidence = np.zeros((rows, confidence.shape[1]), confidence.dtype)
        out_coordinates = np.zeros((rows, 4), coordinates.dtype)
        out_confidence[:len(kept)], out_coordinates[:len(kept)] = confidence[kept], coordinates[kept]
        return {self.confidence_output: out_confidence, self.coordinates_output: out_coordinates}


def suppress(confidence: np.ndarray, coordinates: np.ndarray, iou_threshold: float, confidence_threshold: float,
             per_class: bool, max_boxes: int | None = None) -> np.ndarray:
    """Indices of the kept rows, in output order (descending confidence)."""
    if not len(confidence):
        return np.zeros(0, int)
    scores = confidence.max(axis=1).astype(np.float64)
    labels = confidence.argmax(axis=1)
    order = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] >= confidence_threshold]
    cx, cy, w, h = np.asarray(coordinates, np.float64).T
    corners = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    suppressed = np.zeros(len(confidence), bool)
    kept: list[int] = []
    for position, index in enumerate(order):
        if suppressed[index]:
            continue
        if max_boxes is not None and len(kept) >= max_boxes:
            break
        kept.append(index)
        rest = np.array(order[position + 1:], int)
        if per_class and len(rest):
            rest = rest[labels[rest] == labels[index]]
        if len(rest):
            suppressed[rest[_iou(corners[index], corners[rest]) > iou_threshold]] = True
    return np.array(kept, int)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    # Not shared with deploykit.detection.nms.iou on purpose: the evaluator implements Core ML's NMS from its proto on
    # its own, so a Core ML detector's box-level check compares two independent implementations.
    width = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    height = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = width * height
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _threshold(feeds: dict, name: str | None, default: float) -> float:
    if not name or name not in feeds or feeds[name] is None:
        return float(default)
    value = np.asarray(feeds[name], np.float64)
    if value.size != 1:
        raise InputError(f"Core ML NonMaximumSuppression: input {name!r} must be one double, got shape {value.shape}")
    return float(value.reshape(()))


def compile_nms(model) -> NonMaximumSuppression:
    """The ``NonMaximumSuppression`` of a ``Model`` protobuf of that type, its bounds read from its outputs."""
    nms = model.nonMaximumSuppression
    if nms.WhichOneof("SuppressionMethod") != "pickTop":
        raise UnsupportedOperatorError(f"Core ML evaluator: NonMaximumSuppression method "
                                       f"{nms.WhichOneof('SuppressionMethod')!r} (only pickTop is documented)")
    which = nms.WhichOneof("ClassLabels")
    labels = tuple(getattr(nms, which).vector) if which else ()
    outputs = {f.name: f for f in model.description.output}
    low, high = _row_bounds(outputs.get(nms.confidenceOutputFeatureName), outputs.get(nms.coordinatesOutputFeatureName))
    return NonMaximumSuppression(
        confidence_input=nms.confidenceInputFeatureName, coordinates_input=nms.coordinatesInputFeatureName,
        confidence_output=nms.confidenceOutputFeatureName, coordinates_output=nms.coordinatesOutputFeatureName,
        iou_threshold=float(nms.iouThreshold), confidence_threshold=float(nms.confidenceThreshold),
        per_class=bool(nms.pickTop.perClass), labels=labels, iou_input=nms.iouThresholdInputFeatureName or None,
        confidence_threshold_input=nms.confidenceThresholdInputFeatureName or None, min_boxes=low, max_boxes=high)


def _row_bounds(*features) -> tuple[int, int | None]:
    """(least, most) output rows from the outputs' declared shapes: a fixed shape pins both, a shape range bounds
    them (an upper bound below 0 is unbounded); nothing declared: no bound."""
    for feature in features:
        if feature is None or feature.type.WhichOneof("Type") != "multiArrayType":
            continue
        array = feature.type.multiArrayType
        if len(array.shape) == 2:
            return int(array.shape[0]), int(array.shape[0])
        if array.WhichOneof("ShapeFlexibility") == "shapeRange" and len(array.shapeRange.sizeRanges) == 2:
            rows = array.shapeRange.sizeRanges[0]
            return int(rows.lowerBound), (int(rows.upperBound) if rows.upperBound >= 0 else None)
        if array.WhichOneof("ShapeFlexibility") == "enumeratedShapes":
            raise UnsupportedOperatorError("Core ML evaluator: NonMaximumSuppression outputs with enumerated shapes "
                                           "(its validator accepts a fixed shape or a range only)")
    return 0, None
