"""Estimating a TFLite fp16 variant from its fp32 base: conv / fully-connected weights rounded to fp16.

ai-edge-quantizer's float casting stores exactly these weights as float16 and dequantizes them at
load, so the CPU computes in float32 (``quantize.fp16``): rounding the same weights in a copy of the
fp32 flatbuffer and running it with LiteRT reproduces the variant's arithmetic. The copy is patched
in place (each weight's bytes are found once in the file), so one estimate costs one interpreter
start and a few inferences. Layers are named by their op's first output tensor, the name
``quantize_tflite``'s ``kept`` takes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deploykit.quantize.fp16_mixed import SampledEstimate

# The ops whose weights ai-edge-quantizer's FLOAT_CASTING stores as float16 (its algorithm_manager).
CAST_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1, "TRANSPOSE_CONV": 1, "EMBEDDING_LOOKUP": 1}
_FLOAT32 = 0


class TFLiteFp16Estimate(SampledEstimate):
    unit = "layer"

    def __init__(self, base: Path, feeds: list[dict], floors: dict[str, float]):
        from deploykit.formats.tflite import graph as tflite_graph

        self.raw = Path(base).read_bytes()
        graph = tflite_graph.read(self.raw)
        self._spans: dict[str, tuple[int, int]] = {}
        for index, op in enumerate(graph.graph.operators):
            slot = CAST_OPS.get(graph.op_type(index))
            inputs = list(op.inputs) if op.inputs is not None else []
            if slot is None or len(inputs) <= slot or inputs[slot] < 0:
                continue
            tensor = graph.graph.tensors[inputs[slot]]
            data = graph.model.buffers[tensor.buffer].data
            if tensor.type != _FLOAT32 or data is None or len(data) == 0:
                continue
            weight = bytes(np.asarray(data, dtype=np.uint8))
            offset = self.raw.find(weight)
            if offset < 0 or offset % 4 or self.raw.find(weight, offset + 1) >= 0:
                continue  # not found once, 4-byte aligned: leave it out rather than patch the wrong bytes
            self._spans[graph.tensor_name(graph.output(index))] = (offset, len(weight))
        self.layers = tuple(self._spans)
        self.unit_bytes = {name: size for name, (_, size) in self._spans.items()}
        self._start(feeds, floors)

    def selector_keys(self, kept) -> tuple[str, ...]:
        """ai-edge-quantizer scopes an op by its output tensor name: the layer names themselves."""
        return tuple(kept)

    def _outputs(self, kept, feeds) -> list[dict]:
        if kept is None:
            return self._run(self.raw, feeds)
        patched = bytearray(self.raw)
        for name, (offset, size) in self._spans.items():
            if name not in kept:
                weight = np.frombuffer(self.raw, dtype=np.float32, count=size // 4, offset=offset)
                patched[offset:offset + size] = weight.astype(np.float16).astype(np.float32).tobytes()
        return self._run(bytes(patched), feeds)

    @staticmethod
    def _run(content: bytes, feeds) -> list[dict]:
        from deploykit.formats.litert_facade import interpreter as open_interpreter

        interpreter = open_interpreter(content=content)
        signatures = interpreter.get_signature_list()
        key = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
        runner = interpreter.get_signature_runner(key)
        return [{name: np.array(value, copy=True) for name, value in runner(**feed).items()} for feed in feeds]
