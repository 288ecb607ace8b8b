"""If: ONNX's data-dependent branch (openWakeWord's heads run a verifier only when the first score passes a
threshold), as MIL ``cond`` with both branches lowered into its blocks; a condition known at conversion
time inlines the branch taken. Constant: the nodes inside branches, which no graph-level constant folding
reaches."""

from __future__ import annotations

import numpy as np

from deploykit.converters.onnx_lowerings._args import attribute, inputs
from deploykit.formats import coremltools_facade


def _if(ctx, node):
    mb = coremltools_facade.mil_builder()
    from deploykit.converters.onnx2coreml_facade import lower_subgraph

    pred = inputs(ctx, node)[0]
    then_graph, else_graph = attribute(node, "then_branch"), attribute(node, "else_branch")
    if pred.val is not None:
        outs = lower_subgraph(ctx, then_graph if bool(np.asarray(pred.val).reshape(-1)[0]) else else_graph)
        return [mb.identity(x=v, name=name) for v, name in zip(outs, node.output)]
    types = coremltools_facade.mil_types()
    if pred.rank:
        pred = mb.squeeze(x=pred)  # ONNX allows a one-element tensor; MIL wants a scalar
    if not types.is_bool(pred.dtype):
        pred = mb.cast(x=pred, dtype="bool")
    result = mb.cond(pred=pred, _true_fn=lambda: tuple(lower_subgraph(ctx, then_graph)),
                     _false_fn=lambda: tuple(lower_subgraph(ctx, else_graph)))
    outs = list(result) if isinstance(result, (list, tuple)) else [result]
    return [mb.identity(x=v, name=name) for v, name in zip(outs, node.output)]


def _constant(ctx, node):
    mb = coremltools_facade.mil_builder()
    from onnx import numpy_helper

    value = attribute(node, "value")
    if value is not None:
        array = numpy_helper.to_array(value)
    else:
        for key in ("value_float", "value_int", "value_floats", "value_ints"):
            found = attribute(node, key)
            if found is not None:
                array = np.asarray(found, dtype=np.float32 if "float" in key else np.int32)
                break
        else:
            raise NotImplementedError("Constant without a numeric value (string or sparse constants)")
    if array.dtype == np.int64:
        array = array.astype(np.int32)  # MIL has no int64 constants; exporters' int64 shapes fit int32
    elif array.dtype == np.float64:
        array = array.astype(np.float32)
    return mb.const(val=array, name=node.output[0])


LOWERINGS = {"If": _if, "Constant": _constant}
