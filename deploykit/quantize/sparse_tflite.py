"""TFLite sparsity variants: the fp32 .tflite with its conv / fully-connected weights pruned (``quantize.sparsity``).

``sparse50`` / ``75`` / ``90``: each pruned weight is written sparse-encoded, as TensorFlow's converter does under
``Optimize.EXPERIMENTAL_SPARSITY``: the tensor carries the schema's ``SparsityParameters`` (dims in order, every
dim dense but the last, the last compressed as CSR: row segments and column indices in the narrowest unsigned
type that holds them) with the non-zero values as its buffer, and a ``DENSIFY`` op in front of the layer
rebuilds the dense weight once, when the interpreter prepares. Measured with LiteRT 2.3 (bench/results/
sparsity.md): it runs under the default XNNPACK delegate with outputs bit-identical to the dense-zeros file,
the file shrinks (MobileNetV2 at 90 %: 2.1 MB instead of 13.9 MB), latency is unchanged (nothing computes on the
sparse form) and the first run is a few tens of ms later (the densify). A tensor is encoded only where that is
smaller than its dense bytes (below ~20 % zeros with one-byte indices it is not).

``sparseNN+int8``: int8 weights with float activations (ai-edge-quantizer's dynamic range, as ``int8-weights``:
no calibration data needed) applied to the pruned file; symmetric int8 keeps every zero a zero. These weights
stay dense int8: LiteRT 2.3's XNNPACK delegate refuses a ``DENSIFY`` of int8 weights in front of a hybrid conv
or fully-connected layer ("failed to delegate"), and an app gets XNNPACK by default. The zeros then cost file
bytes and are only gained on the wire, where a compressed transfer (HTTP gzip, store packages) deflates them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deploykit.formats import litert_facade
from deploykit.quantize import sparsity

# The layers whose weight (input 1) is a candidate; the kernels XNNPACK densifies for (measured with LiteRT 2.3).
WEIGHT_INPUT = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1}
DENSIFY_RUNTIME = "2.2.0"  # the TFLite runtime that first has DENSIFY (TensorFlow's op-version table)
_FLOAT32 = 0


def sparse_tflite(base: Path, out_path: Path, scheme: str, options, calibration, work: Path) -> dict:
    """Write the ``scheme`` variant of the fp32 ``base`` to ``out_path``; return its quantization record.
    ``work``: a folder for the pruned dense file a joint scheme quantizes."""
    from deploykit.formats.tflite.flatbuffer import read_model, write_model
    from deploykit.quantize.tflite import kept_float_tensors

    chosen = sparsity.parse(scheme)
    data = Path(base).read_bytes()
    model = read_model(data)
    found = weight_layers(model)
    layers, index = [layer for layer, _ in found], {layer.name: i for layer, i in found}
    spared = sparsity.plan(layers, kept_float_tensors(data, _keep_names(options.keep_float)),
                           options.keep_float.small_for("tflite", scheme))
    if all(spared.values()):
        raise sparsity.nothing_to_prune(scheme, layers, spared)
    tensors = model.subgraphs[0].tensors
    for name, why in spared.items():
        if why is None:
            buffer = model.buffers[tensors[index[name]].buffer]
            weight = np.frombuffer(bytes(buffer.data), dtype=np.float32)
            buffer.data = sparsity.prune_magnitude(weight, chosen.sparsity).astype(np.float32).tobytes()
    described = {"scheme": scheme, "engine": "deploykit magnitude pruning", "base": Path(base).name}
    if chosen.then is None:
        encoded = encode_sparse(model, [index[n] for n, why in spared.items() if why is None])
        out_path.write_bytes(write_model(model, len(data) + 4096))
        described.update({"weights": "float32, pruned layers sparse-encoded (CSR + DENSIFY at load)",
                          "activations": "float32", "sparse_encoded_layers": encoded,
                          "sizes": "the file shrinks with the zeros; latency is unchanged (LiteRT densifies the "
                                   "weights once when it prepares the model)"})
    else:  # int8 weights on the pruned dense file; spared layers stay float32 like the rest of the rule
        from deploykit.quantize.tflite import quantize_tflite

        pruned = work / f"pruned-{scheme.replace('+', '-')}.tflite"
        pruned.write_bytes(write_model(model, len(data) + 4096))
        quantized = quantize_tflite(pruned, out_path, "int8-weights", options, calibration,
                                    fp32_layers=tuple(n for n, why in spared.items() if why))
        described.update({key: quantized[key] for key in ("weights", "activations", "kept_float",
                                                          "weights_left_float32_bytes") if key in quantized})
        described.update({"engine": "deploykit magnitude pruning + ai-edge-quantizer",
                          "then": "int8 weights (dynamic range: activations quantized at run time, no calibration)",
                          "sparse_encoded_layers": 0,
                          "sizes": "int8 weights stay dense (XNNPACK refuses DENSIFY of int8 weights): the zeros "
                                   "are gained only where the download is compressed; latency as int8-weights"})
    zeros = artifact_zeros(out_path.read_bytes(), layers)
    return {**described, "sparsity": sparsity.record(chosen, layers, spared, zeros)}


def _keep_names(keep):
    """--keep-float's layer choices without ``first`` (always spared here) or ``small`` (the plan's threshold)."""
    from dataclasses import replace

    return replace(keep, first=False, small=None)


def weight_layers(model) -> list[tuple[sparsity.Layer, int]]:
    """(layer, weight tensor index) of the conv / fully-connected layers whose weight is a float32 constant of
    its own, in operator order."""
    graph = model.subgraphs[0]
    codes = _op_names(model)
    users: dict[int, int] = {}
    for op in graph.operators:
        for t in _ints(op.inputs):
            users[t] = users.get(t, 0) + 1
    buffer_users: dict[int, int] = {}
    for tensor in graph.tensors:
        buffer_users[tensor.buffer] = buffer_users.get(tensor.buffer, 0) + 1
    layers, seen = [], set()
    for op in graph.operators:
        slot = WEIGHT_INPUT.get(codes[op.opcodeIndex])
        inputs = _ints(op.inputs)
        if slot is None or len(inputs) <= slot or inputs[slot] < 0:
            continue
        index = inputs[slot]
        tensor = graph.tensors[index]
        data = model.buffers[tensor.buffer].data
        # a weight shared by two ops or two tensors would be pruned for both: leave such rare graphs alone
        name = _name(graph.tensors[_ints(op.outputs)[0]])
        if (tensor.type != _FLOAT32 or data is None or len(data) == 0 or users[index] > 1
                or buffer_users[tensor.buffer] > 1 or name in seen):
            continue
        seen.add(name)
        layers.append((sparsity.Layer(name, _name(tensor), len(data) // 4), index))
    return layers


def encode_sparse(model, weights: list[int]) -> int:
    """Rewrite each float32 weight (tensor index) as a sparse-encoded constant plus a DENSIFY op before its
    first user, where that is smaller than the dense tensor. Returns how many were encoded."""
    schema = litert_facade.schema()
    graph = model.subgraphs[0]
    densify = _opcode(model, schema.BuiltinOperator.DENSIFY)
    encoded = 0
    for index in weights:
        dense = graph.tensors[index]
        values = np.frombuffer(bytes(model.buffers[dense.buffer].data), dtype=np.float32).reshape(_ints(dense.shape))
        sparse = _csr(values, schema)
        if sparse is None:
            continue
        parameters, nonzeros = sparse
        stored = schema.TensorT()
        stored.shape, stored.type, stored.name = np.array(_ints(dense.shape), dtype=np.int32), dense.type, f"{_name(dense)}/sparse"
        stored.buffer, stored.sparsity, stored.quantization = dense.buffer, parameters, dense.quantization
        model.buffers[dense.buffer].data = nonzeros.astype(np.float32).tobytes()
        empty = schema.BufferT()
        model.buffers.append(empty)
        dense.buffer = len(model.buffers) - 1
        graph.tensors.append(stored)
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = densify, np.array([len(graph.tensors) - 1], np.int32), np.array([index], np.int32)
        first_user = next(i for i, o in enumerate(graph.operators) if index in _ints(o.inputs))
        graph.operators.insert(first_user, op)
        encoded += 1
    if encoded:
        _raise_min_runtime(model, DENSIFY_RUNTIME)
    return encoded


def _raise_min_runtime(model, version: str) -> None:
    """Raise the converter's ``min_runtime_version`` metadata (what the bundle's compat record reports) to
    ``version``: TensorFlow's op-version table puts DENSIFY at 2.2.0."""
    def parsed(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in text.split(".") if p.isdigit())

    for entry in model.metadata or []:
        name = entry.name.decode() if isinstance(entry.name, bytes) else str(entry.name)
        if name != "min_runtime_version":
            continue
        buffer = model.buffers[entry.buffer]
        raw = b"" if buffer.data is None else bytes(bytearray(buffer.data))
        held = raw.split(b"\0", 1)[0].decode("ascii", "replace")
        if parsed(held) < parsed(version):
            width = max(len(raw), len(version))
            buffer.data = version.encode().ljust(width, b"\0")


