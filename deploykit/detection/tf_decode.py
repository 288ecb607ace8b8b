"""Each preset's decode and the suppression, in TensorFlow ops that TFLite's builtin set runs: the post-process
``tflite_postprocess`` converts and appends to an artifact.

Line for line the numpy reference (``decode``, ``nms``), in float32: the same grids (``decode.grid_cells``, as
constants), the same box arithmetic, one detection per box of its best class. Suppression is the builtin
NON_MAX_SUPPRESSION_V5 (greedy by score, keeps a box scored above the threshold): class-aware by moving each
class's boxes to a region of their own, so boxes of two classes never overlap. The outputs are TFLite's four
detection outputs (``outputs.TFLITE_OUTPUTS``), padded to ``max_detections`` with zeros.
"""

from __future__ import annotations

import numpy as np

from deploykit.detection.decode import grid_cells
from deploykit.detection.options import DetectorOptions
from deploykit.detection.presets import Head


def detections(head: Head, options: DetectorOptions, found: list) -> dict:
    """``found``: the head outputs in the source's layout, batch of 1, in ``head.outputs`` order -> the four outputs."""
    boxes, scores = candidates(head, [x[0] for x in found])
    return suppress(head, options, boxes, scores)


def candidates(head: Head, found: list):
    """(boxes [N, 4] x1 y1 x2 y2 in input pixels, scores [N, C]), as ``decode.decode`` computes them."""
    return {"yolov8": _yolov8, "yolox": _yolox, "picodet": _picodet}.get(head.preset, _boxes_scores)(head, found)


def suppress(head: Head, options: DetectorOptions, boxes, scores) -> dict:
    import tensorflow as tf

    confidence = tf.reduce_max(scores, axis=-1)
    best = tf.argmax(scores, axis=-1, output_type=tf.int32)
    count = options.max_detections
    # The kernel suppresses at IoU >= its threshold, the reference above ``iou``: the next float32 up agrees. Not
    # above 1: a kept box comes back to the kernel and is suppressed by itself (IoU 1), else it is kept again.
    iou = min(float(np.nextafter(np.float32(options.iou), np.float32(2))), 1.0)
    chosen, _, valid = tf.raw_ops.NonMaxSuppressionV5(
        boxes=_as_suppressed(boxes, best, confidence, options), scores=confidence, max_output_size=count,
        iou_threshold=iou, score_threshold=float(options.score_threshold), soft_nms_sigma=0.0,
        pad_to_max_output_size=True)
    kept = tf.cast(tf.range(count) < valid, tf.float32)  # padding rows are zeros, as TFLite's own detectors write
    height, width = head.input_size
    corners = tf.gather(tf.gather(boxes, chosen), [1, 0, 3, 2], axis=1)  # ymin xmin ymax xmax
    normalized = corners * np.array([1 / height, 1 / width, 1 / height, 1 / width], np.float32)
    return {"detection_boxes": (normalized * kept[:, None])[None],
            "detection_classes": (tf.cast(tf.gather(best, chosen), tf.float32) * kept)[None],
            "detection_scores": (tf.gather(confidence, chosen) * kept)[None],
            "num_detections": tf.reshape(tf.cast(valid, tf.float32), [1])}


def _as_suppressed(boxes, best, confidence, options: DetectorOptions):
    """The boxes NON_MAX_SUPPRESSION_V5 is given so that it suppresses what the reference does.

    Class-aware: each class's boxes shifted to a region of their own (``_classes_apart``). A box without area
    (x2 <= x1 or y2 <= y1) overlaps nothing in the reference; the kernel would measure an inverted box corner to
    corner, and it keeps a box of no area again and again (a kept box comes back to it and is only dropped by
    overlapping itself). So each such box becomes a unit box of its own, past all the others: it overlaps only
    itself."""
    import tensorflow as tf

    live = (confidence > options.score_threshold)[:, None]
    apart = boxes if options.class_agnostic else _classes_apart(boxes, best, live)
    flat = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    past = tf.maximum(tf.reduce_max(tf.where(live, apart, tf.float32.min)), 0.0) + 1.0
    spot = past + 2.0 * np.arange(boxes.shape[0], dtype=np.float32)
    alone = tf.stack([spot, spot, spot + 1.0, spot + 1.0], axis=-1)
    return tf.where(flat[:, None], alone, apart)


def _classes_apart(boxes, best, live):
    """``boxes`` shifted by class index x (the extent of the boxes NMS considers + 1): a box overlaps only boxes
    of its own class, and the suppression of each class is that of the reference. The extent is taken over the
    boxes above the threshold only, so that a far-out box NMS never looks at does not make the shift, and with
    it the float32 rounding of the shifted coordinates, larger."""
    import tensorflow as tf

    high = tf.reduce_max(tf.where(live, boxes, tf.float32.min))
    low = tf.reduce_min(tf.where(live, boxes, tf.float32.max))
    extent = tf.maximum(high - low, 0.0) + 1.0
    return boxes + (tf.cast(best, tf.float32) * extent)[:, None]


def _corners(cx, cy, w, h):
    import tensorflow as tf

    return tf.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def _yolov8(head: Head, found):
    import tensorflow as tf

    table = found[0] if head.channels_first else tf.transpose(found[0])  # [4 + C, N]
    return _corners(table[0], table[1], table[2], table[3]), tf.transpose(table[4:])


def _yolox(head: Head, found):
    import tensorflow as tf

    table = found[0]  # [N, 5 + C]
    grid, stride = (a.astype(np.float32) for a in grid_cells(head, offset=0.0))
    cx, cy = (table[:, 0] + grid[:, 0]) * stride, (table[:, 1] + grid[:, 1]) * stride
    w, h = tf.exp(table[:, 2]) * stride, tf.exp(table[:, 3]) * stride
    return _corners(cx, cy, w, h), table[:, 4:5] * table[:, 5:]


def _picodet(head: Head, found):
    import tensorflow as tf

    levels = len(head.strides)
    bins = head.reg_max + 1
    centre, stride = (a.astype(np.float32) for a in grid_cells(head, offset=0.5))
    distances = tf.concat([tf.reshape(d, [-1, 4, bins]) for d in found[levels:]], axis=0)
    expected = tf.reduce_sum(tf.nn.softmax(distances, axis=-1) * np.arange(bins, dtype=np.float32), axis=-1)
    expected = expected * stride[:, None]
    x, y = centre[:, 0] * stride, centre[:, 1] * stride
    boxes = tf.stack([x - expected[:, 0], y - expected[:, 1], x + expected[:, 2], y + expected[:, 3]], axis=-1)
    return boxes, tf.concat(found[:levels], axis=0)


def _boxes_scores(head: Head, found):
    import tensorflow as tf

    boxes, scores = found
    a, b, c, d = (boxes[:, i] for i in range(4))
    if head.box_format == "yxyx":
        a, b, c, d = b, a, d, c
    if head.box_format == "xywh":
        c, d = a + c, b + d
    if head.box_format == "cxcywh":
        return _scaled(head, _corners(a, b, c, d)), scores
    return _scaled(head, tf.stack([a, b, c, d], axis=-1)), scores


def _scaled(head: Head, boxes):
    if not head.normalized:
        return boxes
    height, width = head.input_size
    return boxes * np.array([width, height, width, height], np.float32)
