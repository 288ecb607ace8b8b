"""An artifact output whose shape reads the same in both layouts (onnx2tf's channels-last 2x3x3 for a 2x3x3 NCW
output, 2x4x4x4 for 2x4x4x4 NCHW): the comparison tries the same-layout reading first and the channel moves
next, and the record says which matched (the onnx wheel's AvgPool1d/2d and Conv2d_no_bias/depthwise failed
TFLite parity at 1.2-1.9 while their artifacts were right)."""

from __future__ import annotations

import numpy as np

from deploykit.core.types import Artifact, TensorSpec
from deploykit.parity.compare import ParityReport
from deploykit.parity.layout import SETTLED, bind
from deploykit.parity.profiles import get_profile
from deploykit.pipeline.request import VerifyOptions
from deploykit.pipeline.verify import _compared, settled_layouts


def test_shapes_that_read_both_ways_carry_their_alternatives():
    (b3,) = bind([TensorSpec("y", (2, 3, 3))], [TensorSpec("y", (2, 3, 3))])
    assert b3.order is None and b3.alternatives == ((0, 2, 1),)
    (b4,) = bind([TensorSpec("y", (2, 4, 4, 4), layout="NCHW")], [TensorSpec("y", (2, 4, 4, 4))])
    assert b4.alternatives == ((0, 2, 3, 1), (0, 3, 1, 2))
    (plain,) = bind([TensorSpec("y", (1, 3, 8, 6), layout="NCHW")], [TensorSpec("y", (1, 3, 8, 6))])
    assert plain.alternatives == ()  # 1x8x6x3 would be another shape: nothing to settle
    (dynamic,) = bind([TensorSpec("y", (None, 3, 3))], [TensorSpec("y", (None, 3, 3))])
    assert dynamic.alternatives == ()


def _compare(binding, refs, outs):
    return _compared(binding, [{"y": r} for r in refs], [{"y": o} for o in outs], get_profile("fp32"),
                     VerifyOptions(), None, [[] for _ in refs])


def test_comparison_settles_the_reading():
    (b,) = bind([TensorSpec("y", (2, 3, 3))], [TensorSpec("y", (2, 3, 3))])
    refs = [np.random.default_rng(i).normal(size=(2, 3, 3)).astype(np.float32) for i in range(2)]
    same = _compare(b, refs, refs)
    assert same.passed and same.layout is None
    moved = _compare(b, refs, [r.transpose(0, 2, 1).copy() for r in refs])  # what onnx2tf wrote: channels last
    assert moved.passed and moved.layout == "transposed (0, 2, 1) (channels-first <-> channels-last)" + SETTLED
    wrong = _compare(b, refs, [np.random.default_rng(9).normal(size=(2, 3, 3)).astype(np.float32)] * 2)
    assert not wrong.passed and wrong.layout is None  # neither reading: the same-layout one is reported


def test_record_follows_the_settled_reading():
    outputs = (TensorSpec("y", (2, 4, 4, 4), layout="NCHW"), TensorSpec("s", (2, 3, 3)), TensorSpec("z", (1, 5)))
    artifact = Artifact("tflite", "fp32", "m.tflite", 1, "", (), outputs, "onnx->tflite (onnx2tf)", 0.0, {},
                        layout_changes=("x: NCHW -> NHWC",))
    (by, bs, bz) = bind(outputs, outputs)
    refs = [{"y": np.ones((2, 4, 4, 4), np.float32), "s": np.ones((2, 3, 3), np.float32), "z": np.ones((1, 5))}]
    results = tuple(_compared(b.reading(b.alternatives[0]) if b.alternatives else b, refs, refs, get_profile("fp32"),
                              VerifyOptions(), None, [[]]) for b in (by, bs, bz))
    report = ParityReport(source="m.onnx", framework="onnx", artifact="m.tflite", target="tflite", profile="fp32",
                          profile_origin="", runners={}, notes=(), inputs={}, outputs=results, seconds=0.0)
    settled = settled_layouts(artifact, report)
    assert [t.layout for t in settled.outputs] == ["NHWC", None, None]
    assert settled.layout_changes == ("x: NCHW -> NHWC",
                                      "y: NCHW -> NHWC (its shape reads the same in both; parity settled it)",
                                      "s: channels-first -> channels-last (its shape reads the same in both; parity "
                                      "settled it)")
    unmoved = ParityReport(**{**report.__dict__, "outputs": tuple(_compared(b, refs, refs, get_profile("fp32"),
                                                                            VerifyOptions(), None, [[]])
                                                                  for b in (by, bs, bz))})
    assert settled_layouts(artifact, unmoved) is artifact
