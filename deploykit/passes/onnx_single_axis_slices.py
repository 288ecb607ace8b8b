"""``single_axis_slices``: an exact ONNX rewrite the ONNX -> TFLite ladder applies as a remedy (``converters.onnx2tf_remedies``)."""

from __future__ import annotations

import numpy as np

from deploykit.passes.onnx_graph import constant_values, fresh, slice_parameters, slice_parts
from deploykit.passes.registry import register_pass


@register_pass("single_axis_slices", stage="onnx")
def single_axis_slices(model) -> int:
    """Slices over several axes (constant starts/ends/axes/steps) split into one Slice per axis.

    Given:  %y = Slice(%x, starts=[0, 1], ends=[129, 5], axes=[1, 2])
    Result: %t = Slice(%x, starts=[0], ends=[129], axes=[1]);  %y = Slice(%t, starts=[1], ends=[5], axes=[2])

    onnxsim merges consecutive Slices into one; onnx2tf then maps the axes of the merged Slice into
    its NWC layout wrongly (Silero VAD's STFT: the real and imaginary halves come out with different
    shapes and the Add of their squares fails inside onnx2tf). One axis per Slice is what the
    exporter wrote and what onnx2tf converts. Exact: slicing axes one after another is the same
    selection.
    """
    from onnx import NodeProto, helper, numpy_helper

    graph = model.graph
    values = constant_values(graph, slice_parameters(graph))
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    nodes, changed = [], 0
    for node in graph.node:
        parts = slice_parts(node, values)
        if parts is None or len(parts) < 2:
            kept = NodeProto()
            kept.CopyFrom(node)
            nodes.append(kept)
            continue
        current = node.input[0]
        base = node.name or node.output[0]
        for k, (start, end, axis, step) in enumerate(parts):
            names = []
            for label, value in (("starts", start), ("ends", end), ("axes", axis), ("steps", step)):
                name = fresh(f"{base}/axis{axis}_{label}", taken)
                graph.initializer.append(numpy_helper.from_array(np.array([value], dtype=np.int64), name))
                names.append(name)
            out = node.output[0] if k == len(parts) - 1 else fresh(f"{base}/axis{axis}", taken)
            nodes.append(helper.make_node("Slice", [current, *names], [out], name=fresh(f"{base}/axis{axis}", taken)))
            current = out
        changed += 1
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
    return changed
