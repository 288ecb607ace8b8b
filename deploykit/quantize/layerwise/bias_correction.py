"""Bias correction: each compressed layer's output mean put back where the reference has it.

Compressing weights moves the mean of a layer's output: E[W_q x] != E[W x] when the rounding errors of a
channel's weights do not cancel (k-means tables and integer grids round the weights of an all-positive
channel one way more than the other; pruning removes small weights of one sign more than the other). The
shift passes through the next layers and grows (Krishnamoorthi 2018, "Quantizing deep convolutional networks
for efficient inference", who recompute batch-norm statistics for it; Nagel et al. 2019, "Data-Free
Quantization", section 4.2, "bias correction"). Adding the shift back to the layer's bias removes it.

Empirical and sequential, on the artifacts themselves:

1. The reference artifact (TFLite: the fp32 ``.tflite``; Core ML: the fp16 program the variant was made from,
   as ``localize`` uses them) runs the fit samples once; each conv / dense layer's per-channel output mean
   (over samples and positions, before any activation) is recorded.
2. The reference with the variant's own weights (read back from the variant, ``localize._variant_weights``,
   so any scheme is exact without re-implementing it) runs again for each layer in execution order: the
   layer's channel means are measured with every earlier correction in place, and the difference to the
   reference is added to its bias. The later layers' weights cannot reach this layer's output, so they are the
   variant's too. A layer without a bias is skipped (and counted).
3. The shifts are written into a copy of the variant: TFLite float32 / fp16 biases, int32 biases of full int8
   (``round(shift / (input_scale * weight_scale))`` per channel, the accumulator's unit); Core ML's fp16 bias
   constants (coremltools' MIL, no pass pipeline).
4. The copy is kept only when its output noise against the reference (``metric.noise``) is lower than the
   variant's on samples the shifts were **not** fitted on (the second half of the samples): a mean estimated
   from a few samples can fit them and miss the rest, and a measure on the same samples would not see it.

TFLite's convolutions carry their activation fused, so the measuring copy runs each one as a convolution
followed by its own activation op (exactly the same arithmetic in float), which exposes the pre-activation
tensor. What the scheme does to activations (full int8's rounding, dynamic-range kernels) is not in the
shifts, which correct the weights' error; the judgement on the real artifact sees both.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploykit.quantize.layerwise import metric
from deploykit.quantize.layerwise.layers import TFLITE_WEIGHTS, CoreMLLayers, run_tflite, weight_reader
from deploykit.quantize.layerwise.localize import _variant_weights

# The compressed schemes the step runs on, per target (fp16's rounding moves no mean that matters).
SCHEMES = {
    "tflite": ("int8-weights", "int8", "int4", "auto", "sparse"),
    "coreml": ("int8-weights", "int8", "int4", "lut", "auto", "sparse"),
}
_TFLITE_BIAS_SLOT = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2, "FULLY_CONNECTED": 2, "TRANSPOSE_CONV": 3}
_COREML_BIASED = ("conv", "linear")  # Core ML ops with a bias argument among the layers CoreMLLayers lists
_FLOAT32, _FLOAT16, _INT32 = 0, 1, 2  # TFLite TensorType codes
# Samples the shifts are fitted on (at most half of those given; each costs one run per layer), and at most how many
# of the others the correction is judged on (two runs each). Judging needs many: on PP-OCRv4's recogniser with int8
# weights (TFLite's dynamic-range kernels requantize activations at run time, and its output is a softmax over 6625
# classes), moving the shifts by 1e-6 moved the noise on 4 held-out lines from -31.5 to -26.9 dB.
FIT_SAMPLES = 8
JUDGED_SAMPLES = 32


def applies_to(target: str, scheme: str) -> bool:
    return any(scheme == name or (name in ("lut", "sparse") and scheme.startswith(name)) for name in SCHEMES.get(target, ()))


@dataclass(frozen=True)
class Shifts:
    values: dict  # layer -> the per-channel shift for its bias (float64), in execution order
    skipped: dict  # why -> how many layers
    spread: dict  # layer -> the spread (std) of its channel means in the reference, what a shift is compared with
    refused: str | None = None  # why nothing could be measured


@dataclass(frozen=True)
class Corrected:
    record: dict  # quantization.bias_correction
    shifts: dict  # layer -> the shift written into its bias, when the corrected variant was kept


def bias_correction_step(target: str, reference: Path, variant: Path, workspace, scheme: str | None = None) -> dict:
    """The targets' step for a compressed variant: correct ``variant`` in place when that lowers its output noise on
    the calibration samples (``workspace.validation``: --validation, --calibration, else the parity inputs); returns the
    record ``quantization.bias_correction``.

    A corrected variant that fails its parity check (``workspace.check``) where the uncorrected one passes is undone:
    lower noise on average can still cost a sample its verdict. Measured on PP-OCRv4's recogniser, TFLite int8-weights
    repaired with 19 layers in float (cosine 0.999, just over its profile's bound): corrected, the noise on 32 held-out
    lines went from -20.3 to -20.6 dB while one of the 8 parity lines fell to cosine 0.957 (its softmax over 6625
    classes flips between near-equal characters)."""
    started = time.perf_counter()
    validation, samples = getattr(workspace, "validation", None), getattr(workspace, "samples", None)
    if validation is None and samples is None:
        return _not_applied("no samples to measure on: parity checking is off (--no-verify)", started)
    variant = Path(variant)
    check = getattr(workspace, "check", None)
    backup = variant.with_name(f"{variant.stem}.uncorrected{variant.suffix}")
    progress = getattr(workspace, "progress", None)
    with progress.step(f"Correcting the biases of {variant.name}") if progress else contextlib.nullcontext():
        if validation is not None:
            found = validation(Path(reference), target)
            feeds, outputs = list(found.feeds), list(found.reference)
        else:
            feeds, outputs = samples(Path(reference), target)[0], None
        if check is not None:
            (shutil.copytree if variant.is_dir() else shutil.copyfile)(variant, backup)
        try:
            record = correct(target, Path(reference), variant, feeds, outputs).record
            if record["applied"] and check is not None and not check(variant, target, scheme) and check(backup, target, scheme):
                _remove(variant)
                backup.rename(variant)
                record = {**record, "applied": False, "why": "the corrected variant fails its parity check where the "
                                                                  "uncorrected one passes"}
        finally:
            _remove(backup)
    return {**record, "seconds": round(time.perf_counter() - started, 3)}


def correct(target: str, reference: Path, variant: Path, feeds: list[dict], reference_outputs=None) -> Corrected:
    """Measure the shifts on ``FIT_SAMPLES`` of ``feeds`` (at most half, spread over them: calibration files are often
    ordered), write them into a copy of ``variant``, and let the copy take the variant's place only when its output
    noise on the others (up to ``JUDGED_SAMPLES``) is lower. ``reference_outputs``: the reference's outputs on
    ``feeds``, when the caller has them."""
    started = time.perf_counter()
    feeds = list(feeds)
    if len(feeds) < 2:
        return Corrected(_not_applied(f"{len(feeds)} sample(s): the shifts need samples to fit and others to judge on",
                                      started), {})
    fitted = set(np.linspace(0, len(feeds) - 1, min(FIT_SAMPLES, len(feeds) // 2)).round().astype(int).tolist())
    held_out = [i for i in range(len(feeds)) if i not in fitted][:JUDGED_SAMPLES]
    judged = [feeds[i] for i in held_out]
    found = measure_shifts(target, reference, variant, [feeds[i] for i in sorted(fitted)])
    if found.refused:
        return Corrected(_not_applied(found.refused, started), {})
    skipped = dict(found.skipped)
    counts = {"samples": len(fitted), "held_out": len(judged), "skipped": skipped}
    if not found.values:
        return Corrected(_not_applied("no conv / dense layer with a bias to correct", started, **counts), {})
    shifts = {layer: shift for layer, shift in found.values.items() if np.any(shift)}  # zero: the reference's so far
    reference_outputs = ([reference_outputs[i] for i in held_out] if reference_outputs is not None
                         else _outputs(target, reference, judged))
    before = metric.noise(reference_outputs, _outputs(target, variant, judged))
    if not shifts or before <= 0:
        return Corrected(_not_applied("the variant's layer means and outputs are the reference's already", started,
                                      **counts), {})
    candidate = variant.with_name(f"{variant.stem}.bias-corrected{variant.suffix}")
    written, unwritable = write_biases(target, variant, candidate, shifts)
    for layer, why in unwritable.items():
        skipped[why] = skipped.get(why, 0) + 1
        shifts.pop(layer)
    after = metric.noise(reference_outputs, _outputs(target, candidate, judged)) if written else before
    record = {"applied": bool(written) and after < before, "layers": len(shifts), "noise_db_before": _db(before),
              "noise_db_after": _db(after), **counts, "largest_shift": _largest(shifts, found.spread)}
    if record["applied"]:
        _remove(variant)
        candidate.rename(variant)
    else:
        _remove(candidate)
        record["why"] = ("no bias could be written into the variant" if not written else
                         f"it did not lower the output noise on the {len(judged)} held-out sample(s) "
                         f"({record['noise_db_before']} dB before, {record['noise_db_after']} dB after)")
    record["seconds"] = round(time.perf_counter() - started, 3)
    return Corrected(record, shifts if record["applied"] else {})


def measure_shifts(target: str, reference: Path, variant: Path, feeds: list[dict]) -> Shifts:
    """Per layer in execution order: the reference's channel means minus the variant's, every earlier shift applied."""
    engine = (_TFLite if target == "tflite" else _CoreML)(Path(reference), Path(variant))
    if engine.refused:
        return Shifts({}, {}, {}, engine.refused)
    goal = engine.reference_means(feeds)
    shifts: dict[str, np.ndarray] = {}
    skipped: dict[str, int] = {}
    for layer in engine.layers:
        why = engine.skip.get(layer)
        if why is None and layer not in goal:
            why = "its output could not be traced in the reference"
        if why is not None:
            skipped[why] = skipped.get(why, 0) + 1
            continue
        shift = goal[layer] - engine.variant_mean(layer, feeds)
        engine.add_to_bias(layer, shift)
        shifts[layer] = shift
    return Shifts(shifts, skipped, {name: float(np.std(mean)) for name, mean in goal.items()})


def write_biases(target: str, variant: Path, out_path: Path, shifts: dict) -> tuple[int, dict[str, str]]:
    """``variant`` written to ``out_path`` with each layer's bias moved by its shift: (layers written, {layer: why
    not}). TFLite: float32 / fp16 biases, full int8's int32 ones; Core ML: plain bias constants."""
    return (_write_tflite if target == "tflite" else _write_coreml)(Path(variant), Path(out_path), shifts)


