"""Outputs whose values the source model bounds to a known range, read from the source graph.

A probability is in [0, 1] whatever the input. Scaling its error by the sample's own peak (as for an
unbounded output) turns a probability of 5e-5 off by 1.4e-7 into a 0.3 % error: that is ONNX Runtime's
own absolute error floor for Sigmoid (measured on a one-node model over x in [-20, 10],
bench/results/corpus-inputs.md), so a correct artifact fails against an inexact reference. For a
bounded output the error is measured against the range instead, as PSNR does for images in [0, 1]:
``parity.compare`` takes the range's magnitude as the floor of the output's scale.

An output is bounded when its producer is a bounded activation, seen through ops that only move or
select values (reshape, transpose, slice, concat of bounded tensors). Anything else is unbounded.
"""

from __future__ import annotations

from deploykit.core.types import SourceModel

# Activation -> the range of its values.
ONNX_BOUNDED = {"Sigmoid": (0.0, 1.0), "HardSigmoid": (0.0, 1.0), "Softmax": (0.0, 1.0), "Tanh": (-1.0, 1.0)}
ONNX_MOVES = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Slice", "Split", "Gather",
              "Concat", "Expand", "Tile", "DepthToSpace", "SpaceToDepth"}
TORCH_BOUNDED = {"sigmoid": (0.0, 1.0), "hardsigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "_softmax": (0.0, 1.0),
                 "tanh": (-1.0, 1.0)}
TORCH_MOVES = {"view", "reshape", "_unsafe_view", "permute", "transpose", "squeeze", "unsqueeze", "flatten", "clone",
               "contiguous", "slice", "select", "cat", "expand", "alias", "split", "getitem"}
KERAS_BOUNDED = {"sigmoid": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0)}


def bounded_outputs(model: SourceModel) -> dict[str, tuple[float, float]]:
    """Output name -> (low, high) for the outputs the source graph bounds; empty when none can be read."""
    try:
        if model.framework == "onnx" and model.handle is not None:
            ranges = _onnx(model.handle)
        elif model.framework == "torch" and isinstance(model.handle, dict):
            ranges = _torch(model.handle.get("module"))
        elif model.framework == "keras" and model.handle is not None and not isinstance(model.handle, str):
            ranges = _keras(model.handle)
        else:
            return {}
    except Exception:  # noqa: BLE001 - an unreadable graph only means no range is known: errors scale by the peak
        return {}
    # Every reader lists the graph's outputs in order, which is the order of model.outputs.
    return {spec.name: r for spec, r in zip(model.outputs, ranges) if r is not None}


def _union(ranges: list[tuple[float, float] | None]) -> tuple[float, float] | None:
    if not ranges or any(r is None for r in ranges):
        return None
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def _onnx(proto) -> list:
    return [_onnx_bound(o.name, _scope(proto.graph, None), 0) for o in proto.graph.output]


def _scope(graph, outer: dict | None) -> dict:
    """Name -> producing node (None for initializers), falling back to the enclosing graph's scope."""
    scope = dict(outer or {})
    scope.update({t.name: None for t in graph.initializer})
    scope.update({out: node for node in graph.node for out in node.output})
    return scope


def _onnx_bound(name: str, scope: dict, depth: int) -> tuple[float, float] | None:
    node = scope.get(name)
    if node is None or depth > 64:
        return None
    if node.op_type in ONNX_BOUNDED:
        return ONNX_BOUNDED[node.op_type]
    if node.op_type == "If":  # bounded when every branch bounds the same output
        index = list(node.output).index(name)
        branches = [a.g for a in node.attribute if a.name in ("then_branch", "else_branch")]
        return _union([_onnx_bound(g.output[index].name, _scope(g, scope), depth + 1) for g in branches])
    if node.op_type in ONNX_MOVES:
        # Only the data operand carries values: shapes, indices and axes come from the other inputs.
        data = list(node.input) if node.op_type == "Concat" else list(node.input[:1])
        return _union([_onnx_bound(i, scope, depth + 1) for i in data if i])
    return None


def _torch(module) -> list:
    graph = getattr(module, "graph", None)  # a torch.export program's module(); eager modules have no graph
    output = next((n for n in getattr(graph, "nodes", ()) if n.op == "output"), None)
    if output is None:
        return []

    def op_name(node) -> str:
        target = getattr(node.target, "__name__", str(node.target))
        return target.split(".")[0].removeprefix("aten::")

    def bound(node, depth: int = 0):
        if not hasattr(node, "op") or node.op != "call_function" or depth > 64:
            return None
        name = op_name(node)
        if name in TORCH_BOUNDED:
            return TORCH_BOUNDED[name]
        if name in TORCH_MOVES and node.args:
            first = node.args[0]
            data = list(first) if name == "cat" and isinstance(first, (list, tuple)) else [first]
            return _union([bound(d, depth + 1) for d in data])
        return None

    results = output.args[0] if output.args else ()
    results = results if isinstance(results, (list, tuple)) else (results,)
    return [bound(node) for node in results]


def _keras(model) -> list:
    found = []
    for tensor in getattr(model, "outputs", None) or []:
        history = getattr(tensor, "_keras_history", None)
        layer = getattr(history, "operation", None) or getattr(history, "layer", None)
        activation = getattr(getattr(layer, "activation", None), "__name__", None)
        found.append(KERAS_BOUNDED.get(activation))
    return found
