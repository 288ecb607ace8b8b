"""Which ops of a .tflite file LiteRT's default delegate (XNNPACK) takes, and what the others are.

What explains most host-latency differences between TFLite variants of one model: XNNPACK runs the ops it
takes with its own kernels, the rest run on LiteRT's builtin kernels (slower here, and the graph is cut into
several delegate partitions). An int8-weights (dynamic range) conv whose activations are float and weights int8
is a "hybrid" op; a float op whose weights come out of a DEQUANTIZE or DENSIFY reads weights decoded at load.

LiteRT's Python interpreter does not expose the execution plan: after delegation its node list holds the
model's own nodes followed by one DELEGATE node per partition, whose inputs and outputs are the tensors that
cross the partition's border. A model node runs outside the delegate exactly when a tensor it writes crosses a
border into a partition (a delegate input), is a graph output no partition writes, or is read by another node
outside: a delegated node's tensor is either a partition output or internal to its partition.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

DECODERS = ("DEQUANTIZE", "DENSIFY")  # ops that turn stored weights into float ones


@dataclass(frozen=True)
class Delegation:
    ops: int  # the model's own nodes
    delegated: int
    partitions: int  # DELEGATE nodes (XNNPACK takes the graph in this many pieces)
    outside: dict[str, int] = field(default_factory=dict)  # op type -> nodes on the builtin kernels
    hybrid: dict[str, int] = field(default_factory=dict)  # of those: float activations x integer weights
    decoded_weights: dict[str, int] = field(default_factory=dict)  # of those: weights from a DEQUANTIZE / DENSIFY
    decoded_from: dict[str, int] = field(default_factory=dict)  # stored type of those weights -> decoder nodes

    def to_json(self) -> dict:
        return {"ops": self.ops, "delegated": self.delegated, "partitions": self.partitions,
                **{k: v for k, v in (("outside", self.outside), ("hybrid", self.hybrid),
                                     ("decoded_weights", self.decoded_weights), ("decoded_from", self.decoded_from)) if v}}


def delegation(path: str | Path) -> Delegation:
    """How the default delegate splits ``path`` (one thread, as deploykit times it)."""
    from deploykit.formats.litert_facade import interpreter as open_interpreter

    interpreter = open_interpreter(path, threads=1, delegates=True)
    interpreter.allocate_tensors()  # applies the default delegate
    nodes = interpreter._get_ops_details()
    model = [n for n in nodes if n["op_name"] != "DELEGATE"]
    borders = [n for n in nodes if n["op_name"] == "DELEGATE"]
    if not borders:
        return _counted(model, set(range(len(model))), 0, interpreter, path)
    into = {t for n in borders for t in n["inputs"]}
    written_by_partition = {t for n in borders for t in n["outputs"]}
    graph_outputs = {d["index"] for d in interpreter.get_output_details()}
    outside: set[int] = set()
    read_outside: set[int] = set()
    for position in reversed(range(len(model))):  # node order is topological: readers come after writers
        writes = set(model[position]["outputs"])
        if writes & written_by_partition:
            continue
        if writes & (into | read_outside | (graph_outputs - written_by_partition)):
            outside.add(position)
            read_outside.update(t for t in model[position]["inputs"] if t >= 0)
    return _counted(model, outside, len(borders), interpreter, path)


def _counted(model: list[dict], outside: set[int], partitions: int, interpreter, path) -> Delegation:
    types = {d["index"]: d["dtype"] for d in interpreter.get_tensor_details()}
    computed = {t for n in model for t in n["outputs"]} | {d["index"] for d in interpreter.get_input_details()}
    weight_decoders = [n for n in model if n["op_name"] in DECODERS and n["inputs"] and n["inputs"][0] not in computed]
    decoders = {t: n for n in weight_decoders for t in n["outputs"]}
    hybrid, decoded, decoded_from = Counter(), Counter(), Counter()
    for position in outside:
        node = model[position]
        inputs = [t for t in node["inputs"] if t >= 0]
        if node["op_name"] in DECODERS or len(inputs) < 2:
            continue
        activation, weights = inputs[0], inputs[1]
        if _is_float(types.get(activation)) and not _is_float(types.get(weights)):
            hybrid[node["op_name"]] += 1
        elif weights in decoders:
            decoded[node["op_name"]] += 1
    stored = _stored_types(path, [n["inputs"][0] for n in weight_decoders])
    for node in weight_decoders:
        decoded_from[stored.get(node["inputs"][0], "?")] += 1
    return Delegation(ops=len(model), delegated=len(model) - len(outside), partitions=partitions,
                      outside=dict(sorted(Counter(model[p]["op_name"] for p in outside).items())),
                      hybrid=dict(sorted(hybrid.items())), decoded_weights=dict(sorted(decoded.items())),
                      decoded_from=dict(sorted(decoded_from.items())))


def _stored_types(path, tensors: list[int]) -> dict[int, str]:
    """The file's own type of some tensors of subgraph 0 (the interpreter reports int4 as int8)."""
    if not tensors:
        return {}
    from deploykit.formats.litert_facade import schema

    names = {v: k.lower() for k, v in vars(schema().TensorType).items() if not k.startswith("_") and isinstance(v, int)}
    graph = schema().Model.GetRootAs(bytearray(Path(path).read_bytes()), 0).Subgraphs(0)
    return {t: names.get(graph.Tensors(t).Type(), "?") for t in tensors if 0 <= t < graph.TensorsLength()}


def _is_float(dtype) -> bool:
    return dtype is not None and _name(dtype).startswith("float")


def _name(dtype) -> str:
    return getattr(dtype, "__name__", None) or str(dtype)


def explain(variant: Delegation, fp32: Delegation) -> str | None:
    """What the delegate does differently with ``variant`` than with the ``fp32`` file, in words; None when it
    takes as much of both (the difference is then inside its kernels, which this cannot see)."""
    left, base_left = variant.ops - variant.delegated, fp32.ops - fp32.delegated
    if left <= base_left and variant.partitions <= fp32.partitions:
        return None
    parts = []
    if variant.hybrid:
        parts.append(f"{_ops(variant.hybrid)} are hybrid (integer weights, float activations), which XNNPACK does "
                     "not take: LiteRT's builtin hybrid kernels quantize their activations on every call")
    if variant.decoded_weights:
        stored = ", ".join(variant.decoded_from) or "stored"
        decoders = ", ".join(f"{variant.outside[op]} {op}" for op in DECODERS if op in variant.outside) or "the decoders"
        parts.append(f"{decoders} of {stored} weights, which XNNPACK does not take, and the "
                     f"{_ops(variant.decoded_weights)} reading their output run on LiteRT's builtin float kernels")
    explained = set(variant.hybrid) | set(variant.decoded_weights) | set(DECODERS)
    others = {op: n for op, n in variant.outside.items() if op not in explained}
    if others:
        parts.append(f"{_ops(others)} XNNPACK does not take")
    return (f"XNNPACK leaves {left} of {variant.ops} ops to LiteRT's builtin kernels (fp32: {base_left} of {fp32.ops}) "
            f"and runs the rest in {variant.partitions} pieces (fp32: {fp32.partitions}): " + "; ".join(parts))


def _ops(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {op}" for op, n in counts.items())
