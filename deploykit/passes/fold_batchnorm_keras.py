"""``fold_batchnorm`` for Keras 3 models: rebuild the model with ``clone_model``, each folded
BatchNormalization replaced by an Identity layer and its producer given the folded weights.

Cloning keeps every layer name, the input and output names and the graph structure, so the
converters see the same model minus the batch norms (an Identity converts to nothing).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from deploykit.passes.fold_batchnorm import BatchNormSite
from deploykit.passes.registry import PassResult

_PRODUCERS = ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "Dense")


def sites(source) -> list[BatchNormSite]:
    if source.format == "savedmodel":
        return []
    return [site for site, _, _ in _analyse(source.handle)]


def fold(source, context) -> PassResult:
    if source.format == "savedmodel":
        return PassResult(source, notes=("a SavedModel keeps no layer graph; batch norms left to the converter",))
    import keras

    model = source.handle
    if not isinstance(model, (keras.Sequential, keras.src.models.functional.Functional)):
        return PassResult(source, notes=("a subclassed model has no layer graph to rewrite; batch norms left to the converter",))
    plan = {bn.name: (site, producer) for site, bn, producer in _analyse(model) if site.foldable}
    if not plan:
        return PassResult(source)
    producers = {producer.name: (site, model.get_layer(bn_name)) for bn_name, (site, producer) in plan.items()}

    identity = _identity_class(keras)

    def clone(layer):
        if layer.name in plan:
            return identity(name=layer.name)
        config = layer.get_config()
        if layer.name in producers:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.name in plan or not layer.weights:
            continue
        target = folded.get_layer(layer.name)
        if layer.name in producers:
            target.set_weights(_folded_weights(layer, producers[layer.name][1]))
        else:
            target.set_weights(layer.get_weights())
    items = tuple(site.label for site, _ in plan.values())
    return PassResult(dataclasses.replace(source, handle=folded), items)


def _identity_class(keras):
    class FoldedBatchNorm(keras.layers.Identity):
        """An Identity that accepts the ``training``/``mask`` arguments recorded for the batch norm it replaces."""

        def call(self, inputs, training=None, mask=None):
            return inputs

        def compute_output_spec(self, inputs, training=None, mask=None):
            return super().compute_output_spec(inputs)

    return FoldedBatchNorm


def _analyse(model):
    """(site, bn layer, producer layer or None) for every BatchNormalization in ``model``."""
    from keras import layers

    consumers: dict[str, int] = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for tensor in node.input_tensors:
                name = tensor._keras_history.operation.name
                consumers[name] = consumers.get(name, 0) + 1
    outputs = {t._keras_history.operation.name for t in model.outputs}
    found = []
    for layer in model.layers:
        if not isinstance(layer, layers.BatchNormalization):
            continue
        channels = int(layer.moving_mean.shape[0])
        producer = _single_producer(layer)
        reason = _not_foldable(layer, producer, consumers, outputs)
        site = BatchNormSite(layer.name, channels, producer.name if producer is not None and not reason else None,
                             bool(getattr(producer, "use_bias", False)), not reason, reason,
                             sum(int(np.prod(w.shape)) for w in layer.weights))
        found.append((site, layer, producer))
    return found


def _single_producer(layer):
    if len(layer._inbound_nodes) != 1:
        return None
    tensors = layer._inbound_nodes[0].input_tensors
    return tensors[0]._keras_history.operation if len(tensors) == 1 else None


def _not_foldable(bn, producer, consumers, outputs) -> str:
    if producer is None:
        return "shared layer or several inputs"
    if type(producer).__name__ not in _PRODUCERS:
        return f"follows {type(producer).__name__}"
    if len(producer._inbound_nodes) != 1 or consumers.get(producer.name, 0) != 1 or producer.name in outputs:
        return "the producer's output is used elsewhere"
    activation = getattr(producer, "activation", None)
    if activation is not None and getattr(activation, "__name__", "linear") != "linear":
        return "the producer has its own activation"
    rank = len(producer.output.shape)
    if bn.axis not in (-1, rank - 1) and bn.axis != [rank - 1]:
        return "normalizes a non-channel axis"
    if getattr(producer, "data_format", "channels_last") == "channels_first":
        return "channels_first producer"
    return ""


def _folded_weights(producer, bn) -> list[np.ndarray]:
    mean = np.asarray(bn.moving_mean, dtype=np.float64)
    var = np.asarray(bn.moving_variance, dtype=np.float64)
    gamma = np.asarray(bn.gamma, dtype=np.float64) if bn.scale else np.ones_like(mean)
    beta = np.asarray(bn.beta, dtype=np.float64) if bn.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.epsilon)
    weights = producer.get_weights()
    kernel = np.asarray(weights[0], dtype=np.float64)
    bias = np.asarray(weights[1], dtype=np.float64) if producer.use_bias else np.zeros_like(mean)
    if type(producer).__name__.startswith("DepthwiseConv"):
        # kernel (..., in_channels, multiplier): output channel c = i * multiplier + m
        kernel = kernel * scale.reshape(kernel.shape[-2], kernel.shape[-1])
    else:
        kernel = kernel * scale  # kernel (..., in, out): output channels on the last axis
    bias = (bias - mean) * scale + beta
    return [kernel.astype(np.float32), bias.astype(np.float32)]