def _outputs(target: str, path: Path, feeds: list[dict]) -> list[dict]:
    from deploykit.quantize.layerwise.layers import open_layers

    return run_tflite(Path(path).read_bytes(), feeds) if target == "tflite" else open_layers(target, path).run({}, feeds)


def channel_mean(values, axis: int) -> np.ndarray:
    array = np.asarray(values, np.float64)
    return np.moveaxis(array, axis, -1).reshape(-1, array.shape[axis]).mean(axis=0)


# -- TFLite -----------------------------------------------------------------------------------------------------
class _TFLite:
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


def _write_tflite(variant: Path, out_path: Path, shifts: dict) -> tuple[int, dict[str, str]]:
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


# -- Core ML ----------------------------------------------------------------------------------------------------
class _CoreML:
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


def _write_coreml(path: Path, out_path: Path, shifts: dict) -> tuple[int, dict[str, str]]:
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


# -- the record -----------------------------------------------------------------------------------------------
def _not_applied(why: str, started: float, **counts) -> dict:
    return {"applied": False, "layers": 0, "noise_db_before": None, "noise_db_after": None, "samples": 0, **counts,
            "why": why, "seconds": round(time.perf_counter() - started, 3)}


def _largest(shifts: dict[str, np.ndarray], spread: dict[str, float]) -> dict | None:
    """The layer whose shift is largest against the spread of its channel means in the reference."""
    if not shifts:
        return None
    scored = {name: float(np.max(np.abs(shift))) / (spread.get(name) or 1.0) for name, shift in shifts.items()}
    name = max(scored, key=scored.get)
    return {"layer": name, "max_abs": round(float(np.max(np.abs(shifts[name]))), 6), "of_channel_spread": round(scored[name], 4)}


def _db(ratio: float) -> float | None:
    return None if ratio <= 0 else round(10 * math.log10(ratio), 2)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def corrected(target: str, scheme: str, reference: Path, variant: Path, record: dict, workspace, options) -> dict:
    """A target's named step after making a compressed variant: ``record`` with ``bias_correction`` when the step
    applies to ``scheme`` (``options``: the QuantizeOptions; ``--no-bias-correction`` turns it off)."""
    if not getattr(options, "bias_correction", True) or not applies_to(target, scheme):
        return record
    return {**record, "bias_correction": bias_correction_step(target, Path(reference), Path(variant), workspace, scheme)}
