"""Core ML host latency, estimated from the ML Program itself: an op-count cost model.

No Core ML runtime runs off Apple hardware, so a Core ML artifact's latency in the report is an estimate,
never a measurement. The model reads the program deploykit's numpy evaluator loads
(``runners.coreml_eval.api``) and sums, over its ops,

    MACs / MAC_RATE + bytes read and written / MEMORY_RATE + OP_OVERHEAD_S

MACs (one multiply-accumulate) come from the weight and output shapes of conv, conv_transpose, linear,
matmul, attention and recurrent ops; bytes from the declared shape and type of every tensor an op reads
(weights included) and writes. Ops inside control-flow blocks are counted once: the number of iterations
is only known at run time.

The three constants were fitted once, on this machine, against LiteRT latencies (``deploykit.runners.litert_bench``,
XNNPACK, one thread) of the TFLite twins of the same models: ``bench/coreml_cost_calibration.py``, results
and the error per model in ``bench/results/coreml_cost_calibration.md``. The figure is therefore "how long
this op mix takes on this host's CPU", comparable between variants and with the TFLite figures, not a
device figure. On macOS a figure measured with Core ML itself would replace it (not built).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod
from pathlib import Path

# Fitted by bench/coreml_cost_calibration.py on 13 models (bench/results/coreml_cost_calibration.md: the
# estimate is within 31 % of LiteRT's measured latency on each, 39 % leave-one-out).
MAC_RATE = 4.623e10  # multiply-accumulates per second
MEMORY_RATE = 5.035e10  # bytes read and written per second
OP_OVERHEAD_S = 9.06e-7  # seconds per op

LABEL = "estimate (op-count cost model, no Core ML runtime on this machine)"
SOURCE = "estimate"


@dataclass(frozen=True)
class ProgramCost:
    """What the cost model counts in one ML Program."""

    macs: int
    bytes: int  # read and written by the ops, weights included
    ops: int

    def seconds(self, mac_rate: float = MAC_RATE, memory_rate: float = MEMORY_RATE,
                overhead: float = OP_OVERHEAD_S) -> float:
        return self.macs / mac_rate + self.bytes / memory_rate + self.ops * overhead


def estimate(path: str | Path) -> dict:
    """The latency entry of a Core ML artifact's record: the estimate, what it counted, and its label."""
    from deploykit.runners.coreml_eval.api import cached_program

    loaded = cached_program(path)
    # a pipeline (a detector): its ML Programs; the NMS model's work depends on the boxes and is not modelled
    costs = [program_cost(p) for p in getattr(loaded, "programs", (loaded,))]
    cost = ProgramCost(sum(c.macs for c in costs), sum(c.bytes for c in costs), sum(c.ops for c in costs))
    return {"source": SOURCE, "median_ms": round(cost.seconds() * 1000, 3), "label": LABEL,
            "macs": cost.macs, "bytes": cost.bytes, "ops": cost.ops,
            "calibration": "bench/results/coreml_cost_calibration.md"}


def program_cost(program) -> ProgramCost:
    """MACs, bytes and op count of a loaded ``coreml_eval`` Program (and of its nested blocks)."""
    shapes = {d.name: d for d in program.inputs}
    macs = moved = count = 0
    pending = [(program.steps, program.constants)]
    while pending:
        steps, constants = pending.pop()
        for step in steps:
            shapes.update((o.name, o) for o in step.outputs)
            count += 1
            macs += _macs(step, shapes, constants)
            moved += _bytes(step, shapes, constants)
            pending.extend((block.steps, {**constants, **block.constants}) for block in step.blocks)
            for block in step.blocks:
                shapes.update((d.name, d) for d in block.inputs)
    return ProgramCost(macs=int(macs), bytes=int(moved), ops=count)


def _shape(binding, shapes, constants) -> tuple[int, ...] | None:
    """The shape of one argument: a constant's own, else the declared shape (unknown dimensions as 1)."""
    value = constants.get(binding.name) if binding.name is not None else binding.value
    if value is not None and hasattr(value, "shape"):
        return tuple(value.shape)
    decl = shapes.get(binding.name)
    if decl is None or decl.shape is None:
        return None
    return tuple(1 if d is None else d for d in decl.shape)


def _arg(step, key, shapes, constants) -> tuple[int, ...] | None:
    bindings = step.inputs.get(key)
    return _shape(bindings[0], shapes, constants) if bindings else None


def _flag(step, key, constants) -> bool:
    bindings = step.inputs.get(key)
    if not bindings:
        return False
    value = constants.get(bindings[0].name) if bindings[0].name is not None else bindings[0].value
    try:
        return bool(value.reshape(()).item()) if hasattr(value, "reshape") else bool(value)
    except (TypeError, ValueError):
        return False


def _macs(step, shapes, constants) -> int:
    out = step.outputs[0].shape if step.outputs else None
    out = tuple(1 if d is None else d for d in out) if out is not None else None
    weight = _arg(step, "weight", shapes, constants)
    if step.type == "conv" and weight and out:
        return prod(out) * prod(weight[1:])  # weight [C_out, C_in / groups, *kernel]
    if step.type == "conv_transpose" and weight:
        x = _arg(step, "x", shapes, constants)
        return prod(x) * prod(weight[1:]) if x else 0  # weight [C_in, C_out / groups, *kernel]
    if step.type == "linear" and weight and out and len(weight) == 2:
        return prod(out) * weight[1]
    if step.type == "matmul" and out:
        x = _arg(step, "x", shapes, constants)
        if not x:
            return 0
        inner = x[-2] if _flag(step, "transpose_x", constants) and len(x) >= 2 else x[-1]
        return prod(out) * inner
    if step.type == "scaled_dot_product_attention":
        q, k, v = (_arg(step, key, shapes, constants) for key in ("query", "key", "value"))
        if q and k and v:
            return prod(q[:-1]) * k[-2] * (q[-1] + v[-1])  # Q K^T, then the weights times V
    if step.type in ("lstm", "gru", "rnn"):
        x = _arg(step, "x", shapes, constants)  # [T, B, I]
        per_step = sum(prod(s) for s in (_arg(step, key, shapes, constants) for key in
                       ("weight_ih", "weight_hh", "weight_ih_back", "weight_hh_back")) if s)
        return (prod(x[:2]) if x and len(x) >= 2 else 1) * per_step
    return 0


def _bytes(step, shapes, constants) -> int:
    """Bytes the op reads and writes, each tensor at its declared width; a float weight at the op's
    own float width (an fp16 program computes with fp16 weights, decoded once at load)."""
    width = next((_width(o.dtype) for o in step.outputs if o.dtype.is_float), 4)
    total = 0
    for bindings in step.inputs.values():
        for binding in bindings:
            value = constants.get(binding.name) if binding.name is not None else binding.value
            if value is not None:
                if hasattr(value, "dtype") and hasattr(value, "size"):
                    total += value.size * (width if value.dtype.kind == "f" else value.dtype.itemsize)
                continue
            decl = shapes.get(binding.name)
            if decl is not None and decl.shape is not None:
                total += prod(1 if d is None else d for d in decl.shape) * _width(decl.dtype)
    for decl in step.outputs:
        if decl.shape is not None:
            total += prod(1 if d is None else d for d in decl.shape) * _width(decl.dtype)
    return total


def _width(dtype) -> int:
    if dtype.public is None:
        return 0  # strings and a classifier's dictionary: no tensor data
    if dtype.bits:
        return 1  # sub-byte integers are decoded to one byte each
    return dtype.public.itemsize
