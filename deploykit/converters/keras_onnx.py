"""Keras -> ONNX with tf2onnx, from the frozen graph of the model's forward pass at its input shapes.

Keras 3 computes a grouped convolution (ConvNeXt's depthwise 7x7 is ``Conv2D(groups=channels)``)
inside a ``tf.function(jit_compile=True)``, because TensorFlow's CPU kernels have no grouped
convolution. Freezing keeps that XLA function as a ``StatefulPartitionedCall``, which neither tf2onnx
nor coremltools' TensorFlow frontend converts. While the graph is traced here, grouped convolutions
are written with plain ops instead (``_plain_grouped_convs``): a depthwise convolution when every group
has one input channel, else one convolution per group and a concat. Each output is the same sum of
the same products. This is the one place deploykit reaches into Keras' backend (``keras.src``): a
Keras upgrade that moves ``backend.nn.conv`` fails this route, with its error recorded, and no other.

tf2onnx 1.17 has no handler for ``Erfc``, which Keras' exact GELU computes (``0.5 * x * erfc(-x / sqrt(2))``);
``_register_erfc`` adds one: ``1 - Erf(x)``, ONNX's Erf being in every opset this route uses.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

OPSET = 17


def export_keras(source, path: Path) -> None:
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    if source.format == "savedmodel":
        function = source.handle["signature"]
    else:
        model = source.handle
        specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in source.inputs]

        @tf.function(input_signature=specs)
        def forward(*args):
            result = model(list(args) if len(args) > 1 else args[0], training=False)
            return list(result) if isinstance(result, (list, tuple)) else [result]

        with _plain_grouped_convs():
            function = forward.get_concrete_function()
    _register_erfc()
    frozen = convert_variables_to_constants_v2(function)
    inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    proto, _ = tf2onnx.convert.from_graph_def(frozen.graph.as_graph_def(), input_names=inputs,
                                              output_names=[t.name for t in frozen.outputs], opset=OPSET)
    path.write_bytes(proto.SerializeToString())


_ERFC_REGISTERED = False


def _register_erfc() -> None:
    global _ERFC_REGISTERED
    if _ERFC_REGISTERED:
        return
    import numpy as np
    from tf2onnx import utils
    from tf2onnx.handler import tf_op

    @tf_op("Erfc")
    class Erfc:  # noqa: F841  (registered by the decorator)
        @classmethod
        def version_9(cls, ctx, node, **kwargs):
            dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.output[0]))
            node.type = "Erf"
            one = ctx.make_const(utils.make_name(f"{node.name}_one"), np.array(1, dtype=dtype))
            output = node.output[0]
            ctx.insert_new_node_on_output("Sub", output, inputs=[one.output[0], output], name=utils.make_name(node.name))

    _ERFC_REGISTERED = True


@contextlib.contextmanager
def _plain_grouped_convs():
    """Keras' ``conv`` with grouped convolutions written as plain TensorFlow ops, for the duration of a trace."""
    import keras
    import tensorflow as tf
    from keras.src.backend.tensorflow import nn

    original = nn.conv

    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        channels_last = (data_format or keras.config.image_data_format()) == "channels_last"
        channels = inputs.shape[-1] if channels_last else inputs.shape[1]
        per_group = kernel.shape[-2]
        if channels is None or per_group is None or channels == per_group:
            return original(inputs, kernel, strides, padding, data_format, dilation_rate)
        groups = channels // per_group
        strides, dilation_rate = _as_tuple(strides), _as_tuple(dilation_rate)  # depthwise_conv adds tuples to them
        if per_group == 1:  # depthwise: (..., 1, C*M) -> (..., C, M); output channel c*M + m either way
            depthwise = tf.reshape(kernel, (*kernel.shape[:-2], channels, kernel.shape[-1] // channels))
            return nn.depthwise_conv(inputs, depthwise, strides, padding, data_format, dilation_rate)
        axis = -1 if channels_last else 1
        parts = zip(tf.split(inputs, groups, axis=axis), tf.split(kernel, groups, axis=-1))
        convs = [original(x, k, strides, padding, data_format, dilation_rate) for x, k in parts]
        return tf.concat(convs, axis=axis)

    nn.conv = conv
    try:
        yield
    finally:
        nn.conv = original


def _as_tuple(value):
    return tuple(value) if isinstance(value, list) else value
