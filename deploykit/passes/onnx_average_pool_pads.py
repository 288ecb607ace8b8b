"""``average_pool_pads``: an exact ONNX rewrite the ONNX -> TFLite ladder applies as a remedy (``converters.onnx2tf_remedies``)."""

from __future__ import annotations

from deploykit.passes.onnx_graph import fresh, onnx_shapes, pool_correction
from deploykit.passes.registry import register_pass


@register_pass("average_pool_pads", stage="onnx")
def average_pool_pads(model) -> int:
    """AveragePool that excludes padding (count_include_pad=0, the default) with explicit pads,
    rewritten as the pad-including average times a constant correction.

    Given:  %y = AveragePool(%x, kernel_shape=[7, 7], pads=[0, 0, 1, 1])       (count_include_pad=0)
    Result: %a = AveragePool(%x, kernel_shape=[7, 7], pads=[0, 0, 1, 1], count_include_pad=1)
            %y = Mul(%a, C)     C[i, j] = kernel cells / real (unpadded) cells under window (i, j)

    onnx2tf writes an explicitly padded AveragePool as PAD + AVERAGE_POOL_2D(VALID), which divides by
    every cell of the window, zeros included: the model-zoo Inception v1's last pool (6x6 input,
    7x7 kernel, one row and column of padding) comes out 36/49 of the ONNX value (max error 0.11 of
    the output's peak). The product is within an ulp of ONNX's quotient. Needs static input shapes
    (the prepared graph has them); pools it cannot size are left alone.
    """
    from onnx import NodeProto, helper, numpy_helper

    graph = model.graph
    shapes = onnx_shapes(model)
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    nodes, changed = [], 0
    for node in graph.node:
        correction = pool_correction(node, shapes)
        kept = NodeProto()
        kept.CopyFrom(node)
        if correction is None:
            nodes.append(kept)
            continue
        base = node.name or node.output[0]
        including = fresh(f"{base}/including_pads", taken)
        factor = fresh(f"{base}/pad_correction", taken)
        graph.initializer.append(numpy_helper.from_array(correction, factor))
        for attribute in list(kept.attribute):
            if attribute.name == "count_include_pad":
                kept.attribute.remove(attribute)
        kept.attribute.append(helper.make_attribute("count_include_pad", 1))
        del kept.output[:]
        kept.output.append(including)
        nodes.append(kept)
        nodes.append(helper.make_node("Mul", [including, factor], list(node.output), name=fresh(f"{base}/corrected", taken)))
        changed += 1
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
    return changed
