"""``--localize`` on a compressed variant: where its error comes from, layer by layer.

Two figures per layer, ranked by the first:

- **alone**: the output noise when only this layer's weights are the variant's (read back from the variant
  itself: TFLite's dequantized, fp16 or integer tensors, Core ML's decompressed constants) and every other
  layer keeps the reference's. Reading the variant's own weights makes this exact for any scheme (the lut
  plan's tables, pruning masks, a per-layer ``auto`` mix) without re-implementing it. Full int8's activation
  rounding is not a weight and is not in this figure; the second one sees it.
- **at the layer**: the layer's own output in the variant against the reference artifact's at the same point
  (max relative error on one sample), read from both runtimes' traces by tensor name: where the error has
  grown to, whatever caused it.

The reference is the artifact the variant was made from (TFLite: the fp32 ``.tflite``; Core ML: the fp16
program), so a layer the scheme left alone scores nothing.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from deploykit.quantize.layerwise import metric
from deploykit.quantize.layerwise.layers import TFLITE_WEIGHTS, open_layers, weight_reader

SAMPLES = 4


def localize_variant(target: str, reference: Path, variant: Path, feeds: list[dict]) -> dict:
    layers = open_layers(target, reference)
    feeds = list(feeds[:SAMPLES])
    baseline = layers.run({}, feeds)
    weights = _variant_weights(target, variant, layers)
    at_layer = _at_layer(target, reference, variant, feeds[0])
    rows = []
    for layer in layers.layers:
        mine = weights.get(layer.name)
        row = {"layer": layer.name, "op": layer.op, "elements": layer.elements}
        if mine is None or mine.shape != tuple(layer.shape):
            row["noise_alone_db"] = None
            row["note"] = "its weight could not be read back from the variant"
        else:
            changed = not np.array_equal(mine, layers.weight(layer.name))
            noise = metric.noise(baseline, layers.run({layer.name: mine}, feeds)) if changed else 0.0
            row["noise_alone_db"] = None if noise <= 0 else round(10 * math.log10(noise), 1)
            row["weight_error"] = _relative(layers.weight(layer.name), mine)
        if layer.name in at_layer:
            row["error_at_layer"] = at_layer[layer.name]
        rows.append(row)
    rows.sort(key=lambda r: -1e9 if r["noise_alone_db"] is None else r["noise_alone_db"], reverse=True)
    total = metric.noise(baseline, open_layers(target, variant).run({}, feeds))
    return {"reference": reference.name, "samples": len(feeds), "layers": rows,
            "variant_noise_db": None if total <= 0 else round(10 * math.log10(total), 1),
            "worst": rows[0]["layer"] if rows and rows[0]["noise_alone_db"] is not None else None}


def _relative(reference: np.ndarray, values: np.ndarray) -> float:
    scale = float(np.max(np.abs(reference))) or 1.0
    return round(float(np.max(np.abs(values.astype(np.float64) - reference))) / scale, 6)


def _variant_weights(target: str, variant: Path, layers) -> dict[str, np.ndarray]:
    return _tflite_weights(variant) if target == "tflite" else _coreml_weights(variant, layers)


def _tflite_weights(path: Path) -> dict[str, np.ndarray]:
    """Each conv / dense op's weight as float32, by the op's first output name: a DEQUANTIZE's result (run once
    with every tensor kept), an integer tensor times its per-channel scales, or a float tensor."""
    from deploykit.formats.litert_facade import interpreter as open_interpreter

    interpreter = open_interpreter(path, delegates=False, preserve_all_tensors=True)
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    found = {}
    for op in interpreter._get_ops_details():  # the only API that lists ops with their tensors
        if op["op_name"] not in TFLITE_WEIGHTS or len(op["inputs"]) < 2:
            continue
        weight = details.get(int(op["inputs"][1]))
        if weight is None:
            continue
        try:
            value = interpreter.get_tensor(weight["index"])
        except ValueError:
            continue
        params = weight.get("quantization_parameters") or {}
        scales = np.asarray(params.get("scales", ()), np.float64)
        if value.dtype.kind in "iu" and scales.size:
            zero = np.asarray(params.get("zero_points", np.zeros_like(scales)), np.float64)
            axis = int(params.get("quantized_dimension", 0))
            shape = [1] * value.ndim
            shape[axis] = -1
            value = (value.astype(np.float64) - zero.reshape(shape)) * scales.reshape(shape)
        elif value.dtype.kind != "f":
            continue
        found[details[int(op["outputs"][0])]["name"]] = np.asarray(value, np.float32)
    return found


def _coreml_weights(path: Path, layers) -> dict[str, np.ndarray]:
    """The variant's decompressed weight of each conv / linear op, by the reference's weight name (the ops keep
    their output names through compression; their weight constants do not)."""
    from deploykit.runners.coreml_eval import load_program

    variant = load_program(path)
    reference_weight, variant_weight = weight_reader(layers.program), weight_reader(variant)
    weight_of_op = {step.outputs[0].name: reference_weight(step) for step in layers.program.steps
                    if step.outputs and reference_weight(step)}
    found = {}
    for step in variant.steps:
        name = variant_weight(step) if step.outputs else None
        if name is not None and step.outputs[0].name in weight_of_op:
            found[weight_of_op[step.outputs[0].name]] = np.asarray(variant.constants[name], np.float32)
    return found


def _at_layer(target: str, reference: Path, variant: Path, feed: dict) -> dict[str, float]:
    """Max relative error of each layer's output, variant against reference, on one sample."""
    if target == "tflite":
        from deploykit.runners.litert_runner import LiteRTRunner

        traces = []
        for path in (reference, variant):
            with LiteRTRunner(path) as runner:
                traces.append({r.name.split("#")[0]: r.value for r in runner.trace(feed)})
    else:
        from deploykit.runners.coreml_eval import load_program
        from deploykit.runners.coreml_eval.program import run

        traces = []
        for path in (reference, variant):
            _, intermediates = run(load_program(path), feed, keep_intermediates=True)
            traces.append(dict(intermediates))
    ref, var = traces
    if target == "coreml":  # by the op's output name: the conv / linear results
        program = open_layers(target, reference).program
        weight_of = weight_reader(program)
        names = {weight_of(step): step.outputs[0].name for step in program.steps if step.outputs and weight_of(step)}
    else:
        names = {name: name for name in ref}
    errors = {}
    for layer, tensor in names.items():
        a, b = ref.get(tensor), var.get(tensor)
        if a is None or b is None or np.shape(a) != np.shape(b):
            continue
        errors[layer] = _relative(np.asarray(a, np.float64), np.asarray(b, np.float64))
    return errors
