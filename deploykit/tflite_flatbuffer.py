"""Edit a .tflite flatbuffer with the LiteRT schema's object API (no TensorFlow import)."""

from __future__ import annotations


def read_model(data: bytes):
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(data), 0))


def write_model(model, size_hint: int = 1024) -> bytes:
    """Pack a ModelT. Weight buffers are aligned to 16 bytes: the generated packing code aligns them to 1,
    and LiteRT maps weights in place, where misaligned data is slower or refused by some delegates."""
    import flatbuffers

    model.buffers = [_aligned(b) for b in model.buffers or []]
    builder = flatbuffers.Builder(max(1024, size_hint))
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _aligned(buffer):
    """Re-type a BufferT so that packing aligns its data to 16 bytes."""
    from ai_edge_litert import schema_py_generated as schema

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


def set_signature(data: bytes, input_names: list[str], output_names: list[str], key: str = "serving_default") -> bytes:
    """Name the main subgraph's inputs and outputs in a signature, replacing any existing one.

    Apps call models by signature names (``runner(image=...)['logits']``); a frozen graph has none.
    """
    from ai_edge_litert import schema_py_generated as schema

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
    signature.outputs = [tensor_map(n, i) for n, i in zip(output_names, graph.outputs)]
    model.signatureDefs = [signature]
    return write_model(model, len(data) + 4096)
