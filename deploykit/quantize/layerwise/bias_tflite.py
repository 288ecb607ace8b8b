"""Bias correction's TFLite engine: the layers' channel means measured on a rewritten fp32 ``.tflite`` and the
shifts written into a variant's biases (``bias_correction`` has the algorithm). An engine (``TFLiteMeans`` here,
``bias_coreml.CoreMLMeans``) gives ``measure_shifts`` its ``refused``, ``layers``, ``skip``, ``reference_means``,
``variant_mean`` and ``add_to_bias``.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from deploykit.quantize.layerwise.layers import TFLITE_WEIGHTS
from deploykit.quantize.layerwise.localize import _variant_weights

_TFLITE_BIAS_SLOT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}
_FLOAT32, _FLOAT16, _INT32 = 0, 1, 2  # TFLite TensorType codes


# Both engines reduce a layer's output with it; it lives here, not in bias_correction, because bias_correction imports
# the engines (the floors test counts a lazy import back as a cycle).
def channel_mean(values, axis: int) -> np.ndarray:
    array = np.asarray(values, np.float64)
    return np.moveaxis(array, axis, -1).reshape(-1, array.shape[axis]).mean(axis=0)


class TFLiteMeans:
    """The fp32 ``.tflite`` rewritten once for measuring: fused activations split out, every layer's pre-activation
    tensor a graph output (so LiteRT runs it with XNNPACK, 6x faster here than its builtin kernels keeping every
    tensor), the variant's weights in place. Each bias change is then a patch of the packed bytes."""

    def __init__(self, reference: Path, variant: Path):
        from deploykit.formats.tflite import graph as tflite_graph
        from deploykit.formats.tflite.flatbuffer import read_model

        self.refused = _float_io_refusal(variant)
        self.size = Path(reference).stat().st_size + 65536
        self.model = read_model(Path(reference).read_bytes())
        view = tflite_graph.Graph(self.model)
        self.layers: list[str] = []
        self.skip: dict[str, str] = {}
        self._traced: dict[str, int] = {}  # layer -> the tensor holding its output before the activation
        self._bias: dict[str, int] = {}  # layer -> its (unshared) float32 bias buffer
        weights: dict[str, int] = {}
        for index in range(len(view.graph.operators)):
            kind = view.op_type(index)
            if kind not in TFLITE_WEIGHTS:
                continue
            op = view.graph.operators[index]
            inputs = [int(t) for t in op.inputs]
            weight = inputs[TFLITE_WEIGHTS[kind][0]] if len(inputs) > TFLITE_WEIGHTS[kind][0] else -1
            if weight < 0 or self.model.buffers[view.graph.tensors[weight].buffer].data is None:
                continue
            name = view.tensor_name(view.output(index))
            self.layers.append(name)
            weights[name] = weight
            slot = _TFLITE_BIAS_SLOT[kind]
            bias = inputs[slot] if len(inputs) > slot else -1
            if bias < 0:
                self.skip[name] = "no bias"
            elif view.graph.tensors[bias].type != _FLOAT32 or self.model.buffers[view.graph.tensors[bias].buffer].data is None:
                self.skip[name] = "its bias is not a float32 constant"
            else:
                self._bias[name] = self._own_buffer(bias)
            self._traced[name] = view.output(index)
        self._split_activations(view)
        graph = self.model.subgraphs[0]
        outputs = [int(t) for t in graph.outputs]
        graph.outputs = np.array(outputs + [t for t in self._traced.values() if t not in outputs], np.int32)
        self.reference_content = self._pack()
        found = _variant_weights("tflite", variant, None) if not self.refused else {}
        for name, tensor in weights.items():
            mine = found.get(name)
            stored = self._values(self._own_buffer(tensor), np.float32)
            if mine is None or mine.size != stored.size:
                self.skip.setdefault(name, "its weight could not be read back from the variant")
                continue
            self._set(self._buffer_of(tensor), mine)
        self._content = bytearray(self._pack())
        self._offsets = _data_offsets(bytes(self._content))

    # -- reading and writing the object model
    def _buffer_of(self, tensor: int) -> int:
        return self.model.subgraphs[0].tensors[tensor].buffer

    def _own_buffer(self, tensor: int) -> int:
        """The tensor's buffer, copied first when another tensor shares it (so a change touches this tensor only)."""
        schema_buffer = self.model.buffers[self._buffer_of(tensor)]
        users = sum(1 for graph in self.model.subgraphs for t in graph.tensors if t.buffer == self._buffer_of(tensor))
        if users > 1:
            clone = copy.copy(schema_buffer)
            clone.data = np.array(schema_buffer.data, np.uint8, copy=True)
            self.model.buffers.append(clone)
            self.model.subgraphs[0].tensors[tensor].buffer = len(self.model.buffers) - 1
        return self._buffer_of(tensor)

    def _values(self, buffer: int, dtype) -> np.ndarray:
        return np.frombuffer(bytes(bytearray(self.model.buffers[buffer].data)), dtype=dtype).copy()

    def _set(self, buffer: int, values: np.ndarray) -> None:
        self.model.buffers[buffer].data = np.frombuffer(np.ascontiguousarray(values, "<f4").tobytes(), np.uint8)

    def _pack(self) -> bytes:
        from deploykit.formats.tflite.flatbuffer import write_model

        return write_model(self.model, self.size)

    def _split_activations(self, view) -> None:
        """Each layer with a fused activation computes into a new tensor, read by the activation as its own op."""
        from deploykit.formats import litert_facade

        schema = litert_facade.schema()
        ops = {1: schema.BuiltinOperator.RELU, 2: schema.BuiltinOperator.RELU_N1_TO_1, 3: schema.BuiltinOperator.RELU6,
               4: schema.BuiltinOperator.TANH}
        graph = self.model.subgraphs[0]
        by_output = {int(op.outputs[0]): op for op in graph.operators if op.outputs is not None and len(op.outputs)}
        for name in self.layers:
            op = by_output[self._traced[name]]
            fused = getattr(op.builtinOptions, "fusedActivationFunction", 0) or 0
            if not fused:
                continue
            if fused not in ops:
                self.skip.setdefault(name, "its fused activation has no op of its own")
                continue
            output = self._traced[name]
            pre = copy.copy(graph.tensors[output])
            pre.name = f"{view.tensor_name(output)}/before_activation".encode()
            pre.buffer = 0  # the empty buffer: a run-time tensor
            graph.tensors.append(pre)
            self._traced[name] = len(graph.tensors) - 1
            op.outputs = np.array([self._traced[name]], np.int32)
            op.builtinOptions.fusedActivationFunction = 0
            activation = schema.OperatorT()
            activation.opcodeIndex = self._opcode(schema, ops[fused])
            activation.inputs = np.array([self._traced[name]], np.int32)
            activation.outputs = np.array([output], np.int32)
            graph.operators.insert(graph.operators.index(op) + 1, activation)

    def _opcode(self, schema, builtin: int) -> int:
        for index, code in enumerate(self.model.operatorCodes):
            if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
                return index
        code = schema.OperatorCodeT()
        code.builtinCode = code.deprecatedBuiltinCode = builtin
        code.version = 1
        self.model.operatorCodes.append(code)
        return len(self.model.operatorCodes) - 1

    # -- measuring
    def _trace(self, content: bytes, feeds: list[dict], layers) -> dict[str, np.ndarray]:
        from deploykit.formats.litert_facade import interpreter as open_interpreter

        interpreter = open_interpreter(content=content)
        signatures = interpreter.get_signature_list()
        runner = interpreter.get_signature_runner("serving_default" if "serving_default" in signatures else sorted(signatures)[0])
        sums: dict[str, np.ndarray] = {}
        for feed in feeds:
            runner(**feed)
            for name in layers:
                sums[name] = sums.get(name, 0.0) + channel_mean(interpreter.get_tensor(self._traced[name]), -1)
        return {name: total / len(feeds) for name, total in sums.items()}

    def reference_means(self, feeds):
        return self._trace(self.reference_content, feeds, self.layers)

    def variant_mean(self, layer, feeds):
        return self._trace(bytes(self._content), feeds, [layer])[layer]

    def add_to_bias(self, layer, shift):
        buffer = self._bias[layer]
        values = (self._values(buffer, np.float32) + shift).astype("<f4")
        self._set(buffer, values)
        start = self._offsets[buffer]
        self._content[start:start + values.nbytes] = values.tobytes()


