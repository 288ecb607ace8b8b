"""Keras architecture entries: ``keras.applications`` with ``weights=None``, seeded, batch norms calibrated,
saved as ``.keras`` and (for some) exported to ONNX with tf2onnx.

Each builder takes the input shape (NHWC, batch first) and returns an uncalibrated model whose input is
a ``keras.Input`` named ``image``. ``include_preprocessing`` keeps its default (True) where the
application has it, so those models take 0-255 pixels as a user feeds them (arch_inputs.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SEED = 0


def _application(factory_name: str, shape, **options):
    import keras

    keras.utils.set_random_seed(SEED)
    image = keras.Input(shape=tuple(shape[1:]), batch_size=None, name="image")
    factory = getattr(keras.applications, factory_name)
    return factory(weights=None, input_tensor=image, classes=1000, **options)


def efficientnetv2b0(shape):
    return _application("EfficientNetV2B0", shape, include_preprocessing=True)


def convnext_tiny(shape):
    return _application("ConvNeXtTiny", shape, include_preprocessing=True)


def mobilenetv3small(shape):
    return _application("MobileNetV3Small", shape, include_preprocessing=True)


def densenet121(shape):
    return _application("DenseNet121", shape)


def nasnetmobile(shape):
    return _application("NASNetMobile", shape)


def resnet50v2(shape):
    return _application("ResNet50V2", shape)


def calibrate_batchnorms(model, batch: np.ndarray) -> int:
    """Set every BatchNormalization's moving mean and variance to the statistics of its input on ``batch``.

    ``weights=None`` leaves moving_mean = 0 and moving_variance = 1, so no batch norm normalizes: through
    DenseNet's or NASNet's deep stacks activations grow or vanish and the softmax is one-hot, which a
    trained network is not (build.py's ``_calibrate_batchnorms`` says the same of the ONNX zoo). One
    batch norm at a time, in the functional graph's order, each measured with its calibrated
    predecessors in place; one probe model returns every batch norm's input, so a pass is one compiled
    call. Returns how many batch norms were set.
    """
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    if not norms:
        return 0
    probe = keras.Model(model.inputs, [norm.input for norm in norms])
    for index, norm in enumerate(norms):
        seen = np.asarray(probe.predict_on_batch(batch)[index], np.float64)
        axis = norm.axis if isinstance(norm.axis, int) else norm.axis[0]
        axes = tuple(a for a in range(seen.ndim) if a != axis % seen.ndim)
        norm.moving_mean.assign(seen.mean(axis=axes).astype(np.float32))
        norm.moving_variance.assign((seen.var(axis=axes) + 1e-3).astype(np.float32))
    return len(norms)


def predict(model, array: np.ndarray) -> np.ndarray:
    return np.asarray(model.predict_on_batch(array))


def save(model, path: Path) -> None:
    model.save(str(path))


def load(path: Path):
    import keras

    return keras.saving.load_model(str(path), safe_mode=True)


def export_tf2onnx(model, shape, input_name: str, output_names, path: Path) -> None:
    """``tf2onnx.convert.from_keras`` at a fixed batch of 1 (opset 17), the graph's output renamed to
    ``output_names``: tf2onnx names it after the Keras output layer plus a suffix."""
    import onnx
    import tensorflow as tf
    import tf2onnx

    signature = (tf.TensorSpec(tuple(shape), tf.float32, name=input_name),)
    proto, _ = tf2onnx.convert.from_keras(model, input_signature=signature, opset=17)
    for graph_output, name in zip(proto.graph.output, output_names):
        _rename(proto.graph, graph_output.name, name)
    onnx.save(proto, str(path))


def _rename(graph, old: str, new: str) -> None:
    for node in graph.node:
        node.output[:] = [new if name == old else name for name in node.output]
        node.input[:] = [new if name == old else name for name in node.input]
    for value in graph.output:
        if value.name == old:
            value.name = new
