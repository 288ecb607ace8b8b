"""``dilated_max_pool_as_phases``: an exact ONNX rewrite of a dilated MaxPool into undilated ops, which the ONNX ->
TFLite ladder applies as a remedy (``converters.onnx2tf_remedies``) and the direct ONNX -> Core ML route applies
before lowering (onnx2coreml drops a MaxPool's dilations)."""

from __future__ import annotations

from dataclasses import dataclass

from deploykit.passes.onnx_graph import fresh, onnx_element_types, onnx_shapes
from deploykit.passes.registry import register_pass


@dataclass(frozen=True)
class DilatedPool:
    """One dilated MaxPool over one or two spatial axes, with static shapes."""

    shape: tuple  # input (N, C, H[, W])
    out: tuple  # output (N, C, H'[, W'])
    kernel: tuple
    strides: tuple
    dilations: tuple
    pads: tuple  # (begin per axis..., end per axis...)


def dilated_max_pool_plan(node, shapes) -> DilatedPool | None:
    """The plan for ``node`` when it is a dilated MaxPool this rewrite handles: dilations above 1, one or two
    spatial axes, explicit (or no) pads, one output (no Indices), static input and output shapes."""
    from onnx import helper

    if node.op_type != "MaxPool" or node.domain not in ("", "ai.onnx") or len(node.output) != 1:
        return None
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    dilations = tuple(attributes.get("dilations") or ())
    if not dilations or max(dilations) <= 1 or len(dilations) not in (1, 2):
        return None
    auto_pad = attributes.get("auto_pad", b"NOTSET")
    # SAME_* is left to the converters: ONNX Runtime (the parity reference) and the ONNX spec disagree on a dilated
    # SAME pool's size (kernel 3x2, dilations 2x3, stride 2 on 10x11: ONNX Runtime 4x5; shape inference and
    # onnx.reference 5x6), so no rewrite can match both.
    if (auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad) not in ("NOTSET", "VALID"):
        return None
    shape, out = shapes.get(node.input[0]), shapes.get(node.output[0])
    if shape is None or out is None or len(shape) != len(dilations) + 2:
        return None
    rank = len(dilations)
    return DilatedPool(shape, out, tuple(attributes["kernel_shape"]), tuple(attributes.get("strides") or (1,) * rank),
                       dilations, tuple(attributes.get("pads") or (0,) * 2 * rank))


def dilated_max_pool_sites(model) -> int:
    if not any(n.op_type == "MaxPool" for n in model.graph.node):
        return 0
    shapes = onnx_shapes(model)
    return sum(1 for n in model.graph.node if dilated_max_pool_plan(n, shapes) is not None)


@register_pass("dilated_max_pool_as_phases", stage="onnx")
def dilated_max_pool_as_phases(model) -> int:
    """A dilated MaxPool rewritten as an undilated one over the input's phases: the rows (columns) a dilation d
    reads together are those equal modulo d, so splitting each axis into (length / d, d) and moving the phase
    out of the way turns every dilated window into a dense one.

    Given:  %y = MaxPool(%x, kernel_shape=[3, 3], dilations=[2, 2], strides=[2, 2], pads=[1, 1, 1, 1])  %x: [1, 4, 9, 9]
    Result: %p = Pad(%x, [0, 0, 1, 1, 0, 0, 1, 1], -inf)                                          [1, 4, 12, 12]
            %r = Reshape(%p, [4, 6, 2, 6, 2]);  %t = Transpose(%r, perm=[0, 2, 4, 1, 3])
            %m = MaxPool(Reshape(%t, [16, 1, 6, 6]), kernel_shape=[3, 3])                          [16, 1, 4, 4]
            %z = Reshape(Transpose(Reshape(%m, [4, 2, 2, 4, 4]), perm=[0, 3, 1, 4, 2]), [1, 4, 8, 8])
            %y = Slice(%z, starts=[0, 0], ends=[7, 7], axes=[2, 3], steps=[2, 2])                  [1, 4, 4, 4]

    %z is the stride-1 dilated pool (z[p] = max_j x[p + j d]), and the strided pool keeps every s-th row of it.
    onnx2tf writes a dilated 2-D MaxPool as TensorFlow's Dilation2D, which TFLite has no builtin for
    (FlexDilation2D), and onnx2coreml lowers it without its dilations (MIL ``max_pool`` has none): an undilated
    60x80 pool of the onnx wheel's ``test_MaxPool2d_stride_padding_dilation``, 97x97 instead of 43x25. Bit-exact:
    the same maxima over the same cells; padding and the rounding up to a multiple of d add -inf cells, which
    never win, and the ones that ``ceil_mode`` or the floor leave out are cropped. A 1-D pool is the 2-D one over
    (L, 1). Every tensor stays at rank 5 or less (Core ML's limit): N and C are merged.
    """
    from onnx import NodeProto, helper

    graph = model.graph
    if not any(n.op_type == "MaxPool" for n in graph.node):
        return 0
    shapes, types = onnx_shapes(model), onnx_element_types(model)
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    nodes, changed = [], 0
    for node in graph.node:
        plan = dilated_max_pool_plan(node, shapes)
        if plan is None:
            kept = NodeProto()
            kept.CopyFrom(node)
            nodes.append(kept)
            continue
        dtype = helper.tensor_dtype_to_np_dtype(types.get(node.input[0], 1))  # the -inf padding's type
        nodes.extend(_phased(plan, node, graph, taken, dtype))
        changed += 1
    if changed:
        del graph.node[:]
        graph.node.extend(nodes)
    return changed


