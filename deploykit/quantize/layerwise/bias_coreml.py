"""Bias correction's Core ML engine: the layers' channel means measured in deploykit's evaluator and the shifts
written into a variant's bias constants (``bias_correction`` has the algorithm).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from deploykit.quantize.layerwise.bias_tflite import channel_mean
from deploykit.quantize.layerwise.layers import CoreMLLayers, weight_reader
from deploykit.quantize.layerwise.localize import _variant_weights

_COREML_BIASED = ("conv", "linear")  # Core ML ops with a bias argument among the layers CoreMLLayers lists


class CoreMLMeans:
    """The fp16 program in deploykit's evaluator, with the variant's weights as its constants; a layer's output is
    read from the program run only up to that layer's op."""

    def __init__(self, reference: Path, variant: Path):
        from deploykit.runners.coreml_eval import load_program

        self.refused = None
        layers = CoreMLLayers(reference)
        program = layers.program
        weight_of = weight_reader(program)
        self.layers, self.skip = [], {}
        self._step: dict[str, int] = {}  # layer (its op's output name) -> index in program.steps
        self._bias: dict[str, str] = {}  # layer -> the reference's bias constant
        readers: dict[str, int] = {}
        for step in program.steps:
            for bindings in step.inputs.values():
                for binding in bindings:
                    name = getattr(binding, "name", None)
                    readers[name] = readers.get(name, 0) + 1
        weights = {}
        for index, step in enumerate(program.steps):
            weight = weight_of(step) if step.outputs else None
            if weight is None:
                continue
            name = step.outputs[0].name
            self.layers.append(name)
            self._step[name] = index
            weights[name] = weight
            bias = getattr(next(iter(step.inputs.get("bias", ())), None), "name", None)
            if step.type not in _COREML_BIASED or bias is None:
                self.skip[name] = "no bias"
            elif not isinstance(program.constants.get(bias), np.ndarray) or program.op_types.get(bias, "const") != "const":
                self.skip[name] = "its bias is not a constant"
            elif readers.get(bias, 0) > 1:
                self.skip[name] = "its bias constant is shared with another op"
            else:
                self._bias[name] = bias
        self.reference = program
        found = _variant_weights("coreml", variant, layers)
        variant_program = load_program(variant)
        constants = dict(program.constants)
        for name, weight in weights.items():
            mine = found.get(weight)
            if mine is None:
                mine = _split_linear(variant_program, name)[0]
            if mine is None or mine.shape != constants[weight].shape:
                self.skip.setdefault(name, "its weight could not be read back from the variant")
                continue
            constants[weight] = _frozen(mine.astype(constants[weight].dtype))
        self._constants = constants

    def _axis(self, layer: str) -> int:
        return -1 if self.reference.steps[self._step[layer]].type in ("linear", "matmul") else 1

    def reference_means(self, feeds):
        from deploykit.runners.coreml_eval.program import run

        sums: dict[str, np.ndarray] = {}
        for feed in feeds:
            _, intermediates = run(self.reference, feed, keep_intermediates=True)
            for name in self.layers:
                if name in intermediates:
                    sums[name] = sums.get(name, 0.0) + channel_mean(intermediates[name], self._axis(name))
        return {name: total / len(feeds) for name, total in sums.items()}

    def variant_mean(self, layer, feeds):
        from deploykit.runners.coreml_eval.program import run

        index = self._step[layer]
        step = self.reference.steps[index]
        program = dataclasses.replace(self.reference, constants=dict(self._constants), steps=self.reference.steps[:index + 1],
                                      frees=self.reference.frees[:index + 1], outputs=(step.outputs[0],),
                                      output_names=(layer,))
        total = 0.0
        for feed in feeds:
            total = total + channel_mean(run(program, feed)[0][layer], self._axis(layer))
        return total / len(feeds)

    def add_to_bias(self, layer, shift):
        name = self._bias[layer]
        self._constants[name] = _frozen((self._constants[name].astype(np.float64) + shift).astype(self._constants[name].dtype))


def write_coreml_biases(path: Path, out_path: Path, shifts: dict) -> tuple[int, dict[str, str]]:
    from deploykit.formats import coremltools_facade
    from deploykit.runners.coreml_eval import load_program

    variant = load_program(path)
    by_output = {step.outputs[0].name: step for step in variant.steps if step.outputs}
    values, unwritable = {}, {}
    for layer, shift in shifts.items():
        step = by_output.get(layer)
        bias = getattr(next(iter(step.inputs.get("bias", ())), None), "name", None) if step is not None else None
        if bias is None and step is not None and step.type == "add":
            bias = _split_linear(variant, layer)[1]
        if bias is None:
            unwritable[layer] = "no bias in the variant"
        elif variant.op_types.get(bias) != "const":
            unwritable[layer] = "its bias is compressed in the variant"
        else:
            values[bias] = np.asarray(variant.constants[bias], np.float64) + shift
    if values:
        coremltools_facade.replace_constants(path, out_path, values)
    return len(values), unwritable


def _split_linear(program, name: str) -> tuple[np.ndarray | None, str | None]:
    """A ``linear`` layer a compressed program writes as ``matmul`` then ``add`` (the add keeps the linear's output
    name): (its weight as linear stores it, output channels first; the add's constant, its bias). coremltools writes
    the linear layers of PP-OCRv4's fp16-weights base, whose weights are cast to float32 where read, this way."""
    producers = {output.name: step for step in program.steps for output in step.outputs}
    add = producers.get(name)
    if add is None or add.type != "add":
        return None, None
    operands = [getattr(binding, "name", None) for key in ("x", "y") for binding in add.inputs.get(key, ())]
    matmul = next((producers[n] for n in operands if n in producers and producers[n].type == "matmul"), None)
    bias = next((n for n in operands if program.op_types.get(n) == "const" and np.ndim(program.constants.get(n)) == 1), None)
    weight = weight_reader(program)(matmul) if matmul is not None else None
    if weight is None or bias is None:
        return None, None
    flag = matmul.inputs.get("transpose_y", ())
    transposed = bool(np.asarray(program.constants.get(getattr(flag[0], "name", None), False))) if flag else False
    values = np.asarray(program.constants[weight], np.float32)
    return (values if transposed else values.T), bias


def _frozen(values: np.ndarray) -> np.ndarray:
    values.flags.writeable = False
    return values
