"""ExecuTorch ``.pte`` programs: one layer per kernel call, and per op inside the delegates that can be decoded.

The program is read by ``deploykit.formats.pte`` (no runtime). XNNPACK delegates are decoded node by node
(``formats.pte.xnnpack``), so every XNNPACK node is a layer with its shapes, mult-adds and weights (stored
bytes as the delegate keeps them); a Core ML delegate's ``model.mlpackage`` is unpacked to a temporary
folder and inspected with the Core ML walker. Other delegates are one opaque layer each, with a note.
``split`` gives what ``deploykit inspect`` shows about where ops run: delegate calls by backend id, kernel
calls by operator name, and the nodes inside each delegate it can decode.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from deploykit.formats.pte import program as pte_program
from deploykit.formats.pte.coreml_delegate import unflatten
from deploykit.formats.pte.program import (
    PteSplit,
    dtype_name,
    instructions,
    operator_name,
    payload,
    plan_of,
    read_pte,
    tensor_args,
)
from deploykit.formats.pte.xnnpack import DTYPES as _XNN_DTYPES
from deploykit.formats.pte.xnnpack import INVALID_ID as _XNN_INVALID
from deploykit.formats.pte.xnnpack import node_counts, xnnpack_graph
from deploykit.inspection.graph import GraphBuilder
from deploykit.inspection.model import Inspection, TensorInfo
from deploykit.inspection.rules import conv_layer_type, conv_macs, matmul_macs, transposed_conv_macs

_XNN_CONV = ("XNNConv2d", "XNNDepthwiseConv2d")
_XNN_OUTPUT_FIELDS = ("output_id", "output1_id", "output2_id", "output3_id", "output4_id")
_XNN_WEIGHT_FIELDS = ("filter_id", "bias_id")


def split(path: Path, pte=None) -> PteSplit:
    """``formats.pte.program.split`` with the delegates' own nodes counted where their payloads decode."""
    return pte_program.split(path, pte, delegate_nodes=_delegate_nodes)


def _delegate_nodes(backend: str, data: bytes) -> dict[str, int] | None:
    if backend == "XnnpackBackend":
        with contextlib.suppress(Exception):
            return node_counts(data)
        return None
    if backend == "CoreMLBackend":
        found = _coreml_inspection(data)
        return found.op_histogram if found is not None else None
    return None


def inspect(path: Path) -> Inspection:
    path = Path(path)
    pte = read_pte(path)
    plan = plan_of(pte)
    builder = GraphBuilder(str(path), "pte")
    values = plan.values

    def key(index: int) -> str:
        return f"v{index}"

    for index, evalue in enumerate(values):
        tensor = evalue.val
        if type(tensor).__name__ == "Tensor" and tensor.data_buffer_idx > 0:
            builder.constant(key(index), tuple(tensor.sizes), dtype_name(tensor))
    for number, index in enumerate(plan.inputs):
        info = _info(values[index].val, f"input_{number}")
        builder.input(key(index), info.shape, info.dtype, display=info.name)
    written: set[int] = set(plan.inputs)
    extra: list[Inspection] = []
    opaque: list[str] = []
    for number, instruction in enumerate(instructions(plan)):
        args = instruction.instr_args
        kind = type(args).__name__
        if kind not in ("KernelCall", "DelegateCall"):
            continue
        tensors = tensor_args(args.args, values)
        # Results are the trailing arguments (a kernel's ``out=`` tensors, a delegate's outputs) that nothing
        # wrote before; an unwritten tensor before them is an alias the memory planner made (a view).
        writes: list[int] = []
        for i in reversed(tensors):
            if i in written or builder.is_constant(key(i)):
                break
            writes.insert(0, i)
        reads = [i for i in tensors if i not in writes]
        for i in writes:
            builder.activation(key(i), tuple(values[i].val.sizes), dtype_name(values[i].val))
        written.update(writes)
        if kind == "KernelCall":
            op = operator_name(plan.operators[args.op_index])
            _kernel(builder, op, args.args, reads, writes, values, key, number)
            continue
        delegate = plan.delegates[args.delegate_index]
        data = payload(pte, delegate)
        if delegate.id == "XnnpackBackend" and data is not None:
            try:
                _xnnpack(builder, xnnpack_graph(data), args.delegate_index, [key(i) for i in args.args])
                continue
            except Exception as exc:  # a payload this flatc/schema cannot read: an opaque layer instead
                opaque.append(f"{delegate.id} #{args.delegate_index} ({type(exc).__name__})")
        elif delegate.id == "CoreMLBackend" and data is not None:
            found = _coreml_inspection(data)
            if found is not None:
                extra.append(found)
                builder.layer(name=f"CoreMLBackend#{args.delegate_index}", op="delegate:CoreMLBackend",
                              reads=[key(i) for i in reads], writes=[key(i) for i in writes])
                continue
            opaque.append(f"{delegate.id} #{args.delegate_index}")
        else:
            opaque.append(f"{delegate.id} #{args.delegate_index}")
        builder.stored("opaque", len(payload) if data is not None else 0)
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
        builder.fold([(key(i), sizes(i), dtype_name(values[i].val)) for i in writes], read_keys)
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
def _coreml_inspection(data: bytes) -> Inspection | None:
    from deploykit.inspection import coreml_graph

    folder = Path(tempfile.mkdtemp(prefix="deploykit-coreml-"))
    try:
        package = unflatten(data, folder)
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
def _info(tensor, name: str) -> TensorInfo:
    if type(tensor).__name__ != "Tensor":
        return TensorInfo(name, (), type(tensor).__name__.lower())
    return TensorInfo(name, tuple(int(d) for d in tensor.sizes), dtype_name(tensor))


