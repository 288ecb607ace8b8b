"""Keras -> TFLite with TensorFlow's TFLiteConverter.

A Keras model is converted as a frozen concrete function with the resolved static input shapes (no
dynamic-batch SHAPE/PACK ops, batchnorm folded by the converter), then given a signature with the
model's own input and output names, so apps call ``logits`` rather than ``output_0``.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.converters import Converted
from deploykit.converters.tflite_common import dynamic_shape, run_tflite_converter
from deploykit.core.flexible import has_flexible, refuse

LABEL = "keras->tflite (tf.lite.TFLiteConverter)"


def convert(source, out_path: Path, options, workspace) -> Converted:
    import tensorflow as tf

    from deploykit.formats.tflite.flatbuffer import set_signature

    if source.format == "savedmodel":
        if has_flexible(source.inputs):
            raise refuse(source, LABEL, "a SavedModel converts through its serving signature, whose shapes are fixed")
        converter = tf.lite.TFLiteConverter.from_saved_model(source.handle["path"])
        out_path.write_bytes(run_tflite_converter(converter, LABEL))
        return Converted(out_path, LABEL)
    data = run_tflite_converter(_from_keras_model(tf, source), LABEL)
    out_path.write_bytes(set_signature(data, [t.name for t in source.inputs], [t.name for t in source.outputs]))
    return Converted(out_path, LABEL)


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
