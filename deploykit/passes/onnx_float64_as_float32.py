"""``float64_as_float32``: an ONNX rewrite the ONNX -> TFLite ladder applies as a remedy (``converters.onnx2tf_remedies``)."""

from __future__ import annotations

from deploykit.passes.registry import register_pass

_DOUBLE, _FLOAT = 11, 1  # onnx.TensorProto.DOUBLE / FLOAT, spelled out so the count needs no import of onnx


def float64_tensors(model) -> int:
    """How many float64 places ``model`` has (interface, weights, constants, Casts), subgraphs included."""
    graph = model.graph
    interface = sum(1 for v in list(graph.input) + list(graph.output) if v.type.tensor_type.elem_type == _DOUBLE)
    return interface + _graph_places(graph, change=False)


@register_pass("float64_as_float32", stage="onnx")
def float64_as_float32(model) -> int:
    """A float64 graph computed in float32: inputs, outputs, weights, constants and Casts to double become float.

    Given:  %y = Add(%x, %c)           %x: double[2, 3], %c: double[3] initializer
    Result: %y = Add(%x, %c)           %x: float[2, 3],  %c: float[3] (the same values, rounded to float32)

    TFLite's kernels take no float64 (ADD has float32, int32, int64, int16 and uint8 ones), so onnx2tf's float64
    graph is Select-TF: FlexAddV2 on the onnx wheel's ``test_operator_add_size1_broadcast`` (a PyTorch
    DoubleTensor op). Core ML computes in float32 at most as well, and coremltools narrows a float64 model the
    same way, so both targets then compute what a float32 export of the model computes. Not exact: values round
    to float32 (within the fp32 bound for values inside float32's range; beyond it they become Inf, which the
    ladder's parity check catches like any other difference). The artifact's inputs and outputs are float32: the
    app feeds floats, and deploykit's parity feeds the source's float64 samples rounded to float32.
    """
    graph = model.graph
    changed = 0
    for value in list(graph.input) + list(graph.output):
        if value.type.tensor_type.elem_type == _DOUBLE:
            value.type.tensor_type.elem_type = _FLOAT
            changed += 1
    changed += _graph_places(graph, change=True)
    if changed:
        del graph.value_info[:]  # stale double types; shape inference recomputes them
    return changed


def _graph_places(graph, change: bool) -> int:
    from onnx import numpy_helper

    count = 0
    for index, tensor in enumerate(graph.initializer):
        if tensor.data_type == _DOUBLE:
            count += 1
            if change:
                graph.initializer[index].CopyFrom(_narrowed(tensor, numpy_helper))
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == attribute.TENSOR and attribute.t.data_type == _DOUBLE:
                count += 1  # Constant's value, ConstantOfShape's fill
                if change:
                    attribute.t.CopyFrom(_narrowed(attribute.t, numpy_helper))
            elif attribute.name in ("to", "dtype") and attribute.type == attribute.INT and attribute.i == _DOUBLE:
                count += 1  # Cast(to=double), RandomNormal / EyeLike (dtype=double)
                if change:
                    attribute.i = _FLOAT
            for sub in ([attribute.g] if attribute.type == attribute.GRAPH else []) + list(attribute.graphs):
                count += _graph_places(sub, change)
                if change:
                    for value in list(sub.input) + list(sub.output):
                        if value.type.tensor_type.elem_type == _DOUBLE:
                            value.type.tensor_type.elem_type = _FLOAT
                    del sub.value_info[:]
    return count


def _narrowed(tensor, numpy_helper):
    import numpy as np

    with np.errstate(over="ignore"):
        return numpy_helper.from_array(numpy_helper.to_array(tensor).astype(np.float32), tensor.name)
