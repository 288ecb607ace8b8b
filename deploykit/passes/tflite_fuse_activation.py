"""``fuse_activation`` on a .tflite flatbuffer: fold a standalone activation into the conv before it.

Measured (bench/results/passes_survey.md): TFLiteConverter, litert-torch and onnx2tf already fuse
every Conv / DepthwiseConv / Dense + ReLU / ReLU6 / clip(0, 6) / clip(-1, 1) of the zoo networks and
the probe nets, so ``auto`` does not run this pass on any TFLite path; ``--passes fuse_activation``
runs it, and the ``--strict-graph`` check reports what it would fuse. It is tested on graphs with
the activation split out.
"""

from __future__ import annotations

from deploykit.formats.tflite import graph as tflite_graph
from deploykit.passes.registry import PassResult, register_pass


@register_pass(
    "fuse_activation",
    stage="tflite",
    needed_for=(),
    summary="Fuse a ReLU / ReLU6 / clip that follows a conv or fully-connected op into that op.",
)
def fuse_activation_tflite(data: bytes, context=None) -> PassResult:
    """Fuse a ReLU / ReLU6 / clip that follows a conv or fully-connected op into that op (TFLite).

    Given:
        %1 = CONV_2D(%x, %w, %b, fused_activation_function=NONE)     # or DEPTHWISE_CONV_2D, FULLY_CONNECTED
        %2 = RELU6(%1)                  # or RELU, RELU_N1_TO_1, MAXIMUM(%1, 0) [+ MINIMUM(., 6)], RELU + MINIMUM(6)
    Result:
        %2 = CONV_2D(%x, %w, %b, fused_activation_function=RELU6)

    Applies when %1 feeds only the activation and is not a model output, and the activation is one
    the conv kernels apply (RELU, RELU6, RELU_N1_TO_1). A clip with other bounds (e.g. 0..4) keeps
    its MINIMUM; only a RELU in front of it is fused. Float models only: it runs on the fp32
    artifact, before quantized variants are derived from it.
    """
    graph = tflite_graph.read(data)
    items, removed = [], set()
    for index in range(len(graph.graph.operators)):
        if index in removed or graph.op_type(index) not in tflite_graph.CONV_LIKE:
            continue
        if graph.fused_activation(index) != "NONE":
            continue
        found = tflite_graph.activation_after(graph, index)
        if not found:
            continue
        kind, ops, final, label = found
        if kind is None:  # a clip no fused activation equals: fuse only a leading RELU, if any
            continue
        op = graph.graph.operators[index]
        op.builtinOptions.fusedActivationFunction = tflite_graph.activation_code(kind)
        op.outputs = [final]
        removed.update(ops)
        items.append(f"{graph.op_type(index)} {graph.tensor_name(final)} + {label}")
    if not items:
        return PassResult(data)
    graph.graph.operators = [op for i, op in enumerate(graph.graph.operators) if i not in removed]
    return PassResult(tflite_graph.write(graph), tuple(items))
