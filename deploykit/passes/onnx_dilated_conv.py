"""``dilated_conv_as_dense``: an ONNX rewrite the ONNX -> TFLite ladder applies as a remedy (``converters.onnx2tf_remedies``)."""

from __future__ import annotations

from deploykit.passes.onnx_graph import constant_values, drop_unread_constants, fresh
from deploykit.passes.registry import register_pass

MAX_GROWTH = 27  # the dense kernel holds at most this many times the dilated one's weights (3x3x3 dilated by 2: 4.6x)


def dilated_conv_sites(graph) -> dict[int, list[int]]:
    """node index -> dilations of the Convs ``dilated_conv_as_dense`` rewrites: constant weights, a dilation above 1,
    and a form onnx2tf cannot write with builtin ops: a stride above 1 as well (TensorFlow's ``tf.nn.convolution``
    refuses "strides > 1 ... in conjunction with dilation_rate > 1"), or three spatial axes (its dilated 3-D
    convolution goes through SpaceToBatchND / BatchToSpaceND on 5-D tensors: Select-TF ops)."""
    from onnx import helper

    candidates = {}
    for index, node in enumerate(graph.node):
        if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.input) < 2:
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        dilations = list(attributes.get("dilations") or [])
        strides = list(attributes.get("strides") or [])
        if not dilations or max(dilations) <= 1:
            continue
        if any(s > 1 for s in strides) or len(dilations) == 3:
            candidates[index] = dilations
    if not candidates:
        return {}
    values = constant_values(graph, {graph.node[i].input[1] for i in candidates})
    sites = {}
    for index, dilations in candidates.items():
        weight = values.get(graph.node[index].input[1])
        if weight is None or weight.ndim != len(dilations) + 2:
            continue
        dense = [d * (k - 1) + 1 for d, k in zip(dilations, weight.shape[2:])]
        grown = 1
        for size, kernel in zip(dense, weight.shape[2:]):
            grown *= size / kernel
        if grown <= MAX_GROWTH:
            sites[index] = dilations
    return sites


@register_pass("dilated_conv_as_dense", stage="onnx")
def dilated_conv_as_dense(model) -> int:
    """A dilated Conv that onnx2tf cannot write with builtin ops, rewritten as an undilated Conv whose constant
    kernel holds the dilated taps with zeros between them.

    Given:  %y = Conv(%x, %w, %b, dilations=[2, 2], strides=[2, 2])          %w: [M, C, 3, 3]
    Result: %y = Conv(%x, %w', %b, dilations=[1, 1], strides=[2, 2])         %w': [M, C, 5, 5], %w'[:, :, ::2, ::2] = %w

    The taps a dilated kernel reads are the dense kernel's non-zero entries, at the same offsets, so padding
    (explicit or ``auto_pad``, computed from the effective kernel size d * (k - 1) + 1), strides and groups stay
    as they were. onnx2tf stops on a Conv dilated and strided at once ("`strides > 1` not supported in
    conjunction with `dilation_rate > 1`", the onnx wheel's ``test_Conv2d_dilated`` and
    ``test_Conv3d_dilated_strided``) and writes a dilated 3-D Conv as FlexSpaceToBatchND + Conv3D +
    FlexBatchToSpaceND (``test_Conv3d_dilated``). Exact for finite inputs (each added product is x * 0 = 0);
    only the order of the sums can differ. The kernel grows by prod((d * (k - 1) + 1) / k), at most ``MAX_GROWTH``.
    """
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    sites = dilated_conv_sites(graph)
    if not sites:
        return 0
    weights = constant_values(graph, {graph.node[i].input[1] for i in sites})
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    replaced = set()
    for index, dilations in sites.items():
        node = graph.node[index]
        weight = weights[node.input[1]]
        dense = np.zeros(weight.shape[:2] + tuple(d * (k - 1) + 1 for d, k in zip(dilations, weight.shape[2:])),
                         weight.dtype)
        dense[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilations)] = weight
        name = fresh(f"{node.input[1]}/dense", taken)
        graph.initializer.append(numpy_helper.from_array(dense, name))
        replaced.add(node.input[1])
        node.input[1] = name
        kept = [a for a in node.attribute if a.name not in ("dilations", "kernel_shape")]
        del node.attribute[:]
        node.attribute.extend(kept)
        node.attribute.append(helper.make_attribute("kernel_shape", list(dense.shape[2:])))
    drop_unread_constants(graph, replaced)
    return len(sites)
