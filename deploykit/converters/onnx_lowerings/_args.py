"""The two helpers every lowering needs: a node's inputs as MIL Vars and its attributes as Python values."""

from __future__ import annotations

from onnx import helper


def inputs(ctx, node) -> list:
    """MIL Vars of the node's inputs, None for omitted optional ones."""
    return [ctx.values_map[name] if name else None for name in node.input]


def attribute(node, name: str, default=None):
    for attr in node.attribute:
        if attr.name == name:
            return helper.get_attribute_value(attr)
    return default
