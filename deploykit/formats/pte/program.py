"""Reading an ExecuTorch ``.pte`` program: its execution plan, and where its work runs.

A ``.pte`` is a flatbuffer (``ET12``) whose execution plan is a chain of instructions: a ``KernelCall``
runs one portable (or optimized) kernel named by the plan's operator table (``aten::convolution.out``),
a ``DelegateCall`` hands a span of the graph to a backend (``XnnpackBackend``, ``CoreMLBackend``) as an
opaque payload. The file is read with executorch's own deserializer (no runtime); ``xnnpack`` and
``coreml_delegate`` open the payloads deploykit knows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploykit.core.errors import InputError

# executorch.exir.schema.ScalarType names -> numpy-style dtype names
_SCALAR = {"BYTE": "uint8", "CHAR": "int8", "SHORT": "int16", "INT": "int32", "LONG": "int64", "HALF": "float16",
           "FLOAT": "float32", "DOUBLE": "float64", "BOOL": "bool", "BFLOAT16": "bfloat16", "QINT8": "int8",
           "QUINT8": "uint8", "QINT32": "int32", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64"}


@dataclass(frozen=True)
class DelegateInfo:
    index: int
    backend: str  # the backend id, e.g. XnnpackBackend
    payload_bytes: int
    nodes: dict[str, int] | None  # the backend's own node types when the payload could be decoded

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "backend": self.backend, "payload_bytes": self.payload_bytes,
                "nodes": dict(self.nodes) if self.nodes is not None else None}


@dataclass(frozen=True)
class PteSplit:
    """Where a program's work runs. ``kernel_calls``: portable (or optimized) kernel calls by operator name;
    ``delegate_calls``: calls by backend id; ``delegates``: each delegate's payload and decoded nodes."""

    path: str
    kernel_calls: dict[str, int]
    delegate_calls: dict[str, int]
    delegates: tuple[DelegateInfo, ...]

    @property
    def delegated_nodes(self) -> int | None:
        """Nodes inside the delegates (after the backend's fusions), or None if one could not be decoded."""
        if any(d.nodes is None for d in self.delegates):
            return None
        return sum(sum(d.nodes.values()) for d in self.delegates)

    @property
    def portable_calls(self) -> int:
        return sum(self.kernel_calls.values())

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "kernel_calls": dict(self.kernel_calls), "delegate_calls": dict(self.delegate_calls),
                "delegates": [d.to_json() for d in self.delegates], "delegated_nodes": self.delegated_nodes,
                "portable_calls": self.portable_calls}


def read_pte(path: Path):
    """The deserialized program (``PTEFile``); InputError for anything that is not a whole .pte."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) < 8 or data[4:6] != b"ET":
        raise InputError(f"{path} is not an ExecuTorch program (no ET flatbuffer identifier)",
                         hint="a .pte is what deploykit --to executorch (or to_executorch().buffer) writes")
    from deploykit.formats.executorch_facade import deserialize_pte

    try:
        pte = deserialize_pte(data)
        plan = pte.program.execution_plan
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise InputError(f"{path} is not a readable ExecuTorch program ({len(data)} bytes): {text}",
                         hint="the file is damaged or truncated; export it again") from exc
    if not plan:
        raise InputError(f"{path} has no execution plan (no methods)")
    return pte


def split(path: Path, pte=None, delegate_nodes=None) -> PteSplit:
    """Kernel calls by operator and delegate calls by backend. ``delegate_nodes(backend_id, payload)`` gives
    a delegate's own node counts when the caller can decode its payload (``deploykit.inspection`` does); without
    it no payload is decoded, which is all a runner needs to know where the work runs."""
    path = Path(path)
    pte = pte if pte is not None else read_pte(path)
    plan = plan_of(pte)
    kernels, calls = Counter(), Counter()
    for instruction in instructions(plan):
        args = instruction.instr_args
        kind = type(args).__name__
        if kind == "KernelCall":
            kernels[operator_name(plan.operators[args.op_index])] += 1
        elif kind == "DelegateCall":
            calls[plan.delegates[args.delegate_index].id] += 1
    delegates = []
    for index, delegate in enumerate(plan.delegates):
        data = payload(pte, delegate)
        nodes = delegate_nodes(delegate.id, data) if delegate_nodes is not None and data is not None else None
        delegates.append(DelegateInfo(index, delegate.id, len(data) if data is not None else 0, nodes))
    return PteSplit(str(path), dict(kernels.most_common()), dict(calls.most_common()), tuple(delegates))


def plan_of(pte):
    """The ``forward`` method's execution plan (the first one when none is named so)."""
    plans = pte.program.execution_plan
    return next((p for p in plans if p.name == "forward"), plans[0])


def instructions(plan):
    for chain in plan.chains:
        yield from chain.instructions


def tensor_args(indices, values) -> list[int]:
    """The tensor values among an instruction's arguments, a TensorList's items included (cat, stack)."""
    found = []
    for i in indices:
        kind = type(values[i].val).__name__
        if kind == "Tensor":
            found.append(i)
        elif kind in ("TensorList", "OptionalTensorList"):
            found.extend(int(j) for j in values[i].val.items if j >= 0 and type(values[j].val).__name__ == "Tensor")
    return list(dict.fromkeys(found))


def operator_name(operator) -> str:
    return f"{operator.name}.{operator.overload}" if operator.overload else operator.name


def payload(pte, delegate) -> bytes | None:
    processed = delegate.processed
    if getattr(processed.location, "name", str(processed.location)) == "INLINE":
        data = pte.program.backend_delegate_data
        return bytes(data[processed.index].data) if processed.index < len(data) else None
    return None  # in a segment the deserializer did not move back: not readable here


def dtype_name(tensor) -> str:
    name = getattr(tensor.scalar_type, "name", str(tensor.scalar_type))
    return _SCALAR.get(name, name.lower())
