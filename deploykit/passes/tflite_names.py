"""``shorten_names`` on a .tflite flatbuffer: keep each internal tensor's own name, drop the
fused-op history the converters append to it.

TFLiteConverter names a fused tensor after every op it absorbed, joined by ``;``
(``block_13_depthwise_relu/Relu6;block_13_depthwise_BN/batchnorm/add_1;...``), and litert-torch
writes full Python module paths. On MobileNetV2 those strings are 31 KB (Keras) and 104 KB
(PyTorch) of a 3.5 MB int8 file: 1-3 % of the artifact, no use at run time, and apps call the
model through its signature, whose names are kept.
"""

from __future__ import annotations

from deploykit.formats.tflite import graph as tflite_graph
from deploykit.passes.registry import PassResult, register_pass

MAX_LENGTH = 96


@register_pass(
    "shorten_names",
    stage="tflite",
    needed_for={("*", "tflite")},
    summary="Cut internal tensor names to their first segment (the converters' fused-op history is dropped).",
)
def shorten_names(data: bytes, context=None) -> PassResult:
    """Cut internal tensor names to their first segment (the converters' fused-op history is dropped).

    Given:
        tensor "model/block_1_relu/Relu6;model/block_1_bn/add_1;model/block_1_conv/conv2d"
    Result:
        tensor "model/block_1_relu/Relu6"

    Model inputs and outputs and the signature keep their names; a name longer than 96
    characters keeps its last 96 (the op, not the Python package path). Names stay unique, since
    quantizers key calibration statistics by tensor name.
    """
    graph = tflite_graph.read(data)
    keep = set(int(t) for t in list(graph.graph.inputs) + list(graph.graph.outputs))
    used: set[str] = {graph.tensor_name(t) for t in keep}
    saved = 0
    for index, tensor in enumerate(graph.graph.tensors):
        if index in keep:
            continue
        old = graph.tensor_name(index)
        new = _short(old)
        candidate, n = new, 1
        while candidate in used:
            candidate, n = f"{new}_{n}", n + 1
        used.add(candidate)
        if candidate != old:
            saved += len(old.encode()) - len(candidate.encode())
            tensor.name = candidate.encode()
    if saved <= 0:
        return PassResult(data)
    return PassResult(tflite_graph.write(graph), (f"{saved} bytes of tensor names",))


def _short(name: str) -> str:
    first = name.split(";")[0] or name
    if len(first) <= MAX_LENGTH:
        return first
    tail = first[-MAX_LENGTH:]
    cut = tail.find("/")
    return tail[cut + 1:] if 0 <= cut < len(tail) - 1 else tail
