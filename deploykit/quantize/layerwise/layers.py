"""The compressible layers of an artifact, and the artifact run with some of them replaced.

``TFLiteLayers``: the conv / depthwise / fully-connected / transpose-conv weights of a float32
``.tflite``, found once in the file's bytes and patched in a copy, then run by LiteRT (what the
variant computes: ai-edge-quantizer's weight-only schemes dequantize to float32 at load). A layer is
named by its op's first output tensor, the name ai-edge-quantizer's recipes scope an op by.

``CoreMLLayers``: the conv / linear weight constants of a Core ML program (the fp16 program every
compressed Core ML variant starts from), replaced in deploykit's evaluator. A layer is named by its
weight constant, the name coremltools' ``op_name_configs`` takes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np

# op type -> (weight input slot, output-channel axis of the weight)
TFLITE_WEIGHTS = {"CONV_2D": (1, 0), "DEPTHWISE_CONV_2D": (1, 3), "FULLY_CONNECTED": (1, 0), "TRANSPOSE_CONV": (1, 0)}
COREML_WEIGHTS = {"conv": "weight", "linear": "weight", "matmul": "y"}  # op type -> its weight argument
# (op type, choice) pairs the engine does not make: ai-edge-quantizer has no int4 depthwise kernel path and
# leaves those weights float32 (checked by reading the made artifact back), so the search must not count on it
TFLITE_REFUSES = {("DEPTHWISE_CONV_2D", "int4")}
_FLOAT32 = 0


@dataclass(frozen=True)
class Layer:
    name: str
    op: str  # the op type that reads the weight
    shape: tuple[int, ...]
    axis: int  # output channels

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape))

    @property
    def channels(self) -> int:
        return int(self.shape[self.axis]) if self.shape else 1


class TFLiteLayers:
    target = "tflite"

    def __init__(self, base: Path):
        from deploykit.formats.tflite import graph as tflite_graph

        self.raw = Path(base).read_bytes()
        graph = tflite_graph.read(self.raw)
        self._spans: dict[str, tuple[int, int]] = {}
        self._values: dict[str, np.ndarray] = {}
        layers = []
        for index, op in enumerate(graph.graph.operators):
            kind = graph.op_type(index)
            if kind not in TFLITE_WEIGHTS:
                continue
            slot, axis = TFLITE_WEIGHTS[kind]
            inputs = list(op.inputs) if op.inputs is not None else []
            if len(inputs) <= slot or inputs[slot] < 0:
                continue
            tensor = graph.graph.tensors[inputs[slot]]
            data = graph.model.buffers[tensor.buffer].data
            if tensor.type != _FLOAT32 or data is None or len(data) == 0:
                continue  # a weight computed at run time, or already quantized: nothing to choose
            weight = bytes(np.asarray(data, dtype=np.uint8))
            offset = self.raw.find(weight)
            if offset < 0 or offset % 4 or self.raw.find(weight, offset + 1) >= 0:
                continue  # not found exactly once, aligned: leave it out rather than patch the wrong bytes
            name = graph.tensor_name(graph.output(index))
            shape = tuple(int(d) for d in tensor.shape)
            self._spans[name] = (offset, len(weight))
            self._values[name] = np.frombuffer(weight, dtype=np.float32).reshape(shape)
            layers.append(Layer(name, kind, shape, axis))
        self.layers = tuple(layers)

    def weight(self, name: str) -> np.ndarray:
        return self._values[name]

    @staticmethod
    def allows(layer: Layer, choice: str) -> bool:
        return (layer.op, choice) not in TFLITE_REFUSES

    def run(self, replaced: dict[str, np.ndarray], feeds: list[dict]) -> list[dict]:
        """The artifact's outputs on ``feeds`` with the weights ``replaced`` names (same shapes) swapped in."""
        content = self.raw
        if replaced:
            patched = bytearray(self.raw)
            for name, values in replaced.items():
                offset, size = self._spans[name]
                patched[offset:offset + size] = np.ascontiguousarray(values, np.float32).tobytes()
            content = bytes(patched)
        return run_tflite(content, feeds)


