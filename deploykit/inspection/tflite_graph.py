"""TFLite artifacts: one layer per operator of the main subgraph, read from the flatbuffer (no interpreter).

Weights stored as fp16 or int8 and widened by a DEQUANTIZE op are folded into the layer that reads them,
counted at their decoded size, so a quantized variant counts the same parameters as fp32.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import InputError
from deploykit.inspection.graph import GraphBuilder
from deploykit.inspection.model import Inspection
from deploykit.inspection.rules import conv_layer_type, conv_macs, matmul_macs, transposed_conv_macs


def inspect(path: Path) -> Inspection:
    from deploykit.formats.tflite import graph as tflite_graph
    from deploykit.formats.tflite.graph import _enum

    try:
        graph = tflite_graph.read(path.read_bytes())
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path} is not a readable TFLite flatbuffer: {exc}",
                         hint="the file is damaged or not a .tflite model; convert it again") from exc
    type_names = {code: name.lower() for code, name in _enum("TensorType").items()}
    builder = GraphBuilder(str(path), "tflite")
    sub = graph.graph
    tensors = sub.tensors

    def name(t: int) -> str:
        return f"{t}:{graph.tensor_name(t)}"

    def shape(t: int) -> tuple:
        return tuple(int(d) for d in (tensors[t].shape if tensors[t].shape is not None else ()))

    def dtype(t: int) -> str:
        return type_names.get(tensors[t].type, "float32")

    producers = set(graph.producer)
    for t, tensor in enumerate(tensors):
        buffer = graph.model.buffers[tensor.buffer]
        if t not in producers and buffer.data is not None and len(buffer.data) > 0:
            builder.constant(name(t), shape(t), dtype(t), stored_bytes=len(buffer.data))
    for t in _ints(sub.inputs):
        builder.input(name(t), shape(t), dtype(t), display=graph.tensor_name(t))
    for index, op in enumerate(sub.operators):
        op_type = graph.op_type(index)
        ins = [t for t in _ints(op.inputs) if t >= 0]
        outs = _ints(op.outputs)
        reads = [name(t) for t in ins]
        if reads and all(builder.is_constant(r) for r in reads):
            builder.fold([(name(t), shape(t), dtype(t)) for t in outs], reads)
            continue
        for t in outs:
            builder.activation(name(t), shape(t), dtype(t))
        out_shape = shape(outs[0]) if outs else ()
        common = dict(name=graph.tensor_name(outs[0]) if outs else f"{op_type}_{index}", op=op_type,
                      writes=[name(t) for t in outs], output_shape=out_shape)
        _layer(op_type, op, ins, reads, out_shape, shape, builder, common)
    for t in _ints(sub.outputs):
        builder.output(name(t), shape(t), dtype(t), display=graph.tensor_name(t))
    if len(graph.model.subgraphs) > 1:
        builder.notes.append(f"{len(graph.model.subgraphs) - 1} further subgraph(s) (control-flow bodies) are not counted")
    return builder.build()


def _layer(op_type: str, op, ins: list[int], reads: list[str], out_shape: tuple, shape, builder: GraphBuilder,
           common: dict) -> None:
    if op_type == "CONV_2D" or op_type == "CONV_3D":
        x, w = shape(ins[0]), shape(ins[1])
        kernel = w[1:3] if op_type == "CONV_2D" else w[:3]
        per_group = w[3]
        groups = max(1, x[-1] // per_group) if per_group else 1
        builder.layer(layer_type=conv_layer_type(kernel, groups, x[-1], x[1:-1]),
                      macs=conv_macs(out_shape, x[-1], groups, kernel), reads=reads[:1], weights=reads[1:], **common)
    elif op_type == "DEPTHWISE_CONV_2D":
        x, w = shape(ins[0]), shape(ins[1])
        kernel = w[1:3]
        builder.layer(layer_type=conv_layer_type(kernel, x[-1], x[-1], x[1:-1]),
                      macs=conv_macs(out_shape, x[-1], x[-1], kernel), reads=reads[:1], weights=reads[1:], **common)
    elif op_type == "TRANSPOSE_CONV":
        w, x = shape(ins[1]), shape(ins[2])
        builder.layer(layer_type="conv", macs=transposed_conv_macs(x, w[0], 1, w[1:3]), reads=[reads[2]],
                      weights=[reads[1], *reads[3:]], **common)
    elif op_type == "FULLY_CONNECTED":
        w = shape(ins[1])
        constant = builder.is_constant(reads[1])
        builder.layer(layer_type="fully_connected" if constant else "other", macs=matmul_macs(out_shape, w[-1]),
                      reads=[r for r in reads if not builder.is_constant(r)],
                      weights=[r for r in reads if builder.is_constant(r)], **common)
    elif op_type == "BATCH_MATMUL":
        x = shape(ins[0])
        adjoint = bool(getattr(op.builtinOptions, "adjX", False))
        constant = [r for r in reads if builder.is_constant(r)]
        builder.layer(layer_type="fully_connected" if constant else "other",
                      macs=matmul_macs(out_shape, x[-2] if adjoint else x[-1]),
                      reads=[r for r in reads if r not in constant], weights=constant, **common)
    else:
        builder.layer(reads=reads, **common)



def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]
