"""Sum and Mean: ONNX's n-ary elementwise ops (opset 6+ still has them; exporters of the Caffe2 era
wrote ResNet's residual adds as Sum). Lowered as a left fold of broadcasting ``add``: exact, since
the ONNX ops broadcast the same way (multidirectional, numpy rules)."""

from __future__ import annotations

from deploykit.converters.onnx_lowerings._args import inputs
from deploykit.formats import coremltools_facade


def _fold(ctx, node, mb):
    values = [v for v in inputs(ctx, node) if v is not None]
    total = values[0]
    for index, value in enumerate(values[1:], start=1):
        last = index == len(values) - 1
        total = mb.add(x=total, y=value, **({"name": node.output[0]} if last and node.op_type == "Sum" else {}))
    return total, len(values)


def _sum(ctx, node):
    mb = coremltools_facade.mil_builder()
    total, count = _fold(ctx, node, mb)
    return total if count > 1 else mb.identity(x=total, name=node.output[0])


def _mean(ctx, node):
    mb = coremltools_facade.mil_builder()
    total, count = _fold(ctx, node, mb)
    return mb.real_div(x=total, y=float(count), name=node.output[0])


LOWERINGS = {"Sum": _sum, "Mean": _mean}