def _csr(values: np.ndarray, schema):
    """(SparsityParametersT, non-zero values in row-major order) for ``values``, or None when the encoding is not
    smaller than the dense tensor. Every dim but the last is dense; the last is CSR over the flattened rows."""
    rows = values.reshape(-1, values.shape[-1]) if values.ndim > 1 else values.reshape(1, -1)
    mask = rows != 0
    counts = mask.sum(axis=1)
    nonzeros = int(counts.sum())
    segments = np.concatenate([[0], np.cumsum(counts)])
    segment_type, segment_dtype = _index_vector(nonzeros, schema)
    index_type, index_dtype = _index_vector(rows.shape[1] - 1, schema)
    size = nonzeros * 4 + segments.size * np.dtype(segment_dtype).itemsize + nonzeros * np.dtype(index_dtype).itemsize
    if size >= values.nbytes:
        return None
    dims = []
    for extent in values.shape[:-1] if values.ndim > 1 else ():
        dim = schema.DimensionMetadataT()
        dim.format, dim.denseSize = schema.DimensionType.DENSE, int(extent)
        dims.append(dim)
    last = schema.DimensionMetadataT()
    last.format = schema.DimensionType.SPARSE_CSR
    last.arraySegmentsType, last.arraySegments = segment_type, _vector(schema, segment_type, segments.astype(segment_dtype))
    last.arrayIndicesType = index_type
    last.arrayIndices = _vector(schema, index_type, np.nonzero(mask)[1].astype(index_dtype))
    dims.append(last)
    parameters = schema.SparsityParametersT()
    parameters.traversalOrder = np.arange(values.ndim, dtype=np.int32)
    parameters.dimMetadata = dims
    return parameters, rows[mask]


