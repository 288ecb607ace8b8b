"""``scalar_division``: an ONNX rewrite the ONNX -> TFLite ladder applies as a remedy (``converters.onnx2tf_remedies``)."""

from __future__ import annotations

from deploykit.passes.onnx_graph import constant_values, fresh, scalar_divisor_sites
from deploykit.passes.registry import register_pass


@register_pass("scalar_division", stage="onnx")
def scalar_division(model) -> int:
    """Div by one float constant, rewritten as a Mul by its reciprocal.

    Given:  %y = Div(%x, %c)             (%c a scalar float constant, not zero)
    Result: %y = Mul(%x, %r)             (%r = 1 / %c, a new initializer of %c's dtype)

    onnx2tf checks a Div's accuracy against ONNX Runtime and, where it corrects it, builds a Keras model
    whose outputs are the Div's inputs; a constant divisor is a Python float there, and onnx2tf stops
    with "Output tensors of a Functional model must be the output of a TensorFlow `Layer` ... Found:
    4.898979663848877" (a MobileViT exported by torch's TorchScript exporter: attention scores divided by
    sqrt(24)). A Mul takes another path. Not bit-exact: ``x * (1/c)`` is within an ulp or two of ``x / c``,
    far inside the fp32 bound, and the ladder checks the candidate's parity like any other.
    """
    from onnx import numpy_helper

    graph = model.graph
    sites = scalar_divisor_sites(graph)
    if not sites:
        return 0
    divisors = constant_values(graph, {graph.node[i].input[1] for i in sites})
    taken = {n.name for n in graph.node} | {o for n in graph.node for o in n.output} | {i.name for i in graph.initializer}
    for index in sorted(sites):
        node = graph.node[index]
        divisor = divisors[node.input[1]]
        name = fresh(f"{node.input[1]}/reciprocal", taken)
        graph.initializer.append(numpy_helper.from_array((1.0 / divisor).astype(divisor.dtype), name))
        node.op_type = "Mul"
        node.input[1] = name
    return len(sites)
