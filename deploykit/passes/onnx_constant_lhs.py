"""``constant_lhs``: an exact ONNX rewrite the ONNX -> TFLite ladder applies as a remedy (``converters.onnx2tf_remedies``)."""

from __future__ import annotations

import numpy as np

from deploykit.passes.onnx_graph import constant_lhs_sites, dtype_of, fresh
from deploykit.passes.registry import register_pass


@register_pass("constant_lhs", stage="onnx")
def constant_lhs(model) -> int:
    """Sub and Div whose first operand is a constant, rewritten so that the constant comes second.

    Given:  %y = Sub(%C, %x)             Result: %t = Sub(%x, %C);  %y = Neg(%t)
    Given:  %y = Div(%C, %x)             Result: %r = Pow(%x, -1);  %y = Mul(%C, %r)

    TensorFlow 2.21's TFLite converter (its PushTransposeThroughEwise pass) miscompiles a binary op
    whose first operand is a constant and whose second is a transposed tensor, and onnx2tf emits
    transposes at every NCHW <-> NHWC change: ``C - transpose(x)`` comes out as ``x' - C'`` and
    ``C / transpose(x)`` as ``x' * (1/C')``, even for a scalar C. A YOLOv8 box decode
    (``anchors - ltrb``) hits it: the TF model onnx2tf builds is right (3e-7), its .tflite is off by
    1.95 of the output's peak. ``-(x - C)`` is bit-exact; ``C * x^-1`` is within an ulp or two of
    ``C / x`` (POW is not pushed through, MUL commutes).
    """
    from onnx import NodeProto, helper, numpy_helper

    graph = model.graph
    sites = constant_lhs_sites(graph)  # indices into graph.node (protobuf wrappers have no stable id)
    if not sites:
        return 0
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    nodes = []
    for index, node in enumerate(graph.node):
        if index not in sites:
            kept = NodeProto()
            kept.CopyFrom(node)
            nodes.append(kept)
            continue
        c, x = node.input
        base = node.name or node.output[0]
        middle = fresh(f"{base}/constant_second", taken)
        if node.op_type == "Sub":
            nodes.append(helper.make_node("Sub", [x, c], [middle], name=fresh(f"{base}/swapped", taken)))
            nodes.append(helper.make_node("Neg", [middle], list(node.output), name=fresh(f"{base}/neg", taken)))
        else:
            exponent = fresh(f"{base}/minus_one", taken)
            graph.initializer.append(numpy_helper.from_array(np.array(-1, dtype=dtype_of(model, c)), exponent))
            nodes.append(helper.make_node("Pow", [x, exponent], [middle], name=fresh(f"{base}/reciprocal", taken)))
            nodes.append(helper.make_node("Mul", [c, middle], list(node.output), name=fresh(f"{base}/times", taken)))
    del graph.node[:]
    graph.node.extend(nodes)
    return len(sites)