def write_tflite_biases(variant: Path, out_path: Path, shifts: dict) -> tuple[int, dict[str, str]]:
    from deploykit.formats.tflite import graph as tflite_graph
    from deploykit.formats.tflite.flatbuffer import read_model, write_model

    source = variant.read_bytes()
    model = read_model(source)
    view = tflite_graph.Graph(model)
    graph = view.graph
    by_name = {view.tensor_name(view.output(i)): i for i in range(len(graph.operators)) if view.op_type(i) in _TFLITE_BIAS_SLOT}
    unwritable, written = {}, 0
    for layer, shift in shifts.items():
        index = by_name.get(layer)
        why = "its op is not in the variant" if index is None else _write_tflite_bias(model, view, index, shift)
        if why:
            unwritable[layer] = why
        else:
            written += 1
    out_path.write_bytes(write_model(model, len(source) + 65536))
    return written, unwritable


def _data_offsets(content: bytes) -> dict[int, int]:
    """Where each buffer's data starts in a packed .tflite (the flatbuffer reader's views into ``content``)."""
    from deploykit.formats import litert_facade

    base = np.frombuffer(content, np.uint8).__array_interface__["data"][0]
    model = litert_facade.schema().Model.GetRootAs(content, 0)
    offsets = {}
    for index in range(model.BuffersLength()):
        buffer = model.Buffers(index)
        if buffer.DataLength() > 0:
            offsets[index] = buffer.DataAsNumpy().__array_interface__["data"][0] - base
    return offsets


