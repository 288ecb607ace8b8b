"""Keras -> TFLite: a ladder of two routes, the first whose artifact converts and passes parity kept.

1. ``tflite-converter``: TensorFlow's TFLiteConverter on a frozen concrete function with the resolved
   static input shapes (no dynamic-batch SHAPE/PACK ops, batchnorm folded by the converter), then given a
   signature with the model's own input and output names, so apps call ``logits`` rather than ``output_0``.
2. ``onnx``: the model exported with tf2onnx, then the ONNX -> TFLite ladder (onnx2tf and its remedies).

Inputs with flexible sizes, and SavedModels (converted through their serving signature), take the first
route only.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.converters import Converted
from deploykit.converters.ladder import Rung
from deploykit.converters.tflite_common import dynamic_shape, run_tflite_converter
from deploykit.core.flexible import has_flexible, refuse

LABEL = "keras->tflite (tf.lite.TFLiteConverter)"


def rungs(source, options, workspace) -> list[Rung]:
    from deploykit.converters.onnx_export import onnx_route

    ladder = [Rung("tflite-converter", LABEL, lambda path: _direct(source, path), "TensorFlow's TFLiteConverter")]
    if not has_flexible(source.inputs) and source.format != "savedmodel":
        ladder.append(onnx_route(source, "tflite", options, workspace))
    return ladder


def convert(source, out_path: Path, options, workspace) -> Converted:
    from deploykit.converters.onnx_tflite import climb_tflite

    if source.format == "savedmodel" and has_flexible(source.inputs):
        raise refuse(source, LABEL, "a SavedModel converts through its serving signature, whose shapes are fixed")
    return climb_tflite(rungs(source, options, workspace), out_path, options, workspace, "Keras -> TFLite")


def _direct(source, out_path: Path) -> None:
    import tensorflow as tf

    from deploykit.formats.tflite.flatbuffer import set_signature

    if source.format == "savedmodel":
        converter = tf.lite.TFLiteConverter.from_saved_model(source.handle["path"])
        out_path.write_bytes(run_tflite_converter(converter, LABEL))
        return
    data = run_tflite_converter(_from_keras_model(tf, source), LABEL)
    out_path.write_bytes(set_signature(data, [t.name for t in source.inputs], [t.name for t in source.outputs]))


def _from_keras_model(tf, source):
    model = source.handle
    # A flexible dimension is left unknown (None): LiteRT resizes it at run time (resize_tensor_input).
    specs = [tf.TensorSpec(dynamic_shape(t), t.dtype, name=t.name) for t in source.inputs]

    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    @tf.function(input_signature=specs)
    def serving_default(*args):
        result = model(list(args) if len(args) > 1 else args[0], training=False)
        return list(result) if isinstance(result, (list, tuple)) else [result]

    frozen = convert_variables_to_constants_v2(serving_default.get_concrete_function())
    return tf.lite.TFLiteConverter.from_concrete_functions([frozen])
