"""A small read/rewrite view of a .tflite flatbuffer's main subgraph for passes and checks."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from deploykit.formats import litert_facade

CONV_LIKE = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# Activation ops a CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED can absorb: TFLite kernels and
# XNNPACK apply exactly these three as fused activations (TANH / SIGN_BIT are in the enum but
# not applied by the conv kernels).
FUSABLE = {"RELU": "RELU", "RELU6": "RELU6", "RELU_N1_TO_1": "RELU_N1_TO_1"}
# Clip bounds that equal a fusable activation.
CLIP_AS = {(0.0, None): "RELU", (0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1"}


@lru_cache(maxsize=1)
def _schema():
    schema = litert_facade.schema()

    return schema


@lru_cache(maxsize=1)
def _enum(kind: str) -> dict[int, str]:
    cls = getattr(_schema(), kind)
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


def activation_code(name: str) -> int:
    return getattr(_schema().ActivationFunctionType, name)


def activation_name(code: int) -> str:
    return _enum("ActivationFunctionType").get(code, str(code))


@dataclass
class Graph:
    """The model object (schema object API) and lookup tables for subgraph 0."""

    model: object

    def __post_init__(self):
        self.graph = self.model.subgraphs[0]
        self.refresh()

    def refresh(self) -> None:
        codes = _enum("BuiltinOperator")
        self.op_types = [codes.get(max(c.builtinCode, c.deprecatedBuiltinCode), "CUSTOM") for c in self.model.operatorCodes]
        self.producer: dict[int, int] = {}
        self.consumers: dict[int, list[int]] = {}
        for index, op in enumerate(self.graph.operators):
            for t in _list(op.outputs):
                self.producer[t] = index
            for t in _list(op.inputs):
                if t >= 0:
                    self.consumers.setdefault(t, []).append(index)
        self.graph_outputs = set(_list(self.graph.outputs))

    def op_type(self, index: int) -> str:
        return self.op_types[self.graph.operators[index].opcodeIndex]

    def tensor_name(self, t: int) -> str:
        name = self.graph.tensors[t].name
        return name.decode() if isinstance(name, bytes) else str(name)

    def output(self, index: int) -> int:
        return _list(self.graph.operators[index].outputs)[0]

    def sole_consumer(self, t: int) -> int | None:
        users = self.consumers.get(t, [])
        return users[0] if len(users) == 1 and t not in self.graph_outputs else None

    def fused_activation(self, index: int) -> str | None:
        options = self.graph.operators[index].builtinOptions
        code = getattr(options, "fusedActivationFunction", None)
        return None if code is None else activation_name(code)

    def is_constant(self, t: int) -> bool:
        """A weight: stored in a buffer, or a DEQUANTIZE of a stored tensor (fp16 / int8 weights)."""
        if t in self.producer:
            op = self.producer[t]
            return self.op_type(op) == "DEQUANTIZE" and self.is_constant(_list(self.graph.operators[op].inputs)[0])
        buffer = self.model.buffers[self.graph.tensors[t].buffer]
        return (buffer.data is not None and len(buffer.data) > 0) or (getattr(buffer, "offset", 0) or 0) > 1

    def scalar(self, t: int) -> float | None:
        """The value of a constant one-element float tensor, else None."""
        import numpy as np

        if t in self.producer:
            return None
        tensor = self.graph.tensors[t]
        buffer = self.model.buffers[tensor.buffer]
        if buffer.data is None or tensor.type != 0:  # float32 only
            return None
        values = np.frombuffer(bytes(bytearray(buffer.data)), dtype=np.float32)
        return float(values[0]) if values.size == 1 else None

    def other_input(self, op_index: int, t: int) -> int | None:
        inputs = [x for x in _list(self.graph.operators[op_index].inputs) if x >= 0]
        others = [x for x in inputs if x != t]
        return others[0] if len(others) == 1 else None


def _list(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]


def read(data: bytes) -> Graph:
    from deploykit.formats.tflite.flatbuffer import read_model

    return Graph(read_model(data))


def write(graph: Graph) -> bytes:
    from deploykit.formats.tflite.flatbuffer import write_model

    # Buffers stored after the flatbuffer (offset/size, used by ai-edge-quantizer and for models
    # over 2 GB) would be lost by a re-pack: passes run on converter output, before quantization.
    if any((getattr(b, "offset", 0) or 0) > 1 for b in graph.model.buffers):
        raise ValueError("cannot rewrite a .tflite whose buffers live outside the flatbuffer")
    return write_model(graph.model)


def activation_after(g: Graph, op_index: int):
    """The activation right after op ``op_index``, as (fusable name or None, op indices, final tensor, label).

    Recognizes a single RELU / RELU6 / RELU_N1_TO_1 op, RELU then MINIMUM(6), and clips written as
    MAXIMUM(x, a) and/or MINIMUM(x, b) with constant scalar bounds. The name is None when the
    activation exists but no fused activation computes it (e.g. clip(0, 4)); only its RELU part
    (if any) is then fusable and reported as such.
    """
    first = g.sole_consumer(g.output(op_index))
    if first is None:
        return None
    kind = g.op_type(first)
    if kind in FUSABLE:
        second = g.sole_consumer(g.output(first))
        if kind == "RELU" and second is not None and g.op_type(second) == "MINIMUM":
            other = g.other_input(second, g.output(first))
            if other is not None and g.scalar(other) == 6.0:
                return "RELU6", [first, second], g.output(second), "RELU + MINIMUM(6)"
        return FUSABLE[kind], [first], g.output(first), kind
    if kind not in ("MAXIMUM", "MINIMUM"):
        return None
    ops, bounds, tensor = [], {}, g.output(op_index)
    current = first
    while current is not None and g.op_type(current) in ("MAXIMUM", "MINIMUM") and len(ops) < 2:
        other = g.other_input(current, tensor)
        value = g.scalar(other) if other is not None else None
        side = "lo" if g.op_type(current) == "MAXIMUM" else "hi"
        if value is None or side in bounds:
            break
        bounds[side] = value
        ops.append(current)
        tensor = g.output(current)
        current = g.sole_consumer(tensor)
    if not ops:
        return None
    key = (bounds.get("lo"), bounds.get("hi"))
    label = f"clip({key[0]}, {key[1]})"
    return CLIP_AS.get(key), ops, tensor, label