def _write_tflite_bias(model, view, index: int, shift: np.ndarray) -> str | None:
    graph = view.graph
    inputs = [int(t) for t in graph.operators[index].inputs]
    slot = _TFLITE_BIAS_SLOT[view.op_type(index)]
    bias = inputs[slot] if len(inputs) > slot else -1
    if bias < 0:
        return "no bias in the variant"
    if bias in view.producer and view.op_type(view.producer[bias]) == "DEQUANTIZE":  # fp16 bias, widened at run time
        bias = int(graph.operators[view.producer[bias]].inputs[0])
    tensor = graph.tensors[bias]
    buffer = model.buffers[tensor.buffer]
    if bias in view.producer or buffer.data is None or len(buffer.data) == 0:
        return "its bias is computed at run time in the variant"
    if sum(1 for t in graph.tensors if t.buffer == tensor.buffer) > 1:  # shared: give this tensor its own copy
        buffer = copy.copy(buffer)
        model.buffers.append(buffer)
        tensor.buffer = len(model.buffers) - 1
    raw = bytes(bytearray(buffer.data))
    if tensor.type == _FLOAT32:
        values = (np.frombuffer(raw, "<f4") + shift).astype("<f4")
    elif tensor.type == _FLOAT16:
        values = (np.frombuffer(raw, "<f2").astype(np.float64) + shift).astype("<f2")
    elif tensor.type == _INT32:
        unit = _accumulator_unit(graph, inputs, view.op_type(index), len(shift))
        if unit is None:
            return "its int32 bias has no input and weight scales to convert the shift with"
        values = np.clip(np.frombuffer(raw, "<i4").astype(np.int64) + np.round(shift / unit), -2**31, 2**31 - 1).astype("<i4")
    else:
        return f"its bias has TFLite type {tensor.type}, not float32, float16 or int32"
    if values.size != shift.size:
        return "its bias does not have one value per output channel"
    buffer.data = np.frombuffer(values.tobytes(), np.uint8)
    return None


def _accumulator_unit(graph, inputs: list[int], kind: str, channels: int) -> np.ndarray | None:
    """input scale x weight scale per output channel: the unit of an int8 kernel's int32 accumulator and bias."""
    data = inputs[2] if kind == "TRANSPOSE_CONV" else inputs[0]
    weight = inputs[1]

    def scales(t):
        params = graph.tensors[t].quantization
        return None if params is None or params.scale is None else np.asarray(params.scale, np.float64)

    activation, weights = scales(data), scales(weight)
    if activation is None or weights is None or activation.size != 1 or weights.size not in (1, channels):
        return None
    unit = activation[0] * np.broadcast_to(weights, (channels,))
    return unit if np.all(unit > 0) else None


def _float_io_refusal(variant: Path) -> str | None:
    from deploykit.formats.litert_facade import interpreter as open_interpreter

    interpreter = open_interpreter(Path(variant), delegates=False)
    details = interpreter.get_input_details() + interpreter.get_output_details()
    if any(np.dtype(d["dtype"]).kind != "f" for d in details):
        return "the variant's inputs or outputs are integers (--int8-io): the samples and the noise are float"
    return None
