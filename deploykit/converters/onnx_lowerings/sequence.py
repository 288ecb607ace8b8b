"""CumSum: running sums along an axis (ONNX opset 11+), as MIL ``cumsum``.

ONNX's ``exclusive`` and ``reverse`` attributes are MIL's ``exclusive`` and ``reverse``; the axis is a
constant input in ONNX and must be known at conversion time."""

from __future__ import annotations

from deploykit.converters.onnx_lowerings._args import attribute, inputs
from deploykit.formats import coremltools_facade


def _cumsum(ctx, node):
    mb = coremltools_facade.mil_builder()
    x, axis = inputs(ctx, node)[:2]
    if axis is None or axis.val is None:
        raise NotImplementedError("CumSum with an axis computed at run time")
    return mb.cumsum(x=x, axis=int(axis.val), exclusive=bool(attribute(node, "exclusive", 0)),
                     reverse=bool(attribute(node, "reverse", 0)), name=node.output[0])


LOWERINGS = {"CumSum": _cumsum}
