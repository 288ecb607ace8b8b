"""Renaming values of an ONNX graph: its interface, and every reference to it, in subgraphs too."""

from __future__ import annotations


def renamed(model, mapping: dict[str, str]):
    """A copy of ``model`` with the values in ``mapping`` renamed wherever they are read or written."""
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        value.name = mapping.get(value.name, value.name)
    rename_nodes(graph, mapping)
    return copy


def rename_nodes(graph, mapping: dict[str, str]) -> None:
    """Rename references in ``graph``'s nodes and, recursively, in their subgraphs (If / Loop branches read
    outer names)."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            node.input[i] = mapping.get(name, name)
        for i, name in enumerate(node.output):
            node.output[i] = mapping.get(name, name)
        for attr in node.attribute:
            for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                rename_nodes(sub, mapping)
