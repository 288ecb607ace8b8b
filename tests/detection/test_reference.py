"""The numpy reference every detector artifact is checked against: presets fitted to real head layouts, each
preset's decode on known values, the suppression's rules, and the box matching's verdicts and excuses."""

from __future__ import annotations

import numpy as np
import pytest

from deploykit.core.errors import InputError, UsageError
from deploykit.detection.decode import Candidates, decode
from deploykit.detection.match import match, tolerance_for
from deploykit.detection.nms import Detections, iou, suppress
from deploykit.detection.options import DetectorOptions
from deploykit.detection.presets import Head, fit, input_size


def test_presets_fit_the_corpus_detectors_output_shapes():
    yolov8 = fit(DetectorOptions("yolov8"), (320, 320), {"output0": (1, 22, 2100)})
    assert (yolov8.classes, yolov8.candidates, yolov8.channels_first) == (18, 2100, True)
    yolox = fit(DetectorOptions("yolox"), (416, 416), {"output": (1, 3549, 6)})
    assert (yolox.classes, yolox.strides) == (1, (8, 16, 32))
    shapes = {f"s{i}": (1, n, 10) for i, n in enumerate((7600, 1900, 475, 130))}
    shapes.update({f"b{i}": (1, n, 32) for i, n in enumerate((7600, 1900, 475, 130))})
    picodet = fit(DetectorOptions("picodet"), (800, 608), shapes)
    assert (picodet.classes, picodet.strides, picodet.reg_max, picodet.candidates) == (10, (8, 16, 32, 64), 7, 10105)
    assert picodet.outputs == ("s0", "s1", "s2", "s3", "b0", "b1", "b2", "b3")
    assert Head.from_json(picodet.to_json()) == picodet


def test_a_preset_that_does_not_fit_names_what_did_not_fit():
    with pytest.raises(UsageError, match=r"yolox does not fit.*output0 \[1, 22, 2100\]"):
        fit(DetectorOptions("yolox"), (320, 320), {"output0": (1, 22, 2100)})
    with pytest.raises(UsageError, match="already suppresses.*NonMaxSuppression"):
        fit(DetectorOptions("yolov8"), (320, 320), {"output0": (1, 22, 2100)}, {"Conv", "NonMaxSuppression"})
    with pytest.raises(UsageError, match="already detections"):
        fit(DetectorOptions("yolov8"), (320, 320), {"boxes": (1, 100, 4), "classes": (1, 100), "scores": (1, 100),
                                                    "count": (1,)})
    with pytest.raises(UsageError, match="--scores-output 'nope' is not an output"):
        fit(DetectorOptions("boxes-scores", boxes_output="b", scores_output="nope"), (64, 64), {"b": (1, 5, 4)})
    with pytest.raises(UsageError, match="needs the outputs named"):
        DetectorOptions("boxes-scores")
    with pytest.raises(UsageError, match="fixed input size"):
        input_size((1, 3, -1, -1))
    assert input_size((1, 3, 800, 608)) == (800, 608) and input_size((1, 416, 320, 3)) == (416, 320)


def test_yolox_decode_puts_each_cell_on_its_stride_grid():
    head = fit(DetectorOptions("yolox"), (64, 64), {"out": (1, 64 + 16 + 4, 6)})
    raw = np.zeros((1, 84, 6))
    raw[0, 9] = [0.5, 0.25, np.log(2.0), 0.0, 0.8, 0.5]  # stride 8, row 1, column 1
    raw[0, 64 + 5] = [0.0, 0.0, 0.0, 0.0, 0.9, 1.0]  # stride 16, row 1, column 1
    found = decode(head, {"out": raw})
    cx, cy, w, h = 1.5 * 8, 1.25 * 8, 2 * 8, 1 * 8
    np.testing.assert_allclose(found.boxes[9], [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])
    np.testing.assert_allclose(found.boxes[69], [16 - 8, 16 - 8, 16 + 8, 16 + 8])
    assert found.scores[9, 0] == pytest.approx(0.4) and found.scores[69, 0] == pytest.approx(0.9)


