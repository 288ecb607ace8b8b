"""ONNX models: one layer per node of the main graph, shapes from ONNX shape inference.

Shapes shape inference cannot settle (data-dependent reshapes) are read from one onnxruntime run that
exposes those tensors. Nodes with subgraphs (If, Loop, Scan) count as one layer: the ops inside their
bodies are not counted, and the inspection says so.
"""

from __future__ import annotations

from deploykit.core.errors import InputError
from deploykit.inspection.graph import GraphBuilder
from deploykit.inspection.model import Inspection
from deploykit.inspection.rules import conv_layer_type, conv_macs, matmul_macs, transposed_conv_macs

_SUBGRAPH_OPS = ("If", "Loop", "Scan")


def inspect(path: str, inputs: list[str] | None) -> Inspection:
    from deploykit.loaders import load_source

    return walk_model(load_source(path, inputs=inputs or None))


def walk_model(model) -> Inspection:
    """The inspection of a loaded ONNX SourceModel, at its resolved input shapes."""
    proto = _with_static_inputs(model.handle, model.inputs)
    shapes = _shapes(proto, model.inputs)
    builder = GraphBuilder(model.path, "onnx")
    _walk(proto, shapes, builder)
    return builder.build()


def _with_static_inputs(proto, specs):
    import onnx

    fixed = onnx.ModelProto()
    fixed.CopyFrom(proto)
    by_name = {s.name: s for s in specs}
    for value in fixed.graph.input:
        spec = by_name.get(value.name)
        if spec is None:
            continue
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims, spec.shape):
            dim.Clear()
            dim.dim_value = int(size)
    return fixed


def _shapes(proto, specs) -> dict[str, tuple[tuple, str]]:
    """name -> (shape, dtype) for every tensor of the main graph."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception:  # inference gives up on some custom domains; the runtime pass below fills in
        inferred = proto
    known: dict[str, tuple[tuple, str]] = {}
    graph = inferred.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        entry = _static(value)
        if entry is not None:
            known[value.name] = entry
    for init in graph.initializer:
        known[init.name] = (tuple(init.dims), onnx.helper.tensor_dtype_to_np_dtype(init.data_type).name)
    missing = [o for node in graph.node for o in node.output if o and o not in known]
    if missing:
        known.update(_run_for_shapes(proto, specs, missing))
    return known


def _static(value):
    import onnx

    kind = value.type.WhichOneof("value")
    if kind != "tensor_type" or not value.type.tensor_type.HasField("shape"):
        return None
    dims = value.type.tensor_type.shape.dim
    if not all(d.HasField("dim_value") for d in dims):
        return None
    dtype = value.type.tensor_type.elem_type
    try:
        name = onnx.helper.tensor_dtype_to_np_dtype(dtype).name
    except Exception:
        name = "float32"
    return tuple(int(d.dim_value) for d in dims), name


def _run_for_shapes(proto, specs, names: list[str]) -> dict[str, tuple[tuple, str]]:
    import numpy as np
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(proto)
    existing = {o.name for o in probe.graph.output}
    for name in names:
        if name not in existing:
            probe.graph.output.append(onnx.ValueInfoProto(name=name))
    try:
        session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feeds = {s.name: (rng.random(s.shape, dtype=np.float32).astype(s.dtype) if "float" in s.dtype
                          else np.zeros(s.shape, dtype=s.dtype)) for s in specs}
        values = session.run(names, feeds)
    except Exception as exc:
        raise InputError(f"ONNX shape inference left {len(names)} tensors without a size and onnxruntime could "
                         f"not run the model to measure them: {str(exc).splitlines()[0][:200]}",
                         hint="fix the input sizes with --input name=1x3x224x224") from exc
    return {name: (tuple(np.shape(v)), np.asarray(v).dtype.name) for name, v in zip(names, values)}


def _walk(proto, shapes: dict, builder: GraphBuilder) -> None:
    graph = proto.graph
    initializers = {i.name for i in graph.initializer}
    for init in graph.initializer:
        shape, dtype = shapes[init.name]
        builder.constant(init.name, shape, dtype)
    for value in graph.input:
        if value.name not in initializers:
            shape, dtype = shapes[value.name]
            builder.input(value.name, shape, dtype)
    skipped_bodies = 0
    for index, node in enumerate(graph.node):
        outputs = [(o, *shapes.get(o, ((), "float32"))) for o in node.output if o]
        if node.op_type == "Constant":
            for name, shape, dtype in outputs:
                builder.constant(name, shape, dtype)
            continue
        reads = [i for i in node.input if i]
        if reads and all(builder.is_constant(r) for r in reads) and node.op_type not in _SUBGRAPH_OPS:
            builder.fold(outputs, reads)
            continue
        for name, shape, dtype in outputs:
            builder.activation(name, shape, dtype)
        skipped_bodies += node.op_type in _SUBGRAPH_OPS
        _layer(node, index, reads, outputs, shapes, builder)
    for value in graph.output:
        shape, dtype = shapes.get(value.name, ((), "float32"))
        builder.output(value.name, shape, dtype)
    if skipped_bodies:
        builder.notes.append(f"{skipped_bodies} control-flow node(s) ({', '.join(_SUBGRAPH_OPS)}) count as one "
                             "layer each: the ops inside their bodies are not counted")


def _layer(node, index: int, reads: list[str], outputs: list, shapes: dict, builder: GraphBuilder) -> None:
    out_shape = outputs[0][1] if outputs else ()
    common = dict(name=node.name or f"{node.op_type}_{index}", op=node.op_type, writes=[o[0] for o in outputs],
                  output_shape=out_shape)
    attrs = {a.name: a for a in node.attribute}
    group = int(attrs["group"].i) if "group" in attrs else 1
    if node.op_type == "Conv":
        in_shape, weight_shape = shapes[reads[0]][0], shapes[reads[1]][0]
        kernel = tuple(weight_shape[2:])
        builder.layer(layer_type=conv_layer_type(kernel, group, in_shape[1], tuple(in_shape[2:])),
                      macs=conv_macs(out_shape, in_shape[1], group, kernel), reads=reads[:1], weights=reads[1:],
                      **common)
    elif node.op_type == "ConvTranspose":
        in_shape, weight_shape = shapes[reads[0]][0], shapes[reads[1]][0]
        kernel = tuple(weight_shape[2:])
        builder.layer(layer_type="conv", macs=transposed_conv_macs(in_shape, weight_shape[1] * group, group, kernel),
                      reads=reads[:1], weights=reads[1:], **common)
    elif node.op_type in ("Gemm", "MatMul"):
        left = shapes[reads[0]][0]
        trans_a = node.op_type == "Gemm" and "transA" in attrs and attrs["transA"].i
        reduced = left[0] if trans_a else left[-1]
        constant = [r for r in reads if builder.is_constant(r)]
        builder.layer(layer_type="fully_connected" if constant else "other", macs=matmul_macs(out_shape, reduced),
                      reads=[r for r in reads if r not in constant], weights=constant, **common)
    elif node.op_type == "BatchNormalization":
        builder.layer(reads=reads[:1], weights=reads[1:3], **common)  # inputs 3, 4: running statistics
    else:
        builder.layer(reads=reads, **common)

