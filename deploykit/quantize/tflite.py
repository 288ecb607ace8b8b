"""Quantized TFLite variants: ai-edge-quantizer applied to the path's fp32 .tflite.

One engine for the three source paths. Measured on this stack (docs/quantization.md): on the
trained digits model its static int8 is within one test sample of TFLiteConverter's, and sizes on
MobileNetV2 match TFLiteConverter's to 0.2 %. It also takes recipes per op (for --keep-float),
per-tensor weights, int4 and float or int8 model I/O, and needs no TensorFlow graph, which the
PyTorch path does not have (litert-torch's own PT2E quantizer needs ``torch.ao.quantization
.quantize_pt2e``, which torch 2.13 no longer ships).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from deploykit.core.errors import ConversionError

# dtype codes of the TFLite schema (TensorType)
_FLOAT32, _FLOAT16, _INT8, _INT4 = 0, 1, 9, 17


def quantize_tflite(base: Path, out_path: Path, scheme: str, options, calibration, fp32_layers=()) -> dict:
    """Write the ``scheme`` variant of the fp32 ``base`` to ``out_path``; return its quantization record.

    ``fp32_layers``: output tensor names of ops left in float besides --keep-float's (fp16_mixed's choice)."""
    from ai_edge_quantizer import qtyping, quantizer
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    from deploykit.formats.tflite.flatbuffer import compact
    from deploykit.quantize import fp16, int4, int8, int8_weights, int16x8

    module = {"fp16": fp16, "int8-weights": int8_weights, "int8": int8, "int16x8": int16x8, "int4": int4}[scheme]
    algorithm, config, described = module.tflite_config(options, qtyping, AlgorithmName)
    engine = quantizer.Quantizer(str(base))
    engine.update_quantization_recipe(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                      op_config=config, algorithm_key=algorithm)
    kept = tuple(dict.fromkeys(kept_float_tensors(base.read_bytes(), options.keep_float) + tuple(fp32_layers)))
    for name in kept:  # ai-edge-quantizer scopes an op by its output names, each followed by ";"
        engine.update_quantization_recipe(regex=f"^{re.escape(name)};", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                          algorithm_key=AlgorithmName.NO_QUANTIZE)
    for op in getattr(module, "FLOAT_OPS", ()):  # op types a scheme leaves in float wherever they are (int16x8's softmax)
        engine.update_quantization_recipe(regex=".*", operation_name=getattr(qtyping.TFLOperationName, op),
                                          algorithm_key=AlgorithmName.NO_QUANTIZE)
    if described.get("io") == "float32":  # full integer with float model I/O: a QUANTIZE / DEQUANTIZE at each end
        for end in (qtyping.TFLOperationName.INPUT, qtyping.TFLOperationName.OUTPUT):
            engine.update_quantization_recipe(regex=".*", operation_name=end, op_config=qtyping.OpQuantizationConfig(),
                                              algorithm_key=AlgorithmName.NO_QUANTIZE)
    result = None
    if engine.need_calibration:
        ranges = getattr(module, "RANGES", "moving-average")
        result = _calibrate(engine, base, _calibration_data(base, calibration), ranges)
    try:
        engine.quantize(result).export_model(str(out_path), overwrite=True)
    except Exception as exc:
        raise ConversionError(f"ai-edge-quantizer failed on {scheme}: {str(exc).splitlines()[0][:300]}",
                              hint="rerun with --verbose to see its log") from exc
    # ai-edge-quantizer stores weights after the flatbuffer and writes one int64 zero point per channel
    # for every tensor; compacting moves weights inside (so metadata can be embedded later) and shares
    # identical vectors: MobileNetV2 int8 goes from 1.143x to 1.075x of one byte per parameter
    out_path.write_bytes(compact(out_path.read_bytes()))
    stored = _stored_weights(out_path.read_bytes())
    if not stored["quantized_bytes"]:
        raise ConversionError(f"ai-edge-quantizer left every weight in float32 for {scheme}",
                              hint="the model's ops have no supported quantized form in this scheme")
    record = {"scheme": scheme, "engine": "ai-edge-quantizer", "base": base.name, **described,
              "kept_float": list(kept), "weights_left_float32_bytes": stored["float32_bytes"]}
    if calibration is not None and engine.need_calibration:
        record["calibration"] = calibration.to_json()
    return record


def kept_float_tensors(data: bytes, keep) -> tuple[str, ...]:
    """Output tensor names of the conv / fully-connected ops that --keep-float names."""
    from deploykit.core.errors import UsageError
    from deploykit.formats.tflite import graph as tflite_graph

    graph = tflite_graph.read(data)
    layers = [i for i in range(len(graph.graph.operators)) if graph.op_type(i) in tflite_graph.CONV_LIKE]
    chosen = []
    if keep.first and layers:
        chosen.append(layers[0])
    if keep.last and layers:
        chosen.append(layers[-1])
    for wanted in keep.names:
        hits = [i for i in range(len(graph.graph.operators)) if wanted in graph.tensor_name(graph.output(i))]
        if not hits:
            examples = ", ".join(graph.tensor_name(graph.output(i)) for i in layers[:4])
            raise UsageError(f"--keep-float {wanted}: no op of the TFLite artifact has it in its name",
                             hint=f"names look like: {examples}")
        chosen += hits
    return tuple(dict.fromkeys(graph.tensor_name(graph.output(i)) for i in chosen))


def _calibrate(engine, base: Path, data: dict, ranges: str) -> dict:
    """Each activation tensor's range over ``data``. ``moving-average`` is ai-edge-quantizer's own (min and max
    averaged over the samples with smoothing 0.95: a rare peak is clipped, the rest gets finer steps); ``min-max``
    takes the extremes of every sample, for schemes whose steps are fine enough that clipping is the larger error."""
    if ranges == "moving-average":
        return engine.calibrate(data)
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    recipe = recipe_manager.RecipeManager()
    recipe.load_quantization_recipe(engine.get_quantization_recipe())
    ranges_of = calibrator.Calibrator(str(base), qsv_update_func=qsv_utils.min_max_update)
    ranges_of.calibrate(data, recipe)
    return ranges_of.get_model_qsvs()


def _calibration_data(base: Path, calibration) -> dict:
    """{signature key: [feeds]} with each sample transposed to the artifact's layout where it differs."""
    from deploykit.formats.tflite.signature import open_interpreter

    interpreter = open_interpreter(str(base))
    key = next(iter(interpreter.get_signature_list()))
    details = interpreter.get_signature_runner(key).get_input_details()
    feeds = []
    for sample in calibration.feeds:
        feed = {}
        for name, value in sample.items():
            shape = tuple(int(d) for d in details[name]["shape"])
            if value.shape != shape and value.ndim == 4 and value.transpose(0, 2, 3, 1).shape == shape:
                value = value.transpose(0, 2, 3, 1)  # NCHW source, NHWC artifact (onnx2tf)
            feed[name] = np.ascontiguousarray(value.astype(details[name]["dtype"]))
        feeds.append(feed)
    return {key: feeds}


def _stored_weights(data: bytes) -> dict:
    """Bytes of constant tensors stored quantized (int8 / int4 / float16) and left in float32."""
    from deploykit.formats.tflite.flatbuffer import read_model

    model = read_model(data)
    produced = {int(t) for op in model.subgraphs[0].operators for t in (op.outputs if op.outputs is not None else [])}
    quantized = float32 = 0
    for index, tensor in enumerate(model.subgraphs[0].tensors):
        buffer = model.buffers[tensor.buffer]
        size = len(buffer.data) if buffer.data is not None else int(getattr(buffer, "size", 0) or 0)
        if index in produced or size == 0:
            continue
        if tensor.type in (_INT8, _INT4, _FLOAT16):
            quantized += size
        elif tensor.type == _FLOAT32:
            float32 += size
    return {"quantized_bytes": quantized, "float32_bytes": float32}
