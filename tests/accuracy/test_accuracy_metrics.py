"""bench/accuracy's pieces on hand-made data: greedy CTC decoding, the edit distance and the two OCR metrics,
rapid_layout's post-processing and box agreement, and that rendering gives the same pixels twice."""

from __future__ import annotations

import numpy as np
import pytest

from bench.accuracy import detector, ocr

CLASSES = ("blank", "a", "b", "c", " ")


def probs(indices, classes=len(CLASSES)) -> np.ndarray:
    """One-hot-ish probabilities (time x classes) whose argmax per step is ``indices``."""
    out = np.full((len(indices), classes), 0.01, dtype=np.float32)
    out[np.arange(len(indices)), indices] = 0.9
    return out


def test_ctc_greedy_collapses_repeats_and_drops_blanks():
    # a a _ a b b _ _ c -> "aabc": a blank between two a's keeps both, repeats without one collapse
    assert ocr.ctc_greedy(probs([1, 1, 0, 1, 2, 2, 0, 0, 3]), CLASSES) == ["aabc"]
    assert ocr.ctc_greedy(probs([0, 0, 0]), CLASSES) == [""]
    batch = np.stack([probs([1, 2, 3]), probs([3, 3, 3])])
    assert ocr.ctc_greedy(batch, CLASSES) == ["abc", "c"]


def test_ctc_greedy_strips_margin_spaces_only():
    assert ocr.ctc_greedy(probs([4, 1, 0, 4, 2, 4, 4]), CLASSES) == ["a b"]


def test_edit_distance():
    assert ocr.edit_distance("kitten", "sitting") == 3
    assert ocr.edit_distance("", "abc") == 3
    assert ocr.edit_distance("abc", "") == 3
    assert ocr.edit_distance("flaw", "lawn") == 2
    assert ocr.edit_distance("same", "same") == 0


def test_metrics_sum_over_lines():
    m = ocr.metrics(["abc", "abd", ""], ["abc", "abc", "xy"])
    assert m["edit_distance"] == 0 + 1 + 2
    assert m["characters"] == 8
    assert m["char_accuracy"] == pytest.approx(1 - 3 / 8)
    assert m["line_accuracy"] == pytest.approx(1 / 3)
    assert ocr.metrics(["abcdef"], ["a"])["char_accuracy"] == pytest.approx(-4.0)  # insertions cost too
    with pytest.raises(ValueError):
        ocr.metrics(["a"], ["a", "b"])


def test_resize_bilinear_matches_opencv_mapping():
    # 2x upsampling of [0, 100]: OpenCV's centres give 0, 25, 75, 100 (edges clamped)
    row = np.array([[[0], [100]]], dtype=np.uint8)
    assert ocr.resize_bilinear(row, 1, 4)[0, :, 0].tolist() == [0, 25, 75, 100]
    # 2x downsampling averages pairs
    row = np.array([[[0], [10], [20], [30]]], dtype=np.uint8)
    assert ocr.resize_bilinear(row, 1, 2)[0, :, 0].tolist() == [5, 25]


def test_preprocess_is_rapidocrs_normalisation_and_padding():
    white = np.full((24, 48, 3), 255, dtype=np.uint8)  # aspect 2: 96 of 320 columns after the resize to 48
    x = ocr.preprocess(white)
    assert x.shape == (1, 3, 48, 320) and x.dtype == np.float32
    assert np.all(x[..., :96] == 1.0) and np.all(x[..., 96:] == 0.0)


def test_rendering_is_deterministic():
    first = [ocr.render_line(i, script="latin") for i in range(4)]
    again = [ocr.render_line(i, script="latin") for i in range(4)]
    assert ocr.fingerprint(first) == ocr.fingerprint(again)
    assert [line.text for line in first] == [line.text for line in again]
    assert len({line.text for line in first}) > 1  # different lines, not one line four times
    for line in first:
        h, w = line.image.shape[:2]
        assert w * ocr.HEIGHT <= ocr.WIDTH * h  # fits the 48 x 320 canvas without squeezing
        assert line.tensor.shape == (1, 3, 48, 320)
        assert line.tensor.min() >= -1.0 and line.tensor.max() <= 1.0
    assert not np.array_equal(ocr.render_line(0, script="latin", seed=1).image, first[0].image)


def test_layout_postprocess_decodes_one_box():
    # one confident cell of stride 8 at row 2, column 3 (centre 28, 20) of class 4, distances 2 bins each side
    cells = [(800 // s + (800 % s > 0)) * (608 // s + (608 % s > 0)) for s in detector.STRIDES]
    outputs = [np.zeros((1, n, 10), dtype=np.float32) for n in cells]
    outputs += [np.zeros((1, n, 32), dtype=np.float32) for n in cells]
    cell = 2 * (608 // 8) + 3
    outputs[0][0, cell, 4] = 0.9
    distances = np.full((4, 8), -30.0, dtype=np.float32)
    distances[:, 2] = 30.0  # softmax puts all weight on bin 2: 2 x stride 8 = 16 pixels
    outputs[4][0, cell] = distances.ravel()
    found = detector.postprocess(outputs)
    assert found.shape == (1, 6)
    assert found[0, 0] == 4 and found[0, 1] == pytest.approx(0.9)
    assert found[0, 2:].tolist() == pytest.approx([28 - 16, 20 - 16, 28 + 16, 20 + 16])


def test_agreement_matches_by_class_and_iou():
    reference = [np.array([[0, 0.9, 0, 0, 10, 10], [1, 0.8, 20, 20, 30, 30]], dtype=float)]
    same = detector.agreement(reference, reference)
    assert (same["precision"], same["recall"], same["f1"]) == (1.0, 1.0, 1.0)
    # a shifted box (IoU 0.68), a box of the wrong class, an extra box
    variant = [np.array([[0, 0.9, 1, 1, 11, 11], [2, 0.8, 20, 20, 30, 30], [0, 0.6, 50, 50, 60, 60]], dtype=float)]
    got = detector.agreement(variant, reference)
    assert got["matched"] == 1
    assert got["precision"] == pytest.approx(1 / 3) and got["recall"] == pytest.approx(1 / 2)
    assert got["f1"] == pytest.approx(0.4)
    # a box far off (IoU < 0.5) does not match
    assert detector.agreement([np.array([[0, 0.9, 6, 6, 16, 16]])], [reference[0][:1]])["matched"] == 0
