"""``subgraph_constants``: an exact ONNX rewrite the ONNX -> TFLite ladder applies as a remedy (``converters.onnx2tf_remedies``)."""

from __future__ import annotations

from deploykit.passes.onnx_graph import captured, constant_values
from deploykit.passes.registry import register_pass


@register_pass("subgraph_constants", stage="onnx")
def subgraph_constants(model) -> int:
    """Outer-scope initializers (and Constant outputs) that If/Loop/Scan branches read, copied into
    each branch's own initializers.

    Given:  If(%cond) then_branch={ %y = Gemm(%h, W_outer, b_outer) }     (W_outer: a main-graph initializer)
    Result: If(%cond) then_branch={ initializers W_outer, b_outer;  %y = Gemm(%h, W_outer, b_outer) }

    onnx2tf converts a branch's nodes one by one and looks every input up among the tensors it has
    built; an outer initializer is not one of them, so it stops with ``KeyError: 'W_outer'``
    (openWakeWord's verifier head, an If whose branch runs a second classifier). ONNX lets a branch
    read outer names, so a copy inside the branch computes the same; returns branches changed.
    """
    from onnx import TensorProto, numpy_helper

    outer = {i.name: i for i in model.graph.initializer}
    constant_outputs = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    for name, value in constant_values(model.graph, constant_outputs).items():
        if name not in outer:
            outer[name] = numpy_helper.from_array(value, name)
    changed = 0
    for node in model.graph.node:
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                needed = sorted(captured(sub) & set(outer))
                for name in needed:
                    copy = TensorProto()
                    copy.CopyFrom(outer[name])
                    sub.initializer.append(copy)
                changed += bool(needed)
    return changed
