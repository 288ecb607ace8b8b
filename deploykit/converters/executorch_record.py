"""What one ExecuTorch export produced (``PteRecord``), and where its ops run: counted on the Edge program."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from deploykit.core.types import TensorSpec

BACKEND_TITLES = {"xnnpack": "XNNPACK", "coreml": "Core ML delegate", "portable": "portable kernels"}
# Edge op names (``aten.<op>.<overload>``) whose portable kernels are the slow ones: naive loops over
# every multiply-accumulate, single-threaded, no SIMD.
CONVOLUTIONS = ("aten.convolution.", "aten.conv1d.", "aten.conv2d.", "aten.conv3d.", "aten.conv_transpose")
MATMULS = ("aten.mm.", "aten.addmm.", "aten.bmm.", "aten.baddbmm.", "aten.matmul.", "aten.linear.")


@dataclass(frozen=True)
class PteRecord:
    """What one export produced: the file, and where its ops run.

    ``ops_total`` = ``ops_delegated`` + ``ops_portable``: ATen ops of the Edge program the partitioner
    saw; ``delegates``: the backend id of each delegate call; ``slow_ops``: convolutions and matrix
    products left to portable kernels ({"convolution": n, "matmul": m}), with ``slow_warning`` saying so.
    ``verification``: how this machine can check the program's numbers.
    """

    path: str
    backend: str
    scheme: str
    size_bytes: int
    export_seconds: float
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    ops_total: int
    ops_delegated: int
    ops_portable: int
    delegated_ops: dict[str, int]
    portable_ops: dict[str, int]
    delegates: tuple[str, ...]
    slow_ops: dict[str, int]
    slow_warning: str | None
    verification: str
    quantization: dict[str, Any] | None = None
    weight_bytes: dict[str, int] = field(default_factory=dict)  # stored dtype -> bytes, read back from the file
    notes: tuple[str, ...] = ()

    @property
    def delegated_share(self) -> float:
        return self.ops_delegated / self.ops_total if self.ops_total else 0.0

    @property
    def slow(self) -> bool:
        return self.slow_warning is not None

    def sentences(self) -> tuple[str, ...]:
        """What a report prints about this program, the slow-kernel warning first."""
        split = (f"{self.ops_delegated} of {self.ops_total} ops ({100 * self.delegated_share:.0f} %) delegated"
                 f"{' to ' + ', '.join(sorted(set(self.delegates))) if self.delegates else ''}, "
                 f"{self.ops_portable} in portable kernels")
        return tuple(s for s in (self.slow_warning, split, self.verification, *self.notes) if s)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path, "backend": self.backend, "scheme": self.scheme, "size_bytes": self.size_bytes,
            "export_seconds": round(self.export_seconds, 2),
            "inputs": [t.to_json() for t in self.inputs], "outputs": [t.to_json() for t in self.outputs],
            "ops_total": self.ops_total, "ops_delegated": self.ops_delegated, "ops_portable": self.ops_portable,
            "delegated_share": round(self.delegated_share, 4), "delegated_ops": dict(self.delegated_ops),
            "portable_ops": dict(self.portable_ops), "delegates": list(self.delegates),
            "slow_ops": dict(self.slow_ops), "slow_warning": self.slow_warning, "verification": self.verification,
            "quantization": self.quantization, "weight_bytes": dict(self.weight_bytes), "notes": list(self.notes),
        }


@dataclass(frozen=True)
class OpCounts:
    delegated: Counter
    portable: Counter
    delegates: tuple[str, ...]


def count_ops(edge) -> OpCounts:
    """Ops of an EdgeProgramManager's forward: those inside each delegate call's lowered module (before
    the backend's own fusions) and those left outside, which run in portable kernels."""
    program = edge.exported_program()
    delegated, portable, delegates = Counter(), Counter(), []
    for node in program.graph.nodes:
        if node.op != "call_function" or _is_getitem(node.target):
            continue
        if "call_delegate" in str(node.target):
            lowered = getattr(program.graph_module, node.args[0].target)
            delegates.append(str(lowered.backend_id))
            for inner in lowered.original_module.graph.nodes:
                if inner.op == "call_function" and not _is_getitem(inner.target):
                    delegated[op_name(inner.target)] += 1
        else:
            portable[op_name(node.target)] += 1
    return OpCounts(delegated, portable, tuple(delegates))


def op_name(target) -> str:
    """``aten.convolution.default`` for an Edge or ATen op, the function name otherwise."""
    return getattr(target, "__name__", None) or str(target)


def _is_getitem(target) -> bool:
    import operator

    return target is operator.getitem


def slow_warning(name: str, slow: dict[str, int], backend: str) -> str | None:
    if not slow:
        return None
    parts = []
    if slow.get("convolution"):
        parts.append(f"{slow['convolution']} convolution{'s' if slow['convolution'] != 1 else ''}")
    if slow.get("matmul"):
        parts.append(f"{slow['matmul']} matrix multiplication{'s' if slow['matmul'] != 1 else ''} "
                     "(linear layers included)")
    why = ("the portable backend delegates nothing; --executorch-backend xnnpack runs them in XNNPACK"
           if backend == "portable" else
           f"the {BACKEND_TITLES[backend]} partitioner did not take them; rerun with --verbose for its reasons")
    return (f"{name} runs {' and '.join(parts)} in ExecuTorch's portable kernels, which are slow: plain reference "
            f"loops, single-threaded and without SIMD, often 10-100x slower than XNNPACK ({why})")


def export_notes(options, inspection, counts: OpCounts) -> list[str]:
    notes = []
    if options.scheme == "fp16" and options.backend == "xnnpack":
        total = sum(inspection.weight_bytes.values())
        fp32 = inspection.weight_bytes.get("float32", 0)
        notes.append("fp16: the program computes in half precision inside XNNPACK, between float32 casts at its "
                     "inputs and outputs (two portable kernel calls)")
        casts = counts.portable.get("dim_order_ops._to_dim_order_copy.default", 0)
        if casts > 2:
            notes.append(f"fp16: {casts - 2} more dtype casts run in portable kernels inside the model (an op that "
                         f"computes in float32), splitting it into {len(counts.delegates)} XNNPACK delegates")
        if total and fp32:
            notes.append(f"fp16: {100 * fp32 / total:.0f} % of the stored weights stay float32: ExecuTorch's XNNPACK "
                         "serializer writes convolution weights and biases as float32 (XNNPACK converts them to fp16 "
                         "when it packs them at load), so the file does not halve; linear weights are stored fp16")
    if options.scheme == "int8" and counts.portable:
        left = ", ".join(f"{op} x{n}" for op, n in counts.portable.most_common(6))
        notes.append(f"int8: ops outside XNNPACK run in float portable kernels between dequantize/quantize: {left}")
    notes.extend(inspection.notes)
    return notes


def slow_ops(counts: OpCounts) -> dict[str, int]:
    """Convolutions and matrix products left to portable kernels: {"convolution": n, "matmul": m}, zeros left out."""
    slow = {"convolution": sum(n for op, n in counts.portable.items() if op.startswith(CONVOLUTIONS)),
            "matmul": sum(n for op, n in counts.portable.items() if op.startswith(MATMULS))}
    return {k: v for k, v in slow.items() if v}
