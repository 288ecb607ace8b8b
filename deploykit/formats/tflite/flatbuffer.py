"""Edit a .tflite flatbuffer with the LiteRT schema's object API (no TensorFlow import)."""

from __future__ import annotations

from deploykit.formats import litert_facade


def read_model(data: bytes):
    """The ModelT of ``data``, with buffers stored after the flatbuffer (ai-edge-quantizer's layout:
    ``offset`` / ``size`` into the file) moved inside it, since packing moves everything they point at."""
    schema = litert_facade.schema()

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(data), 0))
    for buffer in model.buffers or []:
        offset, size = int(buffer.offset or 0), int(buffer.size or 0)
        if offset > 1:  # 1 is the schema's "no data" marker
            if offset + size > len(data):
                raise ValueError(f"a buffer points past the end of the file ({offset} + {size} > {len(data)})")
            buffer.data = bytes(data[offset:offset + size])
            buffer.offset = buffer.size = 0
    return model


def write_model(model, size_hint: int = 1024) -> bytes:
    """Pack a ModelT. Weight buffers are aligned to 16 bytes: the generated packing code aligns them to 1,
    and LiteRT maps weights in place, where misaligned data is slower or refused by some delegates.

    Identical quantization vectors are stored once and shared (flatbuffer tables may point at the same
    vector). Per-channel int8 needs an int64 zero point per channel for every weight and bias, all
    zero: on MobileNetV2 that is 280 KB of zeros, 8 % of the 3.5 MB model, which sharing removes."""
    import flatbuffers

    model.buffers = [_aligned(b) for b in model.buffers or []]
    packed_vectors: dict = {}  # one builder per call, so one cache of its vector offsets
    for graph in model.subgraphs or []:
        for tensor in graph.tensors or []:
            if tensor.quantization is not None:
                tensor.quantization = _shared(tensor.quantization, packed_vectors)
    builder = flatbuffers.Builder(max(1024, size_hint))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _shared(params, cache: dict):
    """Re-type a QuantizationParametersT so that its vectors are packed once per content, their offsets
    kept in ``cache`` (the builder has __slots__, so the cache cannot live on it)."""
    import numpy as np
    schema = litert_facade.schema()

    class SharedQuantizationT(schema.QuantizationParametersT):
        def Pack(self, builder):
            def vector(values, dtype):
                if values is None:
                    return None
                array = np.ascontiguousarray(values, dtype=dtype)
                key = (array.dtype.str, array.tobytes())
                if key not in cache:
                    cache[key] = builder.CreateNumpyVector(array)
                return cache[key]

            vectors = {"min": vector(self.min, "<f4"), "max": vector(self.max, "<f4"),
                       "scale": vector(self.scale, "<f4"), "zeroPoint": vector(self.zeroPoint, "<i8")}
            details = self.details.Pack(builder) if self.details is not None else None
            schema.QuantizationParametersStart(builder)
            for name, add in (("min", schema.QuantizationParametersAddMin), ("max", schema.QuantizationParametersAddMax),
                              ("scale", schema.QuantizationParametersAddScale),
                              ("zeroPoint", schema.QuantizationParametersAddZeroPoint)):
                if vectors[name] is not None:
                    add(builder, vectors[name])
            schema.QuantizationParametersAddDetailsType(builder, self.detailsType)
            if details is not None:
                schema.QuantizationParametersAddDetails(builder, details)
            schema.QuantizationParametersAddQuantizedDimension(builder, self.quantizedDimension)
            return schema.QuantizationParametersEnd(builder)

    shared = SharedQuantizationT()
    shared.__dict__.update(params.__dict__)
    return shared


def compact(data: bytes) -> bytes:
    """``data`` rewritten with every buffer inside the flatbuffer, 16-byte aligned, and shared
    quantization vectors (see write_model)."""
    return write_model(read_model(data), len(data) + 4096)


def _aligned(buffer):
    """Re-type a BufferT so that packing aligns its data to 16 bytes."""
    schema = litert_facade.schema()

    class AlignedBufferT(schema.BufferT):
        def Pack(self, builder):
            data = None
            if self.data is not None:
                raw = self.data if isinstance(self.data, bytes) else bytes(bytearray(self.data))
                builder.StartVector(1, len(raw), 16)
                builder.head -= len(raw)
                builder.Bytes[builder.head:builder.head + len(raw)] = raw
                data = builder.EndVector()
            schema.BufferStart(builder)
            if data is not None:
                schema.BufferAddData(builder, data)
            schema.BufferAddOffset(builder, self.offset or 0)
            schema.BufferAddSize(builder, self.size or 0)
            return schema.BufferEnd(builder)

    aligned = AlignedBufferT()
    aligned.data, aligned.offset, aligned.size = buffer.data, buffer.offset, buffer.size
    return aligned


def set_signature(data: bytes, input_names: list[str], output_names: list[str], key: str = "serving_default",
                  order: list[str] | None = None) -> bytes:
    """Name the main subgraph's inputs and outputs in a signature, replacing any existing one.

    Apps call models by signature names (``runner(image=...)['logits']``); a frozen graph has none.
    ``input_names`` / ``output_names`` are the source's names of the subgraph's tensors, in subgraph
    order; they are made identifier-safe here (``deploykit.core.names``), the one place every TFLite path
    names its signature. ``order`` (source output names) lists the signature's outputs in the
    source's order, whatever order the converter left the subgraph's outputs in.
    """
    schema = litert_facade.schema()

    from deploykit.core.names import feature_names

    if order is not None:
        rank = {name: i for i, name in enumerate(order)}
        pairs = sorted(zip(output_names, range(len(output_names))), key=lambda p: rank.get(p[0], len(rank) + p[1]))
    else:
        pairs = list(zip(output_names, range(len(output_names))))
    input_names = feature_names(input_names)
    safe_outputs = dict(zip(output_names, feature_names(output_names)))

    model = read_model(data)
    graph = model.subgraphs[0]
    if len(graph.inputs) != len(input_names) or len(graph.outputs) != len(output_names):
        raise ValueError("signature names do not match the subgraph's inputs and outputs")

    def tensor_map(name: str, index: int):
        entry = schema.TensorMapT()
        entry.name, entry.tensorIndex = name, int(index)
        return entry

    signature = schema.SignatureDefT()
    signature.signatureKey = key
    signature.subgraphIndex = 0
    signature.inputs = [tensor_map(n, i) for n, i in zip(input_names, graph.inputs)]
    signature.outputs = [tensor_map(safe_outputs[n], graph.outputs[i]) for n, i in pairs]
    model.signatureDefs = [signature]
    return write_model(model, len(data) + 4096)
