"""Edit a .tflite flatbuffer with the LiteRT schema's object API (no TensorFlow import)."""

from __future__ import annotations


def read_model(data: bytes):
    from ai_edge_litert import schema_py_generated as schema

    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytearray(data), 0))


def write_model(model) -> bytes:
    import flatbuffers

    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


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
    return write_model(model)
