"""TFLite int4 is only offered if it is decoded correctly here: LiteRT's DEQUANTIZE of every int4
weight must equal scale x value, unpacked from the file independently (two values per byte, low
nibble first, per output channel scales, zero point 0)."""

from __future__ import annotations

import numpy as np

from deploykit import convert
from tests.conftest import save_keras


def test_litert_decodes_int4_weights_as_stored(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from deploykit.formats.tflite.flatbuffer import read_model

    report = convert(save_keras("mobilenet", tmp_path), to="tflite", out=tmp_path / "o", quantize="int4")
    path = tmp_path / "o" / report.artifacts[1].path
    data = path.read_bytes()
    model = read_model(data)
    graph = model.subgraphs[0]
    interpreter = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], np.zeros((1, 32, 32, 3), np.float32))
    interpreter.invoke()
    checked = 0
    for op in graph.operators:
        source = graph.tensors[int(op.inputs[0])]
        if source.type != 17:  # INT4
            continue
        buffer = model.buffers[source.buffer]
        raw = np.frombuffer(bytes(bytearray(buffer.data)) if buffer.data is not None and len(buffer.data)
                            else data[buffer.offset:buffer.offset + buffer.size], np.uint8)
        count = int(np.prod(source.shape))
        nibbles = np.stack([raw & 0x0F, raw >> 4], axis=1).reshape(-1)[:count].astype(np.int8)
        values = np.where(nibbles > 7, nibbles - 16, nibbles).reshape(source.shape).astype(np.float32)
        scale = np.asarray(source.quantization.scale, np.float32)
        assert not np.any(np.asarray(source.quantization.zeroPoint))
        axis = source.quantization.quantizedDimension
        expected = values * scale.reshape([-1 if i == axis else 1 for i in range(values.ndim)])
        decoded = interpreter.get_tensor(int(op.outputs[0]))
        np.testing.assert_array_equal(decoded, expected)
        assert len(np.unique(nibbles)) > 8  # really 4-bit data, not a constant
        checked += 1
    assert checked >= 3
