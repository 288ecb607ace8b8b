"""ExecuTorch ``.pte`` programs: one layer per kernel call, and per op inside the delegates that can be decoded.

A ``.pte`` is a flatbuffer (``ET12``) whose execution plan is a chain of instructions: a ``KernelCall``
runs one portable (or optimized) kernel named by the plan's operator table (``aten::convolution.out``),
a ``DelegateCall`` hands a span of the graph to a backend (``XnnpackBackend``, ``CoreMLBackend``) as an
opaque payload. deploykit reads the file with ``executorch.exir._serialize._program.deserialize_pte_binary``
(no runtime), and opens the payloads it knows:

- XNNPACK: the payload is an ``XH00`` header, an ``XNNGraph`` flatbuffer and constant data. The graph is
  turned to JSON with the ``flatc`` and ``schema.fbs`` that ship in the executorch wheel, so every
  XNNPACK node is a layer with its shapes, mult-adds and weights (stored bytes as the delegate keeps them).
- Core ML: the payload is a flattened directory holding ``model.mlpackage``; it is unpacked to a
  temporary folder and inspected with the Core ML walker.

Other delegates are one opaque layer each, with a note. ``split`` gives what ``deploykit inspect``
shows about where ops run: delegate calls by backend id, kernel calls by operator name.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from deploykit.core.errors import InputError
from deploykit.inspection.graph import GraphBuilder
from deploykit.inspection.model import Inspection, TensorInfo
from deploykit.inspection.rules import conv_layer_type, conv_macs, matmul_macs, transposed_conv_macs

# executorch.exir.schema.ScalarType names -> numpy-style dtype names
_SCALAR = {"BYTE": "uint8", "CHAR": "int8", "SHORT": "int16", "INT": "int32", "LONG": "int64", "HALF": "float16",
           "FLOAT": "float32", "DOUBLE": "float64", "BOOL": "bool", "BFLOAT16": "bfloat16", "QINT8": "int8",
           "QUINT8": "uint8", "QINT32": "int32", "UINT16": "uint16", "UINT32": "uint32", "UINT64": "uint64"}
_XNN_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "qint8": "int8", "quint8": "uint8",
               "qint32": "int32", "qcint8": "int8", "qcint32": "int32", "qcint4": "int4", "qdint8": "int8",
               "qbint4": "int4", "qpint8": "int8", "int32": "int32", "pfp32": "float32"}
_XNN_INVALID = 0xFFFFFFFF
_XNN_CONV = ("XNNConv2d", "XNNDepthwiseConv2d")
_XNN_OUTPUT_FIELDS = ("output_id", "output1_id", "output2_id", "output3_id", "output4_id")
_XNN_WEIGHT_FIELDS = ("filter_id", "bias_id")


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
    from executorch.exir._serialize._program import deserialize_pte_binary

    try:
        pte = deserialize_pte_binary(data)
        plan = pte.program.execution_plan
    except Exception as exc:
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise InputError(f"{path} is not a readable ExecuTorch program ({len(data)} bytes): {text}",
                         hint="the file is damaged or truncated; export it again") from exc
    if not plan:
        raise InputError(f"{path} has no execution plan (no methods)")
    return pte


def split(path: Path, pte=None) -> PteSplit:
    path = Path(path)
    pte = pte if pte is not None else read_pte(path)
    plan = _plan(pte, path)
    kernels, calls = Counter(), Counter()
    for instruction in _instructions(plan):
        args = instruction.instr_args
        kind = type(args).__name__
        if kind == "KernelCall":
            kernels[_operator_name(plan.operators[args.op_index])] += 1
        elif kind == "DelegateCall":
            calls[plan.delegates[args.delegate_index].id] += 1
    delegates = []
    for index, delegate in enumerate(plan.delegates):
        payload = _payload(pte, delegate)
        nodes = None
        if delegate.id == "XnnpackBackend" and payload is not None:
            with contextlib.suppress(Exception):
                nodes = dict(Counter(n["xnode_union_type"] for n in xnnpack_graph(payload)["xnodes"]).most_common())
        elif delegate.id == "CoreMLBackend" and payload is not None:
            found = _coreml_inspection(payload)
            nodes = found.op_histogram if found is not None else None
        delegates.append(DelegateInfo(index, delegate.id, len(payload) if payload is not None else 0, nodes))
    return PteSplit(str(path), dict(kernels.most_common()), dict(calls.most_common()), tuple(delegates))


def inspect(path: Path) -> Inspection:
    path = Path(path)
    pte = read_pte(path)
    plan = _plan(pte, path)
    builder = GraphBuilder(str(path), "pte")
    values = plan.values

    def key(index: int) -> str:
        return f"v{index}"

    for index, evalue in enumerate(values):
        tensor = evalue.val
        if type(tensor).__name__ == "Tensor" and tensor.data_buffer_idx > 0:
            builder.constant(key(index), tuple(tensor.sizes), _dtype(tensor))
    for number, index in enumerate(plan.inputs):
        info = _info(values[index].val, f"input_{number}")
        builder.input(key(index), info.shape, info.dtype, display=info.name)
    written: set[int] = set(plan.inputs)
    extra: list[Inspection] = []
    opaque: list[str] = []
    for number, instruction in enumerate(_instructions(plan)):
        args = instruction.instr_args
        kind = type(args).__name__
        if kind not in ("KernelCall", "DelegateCall"):
            continue
        tensors = _tensor_args(args.args, values)
        # Results are the trailing arguments (a kernel's ``out=`` tensors, a delegate's outputs) that nothing
        # wrote before; an unwritten tensor before them is an alias the memory planner made (a view).
        writes: list[int] = []
        for i in reversed(tensors):
            if i in written or builder.is_constant(key(i)):
                break
            writes.insert(0, i)
        reads = [i for i in tensors if i not in writes]
        for i in writes:
            builder.activation(key(i), tuple(values[i].val.sizes), _dtype(values[i].val))
        written.update(writes)
        if kind == "KernelCall":
            op = _operator_name(plan.operators[args.op_index])
            _kernel(builder, op, args.args, reads, writes, values, key, number)
            continue
        delegate = plan.delegates[args.delegate_index]
        payload = _payload(pte, delegate)
        if delegate.id == "XnnpackBackend" and payload is not None:
            try:
                _xnnpack(builder, xnnpack_graph(payload), args.delegate_index, [key(i) for i in args.args])
                continue
            except Exception as exc:  # a payload this flatc/schema cannot read: an opaque layer instead
                opaque.append(f"{delegate.id} #{args.delegate_index} ({type(exc).__name__})")
        elif delegate.id == "CoreMLBackend" and payload is not None:
            found = _coreml_inspection(payload)
            if found is not None:
                extra.append(found)
                builder.layer(name=f"CoreMLBackend#{args.delegate_index}", op="delegate:CoreMLBackend",
                              reads=[key(i) for i in reads], writes=[key(i) for i in writes])
                continue
            opaque.append(f"{delegate.id} #{args.delegate_index}")
        else:
            opaque.append(f"{delegate.id} #{args.delegate_index}")
        builder.stored("opaque", len(payload) if payload is not None else 0)
        builder.layer(name=f"{delegate.id}#{args.delegate_index}", op=f"delegate:{delegate.id}",
                      reads=[key(i) for i in reads], writes=[key(i) for i in writes])
    for number, index in enumerate(plan.outputs):
        info = _info(values[index].val, f"output_{number}")
        builder.output(key(index), info.shape, info.dtype, display=info.name)
    if opaque:
        builder.notes.append(f"delegate payloads not decoded ({', '.join(opaque)}): their ops, mult-adds and "
                             "parameters are not counted; their bytes are listed as 'opaque' weight bytes")
    if len(pte.program.execution_plan) > 1:
        builder.notes.append(f"{len(pte.program.execution_plan) - 1} further method(s) are not counted")
    xnnpack = any(d.id == "XnnpackBackend" for d in plan.delegates)
    builder.notes.append("ExecuTorch program: the layers are its kernel calls"
                         + (" and the nodes of its XNNPACK delegates (after XNNPACK's own fusions: batch norms "
                            "folded, activations fused)" if xnnpack else "")
                         + "; a .pte stores no tensor names, so inputs and outputs are input_N / output_N")
    inspection = builder.build()
    return _merged(inspection, extra) if extra else inspection


# -- kernel calls -------------------------------------------------------------------------------------
def _kernel(builder: GraphBuilder, op: str, args, reads, writes, values, key, number: int) -> None:
    def sizes(i):
        return tuple(values[i].val.sizes)

    def scalar(i):
        return getattr(values[i].val, "int_val", getattr(values[i].val, "bool_val", None))

    read_keys, write_keys = [key(i) for i in reads], [key(i) for i in writes]
    if read_keys and all(builder.is_constant(k) for k in read_keys):
        builder.fold([(key(i), sizes(i), _dtype(values[i].val)) for i in writes], read_keys)
        return
    out_shape = sizes(writes[0]) if writes else ()
    common = dict(name=f"{op}#{number}", op=op, writes=write_keys, output_shape=out_shape)
    base = op.split(".")[0]
    if base == "aten::convolution" and len(args) >= 9:
        x, w = sizes(args[0]), sizes(args[1])
        transposed, groups = bool(scalar(args[6])), int(scalar(args[8]) or 1)
        kernel = w[2:]
        weights = [key(i) for i in args[1:3] if type(values[i].val).__name__ == "Tensor"]
        if transposed:
            macs = transposed_conv_macs(x, w[1] * groups, groups, kernel)
            kind = "conv"
        else:
            macs = conv_macs(out_shape, x[1], groups, kernel)
            kind = conv_layer_type(kernel, groups, x[1], x[2:])
        builder.layer(layer_type=kind, macs=macs, reads=[key(args[0])], weights=weights, **common)
    elif base in ("aten::_native_batch_norm_legit_no_training", "aten::native_batch_norm") and len(args) >= 5:
        # gamma and beta are parameters; the running statistics are state (rules: COUNTING_NOTE)
        weights = [key(i) for i in args[1:3] if type(values[i].val).__name__ == "Tensor"]
        builder.layer(reads=[key(args[0])], weights=weights, **common)
    elif base in ("aten::addmm", "aten::mm", "aten::bmm", "aten::linear") and len(reads) >= 2:
        first = args[1] if base == "aten::addmm" else args[0]
        constant = [k for k in read_keys if builder.is_constant(k)]
        builder.layer(layer_type="fully_connected" if constant else "other",
                      macs=matmul_macs(out_shape, sizes(first)[-1]),
                      reads=[k for k in read_keys if k not in constant], weights=constant, **common)
    else:
        builder.layer(reads=read_keys, **common)


# -- XNNPACK delegates --------------------------------------------------------------------------------
def xnnpack_graph(payload: bytes) -> dict:
    """The XNNGraph of an XNNPACK delegate payload, as the JSON flatc makes of it (every field, defaults too)."""
    if payload[4:8] == b"XH00":
        offset = int.from_bytes(payload[10:14], "little")
        size = int.from_bytes(payload[14:18], "little")
        flatbuffer = payload[offset:offset + size]
    else:  # payloads before the header existed are the bare flatbuffer
        flatbuffer = payload
    flatc, schema = _executorch_file("data/bin/flatc"), _executorch_file("backends/xnnpack/serialization/schema.fbs")
    with tempfile.TemporaryDirectory(prefix="deploykit-xnn-") as folder:
        blob = Path(folder) / "graph.bin"
        blob.write_bytes(flatbuffer)
        done = subprocess.run([str(flatc), "--json", "--strict-json", "--raw-binary", "--defaults-json",
                               "-o", folder, str(schema), "--", str(blob)], capture_output=True, text=True, timeout=120)
        out = Path(folder) / "graph.json"
        if done.returncode != 0 or not out.is_file():
            raise ValueError(f"flatc could not read the XNNPACK graph: {done.stderr.strip()[:200]}")
        # flatc writes an unbounded activation's clamp as a bare inf, which JSON has no word for
        text = re.sub(r"([:\[,]\s*)(-?)inf\b", r"\1\2Infinity", out.read_text())
        return json.loads(re.sub(r"([:\[,]\s*)-?nan\b", r"\1NaN", text))


def _xnnpack(builder: GraphBuilder, graph: dict, index: int, call_args: list[str]) -> None:
    """Each XNNPACK node as a layer. External values (the delegate call's arguments, inputs first) are
    keyed by their external id, so the layers connect to the kernel calls around the delegate."""
    values = [v["xvalue_union"] for v in graph["xvalues"]]
    constants = graph.get("constant_data") or []
    info: dict[int, tuple[tuple, str, int, int]] = {}  # id -> (dims, dtype, constant index, external id)
    for value in values:
        tensor = value.get("tensor_value", value)
        dtype = _XNN_DTYPES.get(str(tensor.get("datatype", "")).removeprefix("xnn_datatype_"), "float32")
        dims = tuple(int(d) for d in tensor.get("dims") or ())
        external = int(tensor.get("external_id", _XNN_INVALID))
        info[int(tensor["id_out"])] = (dims, dtype, int(tensor.get("constant_buffer_idx", 0)), external)

    def key(value_id: int) -> str:
        external = info[value_id][3]
        if external != _XNN_INVALID and external < len(call_args):
            return call_args[external]
        return f"x{index}:{value_id}"

    used = set()
    for value_id, (dims, dtype, buffer, _) in info.items():
        if buffer > 0:
            stored = int(constants[buffer]["size"]) if buffer < len(constants) else None
            builder.constant(key(value_id), dims, dtype, stored_bytes=stored)
            used.add(buffer)
    for buffer, entry in enumerate(constants):
        if buffer and buffer not in used and int(entry.get("size", 0)):
            # per-channel scales and other side tables of quantized weights
            builder.stored("float32", int(entry["size"]))
    for number, node in enumerate(graph["xnodes"]):
        op, fields = node["xnode_union_type"], node["xnode_union"]
        ids = {name: int(v) for name, v in fields.items() if name.endswith("_id") and isinstance(v, int)
               and int(v) != _XNN_INVALID and int(v) in info}
        outs = [ids[f] for f in _XNN_OUTPUT_FIELDS if f in ids]
        ins = [v for f, v in ids.items() if f not in _XNN_OUTPUT_FIELDS]
        for value_id in outs:
            builder.activation(key(value_id), info[value_id][0], info[value_id][1])
        out_shape = info[outs[0]][0] if outs else ()
        common = dict(name=f"XnnpackBackend#{index}/{number}", op=op, writes=[key(v) for v in outs],
                      output_shape=out_shape)
        data_ins = [key(v) for f, v in ids.items() if f not in _XNN_OUTPUT_FIELDS and f not in _XNN_WEIGHT_FIELDS]
        weights = [key(ids[f]) for f in _XNN_WEIGHT_FIELDS if f in ids]
        if op in _XNN_CONV or op == "XNNConvTranspose2d":
            x = info[ids["input1_id"]][0]  # NHWC
            kernel = (int(fields["kernel_height"]), int(fields["kernel_width"]))
            groups = max(int(fields["groups"]), 1)
            in_channels = groups * int(fields["group_input_channels"])
            if op == "XNNConvTranspose2d":
                macs = transposed_conv_macs(x, groups * int(fields["group_output_channels"]), groups, kernel)
                kind = "conv"
            else:
                macs = conv_macs(out_shape, in_channels, groups, kernel)
                kind = conv_layer_type(kernel, groups, in_channels, x[1:3])
            builder.layer(layer_type=kind, macs=macs, reads=data_ins, weights=weights, **common)
        elif op == "XNNFullyConnected":
            x = info[ids["input1_id"]][0]
            constant = builder.is_constant(key(ids["filter_id"])) if "filter_id" in ids else False
            builder.layer(layer_type="fully_connected" if constant else "other", macs=matmul_macs(out_shape, x[-1]),
                          reads=data_ins, weights=weights if constant else [], **common)
        elif op == "XNNBatchMatrixMultiply":
            x = info[ids["input1_id"]][0]
            builder.layer(macs=matmul_macs(out_shape, x[-1]), reads=data_ins, **common)
        else:
            builder.layer(reads=[key(v) for v in ins], **common)


# -- Core ML delegates --------------------------------------------------------------------------------
def extract_coreml_delegate(path: Path, folder: Path) -> Path:
    """Unpack the program's Core ML delegate into ``folder``; the path of its ``model.mlpackage``.

    Only a program that is exactly one Core ML delegate call (no kernel calls around it) gives a
    package that computes what the whole program computes; anything else raises InputError saying why.
    """
    path, folder = Path(path), Path(folder)
    pte = read_pte(path)
    plan = _plan(pte, path)
    where = split(path, pte)
    coreml = [d for d in plan.delegates if d.id == "CoreMLBackend"]
    if not coreml:
        raise InputError(f"{path} has no Core ML delegate")
    if len(plan.delegates) != 1 or where.kernel_calls or sum(where.delegate_calls.values()) != 1:
        outside = ", ".join(f"{op} x{n}" for op, n in list(where.kernel_calls.items())[:5])
        around = f"; kernel calls outside it: {outside}" if outside else ""
        raise InputError(f"the Core ML delegate covers only part of {path.name} ({len(plan.delegates)} delegate(s)"
                         f"{around})")
    payload = _payload(pte, coreml[0])
    if payload is None:
        raise InputError(f"{path}: the Core ML delegate's payload is not stored in the file")
    package = _unflatten_coreml(payload, folder)
    if package is None:
        raise InputError(f"{path}: the Core ML delegate's payload holds no model.mlpackage (a compiled .mlmodelc "
                         "cannot be evaluated on Linux)")
    return package


def coreml_delegate_status(path: Path) -> str:
    """How this machine can check a Core ML-delegated program (ExecuTorch's Core ML runtime needs Apple hardware)."""
    from deploykit.core.errors import DeployKitError

    with tempfile.TemporaryDirectory(prefix="deploykit-coreml-") as folder:
        try:
            package = extract_coreml_delegate(path, Path(folder))
            from deploykit.runners.coreml_eval import load_program

            load_program(package)  # compiles every op: an op the evaluator lacks is found here
        except DeployKitError as exc:
            return (f"not verified on this machine: {exc.message} (ExecuTorch's Core ML delegate runs only on "
                    "Apple hardware)")
        except Exception as exc:
            return (f"not verified on this machine: the delegate's ML Program could not be read "
                    f"({type(exc).__name__}: {str(exc)[:200]})")
    return ("verifiable on this machine: deploykit's numpy Core ML evaluator runs the delegate's embedded ML Program "
            "(ExecuTorch's Core ML delegate itself runs only on Apple hardware)")


def _unflatten_coreml(payload: bytes, folder: Path) -> Path | None:
    from executorch.backends.apple.coreml import executorchcoreml

    folder.mkdir(parents=True, exist_ok=True)
    if not executorchcoreml.unflatten_directory_contents(bytes(payload), str(folder)):
        raise InputError("the Core ML delegate's payload could not be unpacked")
    found = sorted(folder.rglob("*.mlpackage"))
    return found[0] if found else None


def _coreml_inspection(payload: bytes) -> Inspection | None:
    from deploykit.inspection import coreml_graph

    folder = Path(tempfile.mkdtemp(prefix="deploykit-coreml-"))
    try:
        package = _unflatten_coreml(payload, folder)
        return coreml_graph.inspect(package) if package is not None else None
    except Exception:
        return None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _merged(inspection: Inspection, parts: list[Inspection]) -> Inspection:
    """The Core ML delegates' layers in place of their opaque call layers; weights added up; peak memory the
    largest of the program's and each ML Program's own estimate (they do not run at the same time)."""
    layers = [layer for layer in inspection.layers if layer.op != "delegate:CoreMLBackend"]
    weights = dict(inspection.weight_bytes)
    for part in parts:
        layers.extend(part.layers)
        for dtype, n in part.weight_bytes.items():
            weights[dtype] = weights.get(dtype, 0) + n
    peak = max([inspection.peak_activation_bytes] + [p.peak_activation_bytes for p in parts])
    return replace(inspection, layers=tuple(layers), weight_bytes=weights, peak_activation_bytes=peak,
                   notes=(*inspection.notes, "Core ML delegate: its ML Program's ops (inspected from the embedded "
                                             "model.mlpackage) are listed after the program's own"))


# -- helpers ------------------------------------------------------------------------------------------
def _plan(pte, path: Path):
    plans = pte.program.execution_plan
    return next((p for p in plans if p.name == "forward"), plans[0])


def _instructions(plan):
    for chain in plan.chains:
        yield from chain.instructions


def _tensor_args(indices, values) -> list[int]:
    """The tensor values among an instruction's arguments, a TensorList's items included (cat, stack)."""
    found = []
    for i in indices:
        kind = type(values[i].val).__name__
        if kind == "Tensor":
            found.append(i)
        elif kind in ("TensorList", "OptionalTensorList"):
            found.extend(int(j) for j in values[i].val.items if j >= 0 and type(values[j].val).__name__ == "Tensor")
    return list(dict.fromkeys(found))


def _operator_name(operator) -> str:
    return f"{operator.name}.{operator.overload}" if operator.overload else operator.name


def _payload(pte, delegate) -> bytes | None:
    processed = delegate.processed
    if getattr(processed.location, "name", str(processed.location)) == "INLINE":
        data = pte.program.backend_delegate_data
        return bytes(data[processed.index].data) if processed.index < len(data) else None
    return None  # in a segment the deserializer did not move back: not readable here


def _dtype(tensor) -> str:
    name = getattr(tensor.scalar_type, "name", str(tensor.scalar_type))
    return _SCALAR.get(name, name.lower())


def _info(tensor, name: str) -> TensorInfo:
    if type(tensor).__name__ != "Tensor":
        return TensorInfo(name, (), type(tensor).__name__.lower())
    return TensorInfo(name, tuple(int(d) for d in tensor.sizes), _dtype(tensor))


def _executorch_file(relative: str) -> Path:
    """A file of the installed executorch wheel, found without importing it (executorch.exir takes ~10 s)."""
    spec = importlib.util.find_spec("executorch")
    for root in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(root) / relative
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"executorch/{relative} is not installed")