def _as_2d(plan: DilatedPool) -> DilatedPool:
    if len(plan.dilations) == 2:
        return plan
    begin, end = plan.pads
    return DilatedPool(plan.shape + (1,), plan.out + (1,), plan.kernel + (1,), plan.strides + (1,),
                       plan.dilations + (1,), (begin, 0, end, 0))


def _phased(plan, node, graph, taken, dtype) -> list:
    """The nodes replacing one dilated MaxPool (see dilated_max_pool_as_phases)."""
    import numpy as np
    from onnx import helper, numpy_helper

    base = node.name or node.output[0]
    flat = _as_2d(plan)
    n, c, h, w = flat.shape
    kh, kw = flat.kernel
    sh, sw = flat.strides
    dh, dw = flat.dilations
    oh, ow = flat.out[2:]
    nodes = []

    def constant(values, label, dtype=np.int64):
        name = fresh(f"{base}/{label}", taken)
        graph.initializer.append(numpy_helper.from_array(np.asarray(values, dtype), name))
        return name

    def add(op, inputs, label, out=None, **attrs):
        out = out or fresh(f"{base}/{label}", taken)
        nodes.append(helper.make_node(op, inputs, [out], name=fresh(f"{base}/{label}", taken), **attrs))
        return out

    # The rows the pool reads: the last window starts at (oh - 1) * sh and spans d * (k - 1) + 1, rounded up to whole phases.
    spans = [(o - 1) * s + d * (k - 1) + 1 for o, s, d, k in zip((oh, ow), (sh, sw), (dh, dw), (kh, kw))]
    totals = [-(-span // d) * d for span, d in zip(spans, (dh, dw))]
    begins = flat.pads[:2]
    ends = [total - size - begin for total, size, begin in zip(totals, (h, w), begins)]
    current = node.input[0]
    if len(plan.dilations) == 1:
        current = add("Reshape", [current, constant([n, c, h, 1], "as_2d_shape")], "as_2d")
    if any(e < 0 for e in ends):  # rows past the last window (the floor of the output size): cropped, never read
        current = add("Slice", [current, constant([0, 0], "crop_starts"),
                                constant([size + min(e, 0) for size, e in zip((h, w), ends)], "crop_ends"),
                                constant([2, 3], "crop_axes")], "crop")
        ends = [max(e, 0) for e in ends]
    if any(begins) or any(ends):
        pads = constant([0, 0, begins[0], begins[1], 0, 0, ends[0], ends[1]], "pads")
        current = add("Pad", [current, pads, constant(-np.inf, "minus_inf", dtype)], "pad", mode="constant")
    ph, pw = totals[0] // dh, totals[1] // dw
    current = add("Reshape", [current, constant([n * c, ph, dh, pw, dw], "phases_shape")], "phases")
    current = add("Transpose", [current], "phases_first", perm=[0, 2, 4, 1, 3])
    current = add("Reshape", [current, constant([n * c * dh * dw, 1, ph, pw], "stacked_shape")], "stacked")
    current = add("MaxPool", [current], "pool", kernel_shape=[kh, kw])
    ah, aw = ph - kh + 1, pw - kw + 1
    current = add("Reshape", [current, constant([n * c, dh, dw, ah, aw], "pooled_shape")], "pooled")
    current = add("Transpose", [current], "phases_back", perm=[0, 3, 1, 4, 2])
    current = add("Reshape", [current, constant([n, c, ah * dh, aw * dw], "dense_shape")], "dense")
    final = node.output[0] if len(plan.dilations) == 2 else None
    current = add("Slice", [current, constant([0, 0], "starts"), constant([(oh - 1) * sh + 1, (ow - 1) * sw + 1], "ends"),
                            constant([2, 3], "axes"), constant([sh, sw], "steps")], "strided", out=final)
    if final is None:
        add("Reshape", [current, constant([n, c, oh], "out_shape")], "as_1d", out=node.output[0])
    return nodes