def _index_vector(largest: int, schema):
    kinds = schema.SparseIndexVector
    if largest < 1 << 8:
        return kinds.Uint8Vector, np.uint8
    if largest < 1 << 16:
        return kinds.Uint16Vector, np.uint16
    return kinds.Int32Vector, np.int32


def _vector(schema, kind: int, values: np.ndarray):
    cls = {schema.SparseIndexVector.Uint8Vector: schema.Uint8VectorT, schema.SparseIndexVector.Uint16Vector: schema.Uint16VectorT,
           schema.SparseIndexVector.Int32Vector: schema.Int32VectorT}[kind]
    vector = cls()
    vector.values = values
    return vector


def dense_weight(model, tensor) -> np.ndarray:
    """A constant's values as the interpreter sees them after DENSIFY: decoded when sparse-encoded (the CSR
    form ``encode_sparse`` and TensorFlow's converter write), else the buffer; int8 / float16 as stored."""
    dtype = {0: np.float32, 1: np.float16, 9: np.int8}[tensor.type]
    raw = np.frombuffer(bytes(model.buffers[tensor.buffer].data), dtype=dtype)
    shape = _ints(tensor.shape)
    if tensor.sparsity is None:
        return raw.reshape(shape)
    dims = tensor.sparsity.dimMetadata
    if list(_ints(tensor.sparsity.traversalOrder)) != list(range(len(shape))) or tensor.sparsity.blockMap is not None and len(tensor.sparsity.blockMap):
        raise ValueError(f"{_name(tensor)}: only row-major CSR without blocks is read here")
    if any(d.format != 0 for d in dims[:-1]) or dims[-1].format != 1:
        raise ValueError(f"{_name(tensor)}: only dense dims followed by one CSR dim are read here")
    segments = np.asarray(dims[-1].arraySegments.values, dtype=np.int64)
    columns = np.asarray(dims[-1].arrayIndices.values, dtype=np.int64)
    rows = np.zeros((segments.size - 1, shape[-1]), dtype=dtype)
    row_of = np.repeat(np.arange(segments.size - 1), np.diff(segments))
    rows[row_of, columns] = raw
    return rows.reshape(shape)


def artifact_zeros(data: bytes, layers) -> dict[str, int]:
    """{layer name: zeros in its weight as the artifact stores it} (through a DENSIFY or a DEQUANTIZE)."""
    from deploykit.formats.tflite.flatbuffer import read_model

    model = read_model(data)
    graph = model.subgraphs[0]
    producer = {t: op for op in graph.operators for t in _ints(op.outputs)}
    codes = _op_names(model)
    outputs = {_name(graph.tensors[_ints(op.outputs)[0]]): op for op in graph.operators if _ints(op.outputs)}
    zeros = {}
    for layer in layers:
        index = _ints(outputs[layer.name].inputs)[WEIGHT_INPUT[codes[outputs[layer.name].opcodeIndex]]]
        while index in producer and codes[producer[index].opcodeIndex] in ("DENSIFY", "DEQUANTIZE"):
            index = _ints(producer[index].inputs)[0]
        zeros[layer.name] = int(np.count_nonzero(dense_weight(model, graph.tensors[index]) == 0))
    return zeros


def _opcode(model, builtin: int) -> int:
    schema = litert_facade.schema()
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _op_names(model) -> list[str]:
    schema = litert_facade.schema()
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}
    return [names.get(max(c.builtinCode, c.deprecatedBuiltinCode), "CUSTOM") for c in model.operatorCodes]


def _name(tensor) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def _ints(values) -> list[int]:
    return [] if values is None else [int(v) for v in values]