def run_tflite(content: bytes, feeds: list[dict]) -> list[dict]:
    from deploykit.formats.litert_facade import interpreter as open_interpreter

    interpreter = open_interpreter(content=content)
    signatures = interpreter.get_signature_list()
    key = "serving_default" if "serving_default" in signatures else sorted(signatures)[0]
    runner = interpreter.get_signature_runner(key)
    return [{name: np.array(value, np.float32, copy=True) for name, value in runner(**feed).items()} for feed in feeds]


class CoreMLLayers:
    target = "coreml"

    def __init__(self, package: Path):
        from deploykit.runners.coreml_eval import load_program

        self.program = load_program(package)
        layers, seen, weight_of = [], set(), weight_reader(self.program)
        for step in self.program.steps:
            name = weight_of(step)
            value = self.program.constants.get(name)
            if name is None or name in seen or value.dtype.kind != "f" or value.ndim < 2:
                continue
            seen.add(name)
            layers.append(Layer(name, step.type, tuple(value.shape), _output_axis(step, value, self.program.constants)))
        self.layers = tuple(layers)

    def weight(self, name: str) -> np.ndarray:
        return np.asarray(self.program.constants[name], np.float32)

    @staticmethod
    def allows(layer: Layer, choice: str) -> bool:
        """int4 blocks of 32 need the input values of each output channel in multiples of 32: coremltools skips any
        other weight, and in an fp16-weights program its pipeline then folds that weight's cast into a float32
        constant (PP-OCRv4's recogniser, 60 % of whose weights have 60, 120 or 240 inputs: an int4 variant of 7.2 MB
        against fp16's 7.5), so the search must not count on it. Tables per 16 channels likewise need the weight's
        first axis in multiples of 16: coremltools skips the others (PP-OCRv4's 6625-class classifier, 3.2 MB, was
        left float32 in an auto variant whose search counted it as lut8-g16)."""
        if "-g" in choice:
            group = int(choice.rpartition("-g")[2])
            return bool(layer.shape) and layer.shape[0] % group == 0
        if choice != "int4-block":
            return True
        inputs = layer.elements // max(layer.channels, 1)
        per_channel = layer.shape[1] if layer.op in ("conv", "linear") and len(layer.shape) > 1 else inputs
        return per_channel % 32 == 0

    def run(self, replaced: dict[str, np.ndarray], feeds: list[dict]) -> list[dict]:
        from deploykit.runners.coreml_eval.program import run

        program = self.program
        if replaced:
            constants = dict(program.constants)
            for name, values in replaced.items():
                stored = np.asarray(values).astype(constants[name].dtype)
                stored.flags.writeable = False
                constants[name] = stored
            program = dataclasses.replace(program, constants=MappingProxyType(constants))
        return [{k: np.asarray(v, np.float32) for k, v in run(program, feed)[0].items()} for feed in feeds]


def weight_reader(program):
    """A function: step -> the name of the constant weight a conv / linear / matmul step reads, or None; directly
    or through one ``cast`` (the fp16-weights program a failing fp16 variant ends in casts fp16 constants to float32
    where they are read)."""
    casts = {}
    for step in program.steps:
        if step.type == "cast" and step.outputs:
            source = getattr(next(iter(step.inputs.get("x", ())), None), "name", None)
            if isinstance(program.constants.get(source), np.ndarray):
                casts[step.outputs[0].name] = source

    def weight(step) -> str | None:
        argument = COREML_WEIGHTS.get(step.type)
        for binding in step.inputs.get(argument, ()) if argument else ():
            name = getattr(binding, "name", None)
            name = casts.get(name, name)
            if isinstance(program.constants.get(name), np.ndarray):
                return name
        return None

    return weight


def _output_axis(step, value: np.ndarray, constants) -> int:
    """Output channels: first for conv and linear weights; a matmul's constant y is (in, out) unless transposed."""
    if step.type != "matmul":
        return 0
    flag = step.inputs.get("transpose_y", ())
    transposed = bool(np.asarray(constants.get(getattr(flag[0], "name", None), False))) if flag else False
    return value.ndim - 2 if transposed else value.ndim - 1


def open_layers(target: str, path: Path):
    return {"tflite": TFLiteLayers, "coreml": CoreMLLayers}[target](path)
