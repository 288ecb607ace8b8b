"""Every metric against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from deploykit.parity import metrics as M


def test_max_and_mean_abs_error():
    ref, act = [1.0, 2.0, 3.0], [1.0, 2.5, 2.0]
    assert M.max_abs_error(ref, act) == 1.0
    assert M.mean_abs_error(ref, act) == pytest.approx(0.5)  # (0 + 0.5 + 1) / 3


def test_max_rel_error_is_relative_to_the_peak_of_the_reference():
    assert M.max_rel_error([2.0, -4.0], [2.5, -4.0]) == pytest.approx(0.125)  # 0.5 / 4
    assert M.max_rel_error([0.0, 0.0], [0.0, 0.25]) == 0.25  # all-zero reference: absolute error
    assert M.output_scale([1.0, -3.0, 2.0]) == 3.0


def test_cosine_similarity():
    assert M.cosine_similarity([1.0, 0.0], [0.0, 1.0]) == pytest.approx(0.0)
    assert M.cosine_similarity([1.0, 2.0], [2.0, 4.0]) == pytest.approx(1.0)
    assert M.cosine_similarity([1.0, 0.0], [-1.0, 0.0]) == pytest.approx(-1.0)
    assert M.cosine_similarity([3.0, 4.0], [4.0, 3.0]) == pytest.approx(24 / 25)
    assert M.cosine_similarity([0.0, 0.0], [0.0, 0.0]) == 1.0
    assert M.cosine_similarity([0.0, 0.0], [1.0, 0.0]) == 0.0


def test_snr_db():
    # signal 3^2 + 4^2 = 25, noise 1^2 = 1 -> 10 log10(25)
    assert M.snr_db([3.0, 4.0], [3.0, 5.0]) == pytest.approx(10 * math.log10(25))
    assert M.snr_db([1.0, 1.0], [1.0, 1.0]) == math.inf
    assert M.snr_db([0.0, 0.0], [0.0, 1.0]) == -math.inf
    # noise as large as the signal is 0 dB
    assert M.snr_db([1.0, -1.0], [0.0, 0.0]) == pytest.approx(0.0)


def test_topk_agreement():
    ref = np.array([[0.1, 0.9, 0.5], [3.0, 2.0, 1.0]])
    act = np.array([[0.2, 0.1, 0.9], [3.0, 1.0, 2.0]])
    assert M.topk_agreement(ref, act, 1) == 0.5  # row 0: 1 vs 2; row 1: 0 vs 0
    assert M.topk_agreement(ref, act, 2) == 0.5  # {1,2} vs {2,0}: 1/2; {0,1} vs {0,2}: 1/2
    assert M.topk_agreement(ref, act, 5) == 1.0  # k capped at 3 classes: same set
    assert M.topk_agreement(ref, ref, 1) == 1.0
    # near-ties: row 0's artifact pick (class 2, reference 0.5) is 0.4 below the best (0.9)
    assert M.topk_agreement(ref, act, 1, tie=0.39) == 0.5
    assert M.topk_agreement(ref, act, 1, tie=0.4) == 1.0
    # exact ties are never disagreements (a ReLU classifier with several zero scores)
    assert M.topk_agreement([[0.0, 0.0, 0.0, 1.0]], [[0.0, 1e-9, 0.0, 1.0]], 2) == 1.0


def test_nonfinite_counts_and_errors():
    values = np.array([1.0, np.nan, np.inf, -np.inf, np.nan], dtype=np.float32)
    assert M.nan_count(values) == 2
    assert M.inf_count(values) == 2
    assert M.nan_count(np.array([1, 2])) == 0
    # a NaN where the reference is finite is an infinite error; identical non-finite values are no error
    assert M.max_abs_error([1.0, 2.0], [1.0, np.nan]) == math.inf
    assert M.max_abs_error([np.nan, np.inf], [np.nan, np.inf]) == 0.0
    assert M.snr_db([1.0, 2.0], [1.0, np.inf]) == -math.inf


def test_shapes_must_match():
    with pytest.raises(ValueError):
        M.max_abs_error(np.zeros((2, 3)), np.zeros((3, 2)))


def test_classifier_like():
    assert M.is_classifier_like((1, 1000))
    assert not M.is_classifier_like((1, 1))
    assert not M.is_classifier_like((1, 7, 7, 64))
