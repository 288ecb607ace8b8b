"""The artifact checker behind ``--strict-graph``: what the written file still computes unfolded.

What counts, per target (also in docs/quantization.md):

TFLite
    fused activation     a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED with a fused activation.
    unfused activation   such an op with ``fused_activation_function=NONE`` whose output feeds only
                         a RELU / RELU6 / RELU_N1_TO_1, a RELU + MINIMUM(6), or a MAXIMUM/MINIMUM clip
                         with exactly those bounds: the kernels could have applied it.
    unfolded batchnorm   such an op (no fused activation) whose output feeds only a MUL or ADD with
                         a constant operand: a scale or shift that belongs in the weights and bias.
Core ML
    fused activation     conv / linear / matmul whose output feeds only an activation op (relu,
                         relu6, clip, sigmoid, tanh, silu, ...). ML Programs have no fused form; the
                         Core ML compiler fuses such pairs on device, so they count as fused.
    unfused activation   conv / linear / matmul followed by an activation written as maximum /
                         minimum with constants, which the compiler sees as elementwise math.
    unfolded batchnorm   a batch_norm, or a mul / add with a constant, right after conv / linear /
                         matmul whose output feeds nothing else.
A clip that no fused activation equals (e.g. 0..4 in TFLite) is a note, not a failure. Core ML
checks look through one layout op (transpose, expand_dims, squeeze, reshape) after the conv
(``check_coreml``). Each target runs its own check (``Target.graph_check``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GraphReport:
    fused_activations: tuple[str, ...] = ()
    unfused_activations: tuple[str, ...] = ()
    unfolded_batchnorms: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.unfused_activations and not self.unfolded_batchnorms

    def to_json(self) -> dict:
        return {
            "name": "graph_check",
            "fused_activations": len(self.fused_activations),
            "fused_activation_items": list(self.fused_activations),
            "unfused_activations": list(self.unfused_activations),
            "unfolded_batchnorms": list(self.unfolded_batchnorms),
            "notes": list(self.notes),
            "ok": self.ok,
        }


def check_tflite(data: bytes) -> GraphReport:
    from deploykit.formats.tflite import graph as tflite_graph

    graph = tflite_graph.read(data)
    fused, unfused, unfolded, notes = [], [], [], []
    for index in range(len(graph.graph.operators)):
        kind = graph.op_type(index)
        if kind not in tflite_graph.CONV_LIKE:
            continue
        name = f"{kind} {graph.tensor_name(graph.output(index))}"
        activation = graph.fused_activation(index)
        if activation not in (None, "NONE"):
            fused.append(f"{name} + {activation}")
            continue
        found = tflite_graph.activation_after(graph, index)
        if found:
            fusable, _, _, label = found
            (unfused if fusable else notes).append(
                f"{name} -> {label}" + ("" if fusable else ": no fused activation computes this clip"))
            continue
        consumer = graph.sole_consumer(graph.output(index))
        if consumer is not None and graph.op_type(consumer) in ("MUL", "ADD"):
            other = graph.other_input(consumer, graph.output(index))
            if other is not None and graph.is_constant(other):
                unfolded.append(f"{name} -> {graph.op_type(consumer)} by a constant")
    return GraphReport(tuple(fused), tuple(unfused), tuple(unfolded), tuple(notes))
