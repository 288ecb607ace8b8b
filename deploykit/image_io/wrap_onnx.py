"""The pixel preamble for an ONNX graph: Cast, channel reversal, Mul and Add nodes in front of the graph.

The image input keeps its name (now uint8 or float pixels, channels first); the value the original
graph read is renamed and computed by the preamble.
"""

from __future__ import annotations

from deploykit.image_io.spec import image_geometry


def _rename_uses(graph, old: str, new: str) -> None:
    """Every read of ``old``, in subgraphs (If / Loop bodies read outer values by name) too."""
    for node in graph.node:
        node.input[:] = [new if i == old else i for i in node.input]
        for attribute in node.attribute:
            for body in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                if not any(v.name == old for v in body.input):  # a body input of that name shadows the outer one
                    _rename_uses(body, old, new)


def wrap(model, images: dict, specs):
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph_model = onnx.ModelProto()
    graph_model.CopyFrom(model.handle)
    graph = graph_model.graph
    pixel_specs = {s.name: s for s in specs}
    preamble, constants = [], []
    for value_info in graph.input:
        image = images.get(value_info.name)
        if image is None:
            continue
        name, inner = value_info.name, f"{value_info.name}__normalized"
        _rename_uses(graph, name, inner)
        pixels = pixel_specs[name]
        tensor_type = value_info.type.tensor_type
        tensor_type.elem_type = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(pixels.dtype))
        for dim, size in zip(tensor_type.shape.dim, pixels.shape):
            dim.Clear()
            dim.dim_value = int(size)
        channel_axis = 1 if pixels.layout == "NCHW" else 3
        per_channel = (1, -1, 1, 1) if channel_axis == 1 else (1, 1, 1, -1)
        scale, offset = image.scale_and_offset()
        constants += [numpy_helper.from_array(scale.reshape(per_channel), f"{name}__scale"),
                      numpy_helper.from_array(offset.reshape(per_channel), f"{name}__offset")]
        current = name
        if pixels.dtype == "uint8":
            preamble.append(helper.make_node("Cast", [current], [f"{name}__float"], to=onnx.TensorProto.FLOAT))
            current = f"{name}__float"
            if image.color == "BGR":  # TFLite takes RGB; Core ML hands over BGR itself
                constants.append(numpy_helper.from_array(np.array([2, 1, 0], np.int64), f"{name}__bgr"))
                preamble.append(helper.make_node("Gather", [current, f"{name}__bgr"], [f"{name}__reversed"], axis=channel_axis))
                current = f"{name}__reversed"
        preamble.append(helper.make_node("Mul", [current, f"{name}__scale"], [f"{name}__scaled"]))
        source_layout = image_geometry(next(t for t in model.inputs if t.name == name))[3]
        if source_layout == pixels.layout:
            preamble.append(helper.make_node("Add", [f"{name}__scaled", f"{name}__offset"], [inner]))
            continue
        preamble.append(helper.make_node("Add", [f"{name}__scaled", f"{name}__offset"], [f"{name}__pixels_normalized"]))
        perm = [0, 3, 1, 2] if source_layout == "NCHW" else [0, 2, 3, 1]
        preamble.append(helper.make_node("Transpose", [f"{name}__pixels_normalized"], [inner], perm=perm))
    nodes = preamble + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(constants)
    return graph_model
