"""``tile_as_concat``: an exact ONNX rewrite the ONNX -> TFLite ladder applies as a remedy (``converters.onnx2tf_remedies``)."""

from __future__ import annotations

from deploykit.passes.onnx_graph import drop_unread_constants, fresh, tile_sites
from deploykit.passes.registry import register_pass


@register_pass("tile_as_concat", stage="onnx")
def tile_as_concat(model) -> int:
    """Tile by constant repeats over a tensor of rank 3 or more, rewritten as one Concat of copies per repeated axis.

    Given:  %y = Tile(%x, repeats=[1, 2, 3, 4])            %x: [1, 2, 3, 4]
    Result: %a = Concat(%x, %x, axis=1)                    [1, 4, 3, 4]
            %b = Concat(%a, %a, %a, axis=2)                [1, 4, 9, 4]
            %y = Concat(%b, %b, %b, %b, axis=3)            [1, 4, 9, 16]

    onnx2tf lays a rank-4 tensor out as NHWC but hands Tile's repeats to TensorFlow in ONNX's NCHW order: it
    picks the repeats' permutation by comparing candidates with ONNX Runtime's output when it has one, and
    otherwise takes the first whose element count matches, which every permutation does. PyTorch's
    ``x.repeat(1, 2, 3, 4)`` on a [1, 2, 3, 4] input (the onnx wheel's ``test_operator_repeat``) came out
    [1, 6, 12, 8] instead of [1, 4, 9, 16] (NHWC [1, 9, 16, 4]). onnx2tf converts a Concat's axis into its
    layout. Bit-exact: tiling an axis k times is concatenating k copies along it, axis by axis. Repeats above
    ``MAX_TILE_COPIES`` (64) keep their Tile.
    """
    from onnx import NodeProto, helper

    graph = model.graph
    sites = tile_sites(graph)
    if not sites:
        return 0
    repeats = {graph.node[index].input[1] for index in sites}  # dropped below where nothing else reads them
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    nodes = []
    for index, node in enumerate(graph.node):
        counts = sites.get(index)
        if counts is None:
            kept = NodeProto()
            kept.CopyFrom(node)
            nodes.append(kept)
            continue
        base = node.name or node.output[0]
        axes = [axis for axis, r in enumerate(counts) if r > 1]
        current = node.input[0]
        for axis in axes:
            out = node.output[0] if axis == axes[-1] else fresh(f"{base}/axis{axis}", taken)
            nodes.append(helper.make_node("Concat", [current] * counts[axis], [out], axis=axis,
                                          name=fresh(f"{base}/axis{axis}", taken)))
            current = out
    del graph.node[:]
    graph.node.extend(nodes)
    drop_unread_constants(graph, repeats)
    return len(sites)