def test_picodet_decode_reads_distance_distributions():
    head = fit(DetectorOptions("picodet"), (16, 16), {"s": (1, 4, 2), "b": (1, 4, 32)})
    bins = np.full((1, 4, 4, 8), -50.0)
    bins[0, :, 0, 2] = bins[0, :, 1, 1] = bins[0, :, 2, 3] = bins[0, :, 3, 0] = 50.0  # l=2, t=1, r=3, b=0 bins
    found = decode(head, {"s": np.full((1, 4, 2), 0.5), "b": bins.reshape(1, 4, 32)})
    x, y = 0.5 * 8, 0.5 * 8  # the first cell's centre at stride 8
    np.testing.assert_allclose(found.boxes[0], [x - 16, y - 8, x + 24, y], atol=1e-9)


def test_scores_outside_zero_one_are_refused_as_logits():
    head = fit(DetectorOptions("yolov8"), (32, 32), {"o": (1, 6, 10)})
    raw = np.zeros((1, 6, 10))
    raw[0, 4:] = 3.0
    with pytest.raises(InputError, match="not probabilities"):
        decode(head, {"o": raw})


def _boxes(*rows):
    return np.array(rows, np.float64)


def test_suppression_is_per_class_greedy_strict_and_capped():
    boxes = _boxes([0, 0, 10, 10], [1, 0, 11, 10], [0, 0, 10, 10], [50, 50, 60, 60], [70, 70, 80, 80])
    scores = np.array([[0.9, 0.0], [0.8, 0.0], [0.0, 0.7], [0.25, 0.0], [0.3, 0.0]])
    found = suppress(Candidates(boxes, scores), DetectorOptions("yolov8", iou=0.5, score_threshold=0.25))
    assert found.classes.tolist() == [0, 1, 0] and found.scores.tolist() == [0.9, 0.7, 0.3]  # 0.25 is not above
    agnostic = suppress(Candidates(boxes, scores), DetectorOptions("yolov8", iou=0.5, class_agnostic=True))
    assert agnostic.scores.tolist() == [0.9, 0.3]
    capped = suppress(Candidates(boxes, scores), DetectorOptions("yolov8", iou=0.5, max_detections=2))
    assert capped.scores.tolist() == [0.9, 0.7]
    assert iou(boxes[0], boxes[1:2])[0] == pytest.approx(90 / 110)


def test_matching_passes_equal_boxes_fails_moved_ones_and_excuses_threshold_and_ties():
    options = DetectorOptions("yolov8", iou=0.5, score_threshold=0.25)
    reference = Detections(_boxes([0, 0, 10, 10], [20, 20, 30, 30]), np.array([0, 1]), np.array([0.9, 0.6]))
    candidates = Candidates(_boxes([0, 0, 10, 10], [20, 20, 30, 30], [2, 0, 12, 10]),
                            np.array([[0.9, 0], [0, 0.6], [0.895, 0]]))
    fp32 = tolerance_for("fp32")
    same = match(reference, Detections(reference.boxes + 0.01, reference.classes, reference.scores + 1e-4),
                 candidates, options, fp32)
    assert same.passed and same.matched == 2 and same.min_iou > 0.99
    moved = match(reference, Detections(_boxes([0, 0, 10, 10], [22, 22, 32, 32]), reference.classes,
                                        reference.scores), candidates, options, fp32, labels=["cat", "dog"])
    assert moved.failures == ("missing dog at 0.600", "extra dog at 0.600")  # IoU 0.47: another object
    shifted = match(reference, Detections(_boxes([0, 0, 10, 10], [20.5, 20.5, 30.5, 30.5]), reference.classes,
                                          reference.scores), candidates, options, fp32, labels=["cat", "dog"])
    assert shifted.failures == ("dog at 0.600: IoU 0.8223 (min 0.99), score error 0.0000 (max 0.002)",)
    # the artifact kept the near-equal overlapping candidate instead of the reference's: a tie, excused
    tie = match(reference, Detections(_boxes([2, 0, 12, 10], [20, 20, 30, 30]), reference.classes,
                                      np.array([0.8995, 0.6])), candidates, options, tolerance_for("fp16"))
    assert tie.passed and tie.excused
    near_threshold = Detections(_boxes([0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]), np.array([0, 1, 0]),
                                np.array([0.9, 0.6, 0.2505]))
    extra = match(reference, near_threshold, candidates, options, fp32)
    assert extra.passed and extra.extra == 1 and "threshold" in extra.excused[0]
    missing = match(reference, Detections(reference.boxes[:1], reference.classes[:1], reference.scores[:1]),
                    candidates, options, fp32)
    assert not missing.passed and missing.missing == 1
