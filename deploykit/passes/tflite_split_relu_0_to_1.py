"""``split_relu_0_to_1`` on a .tflite flatbuffer: RELU_0_TO_1 written as RELU then MINIMUM(1).

TFLiteConverter fuses ``min(max(x, 0), 1)`` into RELU_0_TO_1 (builtin 152, TFLite 2.14), and onnx2tf's HardSigmoid
(``Clip(x * 0.2 + 0.5, 0, 1)``, every squeeze-excitation block of PP-OCR's and PicoDet's LCNet backbones) comes out
that way. The TFLite GPU delegate's compatibility rules (``gpu_compatibility.cc``) have no case for it ("Not supported
op RELU_0_TO_1"), so each one cuts the GPU graph and runs on the CPU: ten cuts in PP-OCRv4's detector. LiteRT's
newer ML Drift GPU accelerator takes it; RELU and MINIMUM run on both.
"""

from __future__ import annotations

import numpy as np

from deploykit.formats.tflite import graph as tflite_graph
from deploykit.passes import tflite_edit as edit
from deploykit.passes.registry import PassResult, register_pass


@register_pass(
    "split_relu_0_to_1",
    stage="tflite",
    needed_for={("*", "tflite")},
    summary="RELU_0_TO_1 -> RELU + MINIMUM(1), which every GPU delegate takes.",
)
def split_relu_0_to_1(data: bytes, context=None) -> PassResult:
    """RELU_0_TO_1 -> RELU + MINIMUM(1), which every GPU delegate takes.

    Given:
        %y = RELU_0_TO_1(%x)
    Result:
        %r = RELU(%x);  %y = MINIMUM(%r, 1.0)

    Float32 tensors only (the pass runs on the fp32 artifact, before quantized variants are made from it). Exact:
    LiteRT computes RELU_0_TO_1 as min(max(x, 0), 1), which is what the two ops compute, for every value but NaN.
    """
    g = tflite_graph.read(data)
    replacements, items, one = {}, [], None
    for index in range(len(g.graph.operators)):
        if g.op_type(index) != "RELU_0_TO_1":
            continue
        op = g.graph.operators[index]
        x, out = int(op.inputs[0]), int(op.outputs[0])
        if g.graph.tensors[x].type != 0 or g.graph.tensors[out].type != 0:
            continue
        label = g.tensor_name(out)
        if one is None:
            one = edit.new_tensor(g, "relu_0_to_1/one", [], 0, np.array(1.0, dtype=np.float32))
        relu = edit.new_tensor(g, f"{label}/relu", list(g.graph.tensors[out].shape), 0)
        if g.graph.tensors[out].shapeSignature is not None:
            g.graph.tensors[relu].shapeSignature = list(g.graph.tensors[out].shapeSignature)
        replacements[index] = [edit.new_op(g, "RELU", [x], [relu]),
                               edit.new_op(g, "MINIMUM", [relu, one], [out], "MaximumMinimumOptions")]
        items.append(f"RELU_0_TO_1 {label} -> RELU + MINIMUM(1)")
    if not items:
        return PassResult(data)
    edit.replace_ops(g, replacements)
    return PassResult(tflite_graph.write(g), tuple(items))
