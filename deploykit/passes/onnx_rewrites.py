"""The exact ONNX rewrites as the ONNX -> TFLite ladder uses them: which apply to a model, and applying them by name.

Each rewrite is a registered pass of stage ``onnx`` (``passes/onnx_*.py``, Given/Result docstrings); the
ladder applies them to a private copy of the prepared model (``onnx2tf_remedies.Settings.rewrites``).
"""

from __future__ import annotations

from deploykit.passes.onnx_dilated_conv import dilated_conv_sites
from deploykit.passes.onnx_dilated_max_pool import dilated_max_pool_plan
from deploykit.passes.onnx_float64_as_float32 import float64_tensors
from deploykit.passes.onnx_graph import (
    captured,
    constant_lhs_sites,
    constant_values,
    onnx_shapes,
    pool3d_plan,
    pool_correction,
    scalar_divisor_sites,
    slice_parameters,
    slice_parts,
    tile_sites,
)
from deploykit.passes.registry import get


def rewrite_sites(model, has_pools: bool = True) -> dict[str, int]:
    """Rewrite name -> how many places of ``model`` it would change (0: the rewrite does not apply).
    ``has_pools=False`` (no MaxPool or AveragePool in the graph) skips shape inference."""
    graph = model.graph
    values = constant_values(graph, slice_parameters(graph))
    outer = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    pools, split, dilated = 0, {"MaxPool": 0, "AveragePool": 0}, 0
    if has_pools:
        shapes = onnx_shapes(model)
        for node in graph.node:
            dilated += dilated_max_pool_plan(node, shapes) is not None
            if pool3d_plan(node, shapes) is not None:
                split[node.op_type] += 1  # its pads become the split's own correction, not average_pool_pads'
            elif pool_correction(node, shapes) is not None:
                pools += 1
    return {
        "constant_lhs": len(constant_lhs_sites(graph)),
        "single_axis_slices": sum(1 for n in graph.node if len(slice_parts(n, values) or ()) > 1),
        "subgraph_constants": sum(1 for n in graph.node for a in n.attribute
                                  for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs) if captured(sub) & outer),
        "average_pool_pads": pools,
        "scalar_division": len(scalar_divisor_sites(graph)),
        "max_pool3d_as_2d": split["MaxPool"],
        "average_pool3d_as_2d": split["AveragePool"],
        "tile_as_concat": len(tile_sites(graph)),
        "dilated_conv_as_dense": len(dilated_conv_sites(graph)),
        "dilated_max_pool_as_phases": dilated,
        "float64_as_float32": float64_tensors(model),
    }


def apply_rewrites(path, names) -> dict[str, int]:
    """Apply the named rewrites, in order, to the ONNX file at ``path`` in place; name -> nodes changed."""
    import onnx

    if not names:
        return {}
    model = onnx.load(str(path))
    counts = {name: get(name, "onnx").apply(model) for name in names}
    if any(counts.values()):
        large = model.ByteSize() > 1_800_000_000  # protobuf's 2 GB limit
        onnx.save_model(model, str(path), save_as_external_data=large, location=f"{path.name}.data")
    return counts
