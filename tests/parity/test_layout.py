"""Binding source tensors to artifact tensors across names, positions and layouts."""

from __future__ import annotations

import numpy as np

from deploykit.core.types import TensorSpec
from deploykit.parity.layout import bind


def test_same_name_same_shape():
    (b,) = bind([TensorSpec("x", (1, 3, 8, 8), layout="NCHW")], [TensorSpec("x", (1, 3, 8, 8))])
    assert b.artifact == "x" and b.order is None and b.problem is None


def test_nchw_source_nhwc_artifact_round_trip():
    (b,) = bind([TensorSpec("x", (1, 3, 8, 6), layout="NCHW")], [TensorSpec("x", (1, 8, 6, 3))])
    assert b.order == (0, 2, 3, 1)
    value = np.arange(144, dtype=np.float32).reshape(1, 3, 8, 6)
    assert b.to_artifact(value).shape == (1, 8, 6, 3)
    assert np.array_equal(b.to_source(b.to_artifact(value)), value)


def test_rank3_and_rank5_channel_moves():
    (b3,) = bind([TensorSpec("s", (1, 4, 10))], [TensorSpec("s", (1, 10, 4))])
    assert b3.order == (0, 2, 1)
    (b5,) = bind([TensorSpec("v", (1, 2, 3, 4, 5))], [TensorSpec("v", (1, 3, 4, 5, 2))])
    assert b5.order == (0, 2, 3, 4, 1)


def test_by_position_when_names_differ_and_recorded_layout_wins():
    sources = [TensorSpec("image", (1, 3, 3, 3), layout="NCHW"), TensorSpec("mask", (1, 5))]
    artifacts = [TensorSpec("serving_image", (1, 3, 3, 3)), TensorSpec("serving_mask", (1, 5))]
    plain = bind(sources, artifacts)
    assert [b.artifact for b in plain] == ["serving_image", "serving_mask"] and plain[0].order is None
    # 1x3x3x3 reads the same in both layouts: deploykit-report.json settles it
    recorded = bind(sources, artifacts, {"serving_image": "NHWC"})
    assert recorded[0].order == (0, 2, 3, 1)


def test_problems_are_reported():
    (missing,) = bind([TensorSpec("a", (1, 2))], [])
    assert missing.artifact is None and "no tensor" in missing.problem
    (wrong,) = bind([TensorSpec("a", (1, 2))], [TensorSpec("a", (1, 3))])
    assert "1x2 in the source, 1x3 in the artifact" in wrong.problem
