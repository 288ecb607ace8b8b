"""Keras models: one layer per Keras layer call, read from the functional graph's nodes.

Nested models (a Functional or Sequential used as a layer) are walked inline, so a transfer-learning
model built on ``keras.applications`` counts its base network layer by layer.
"""

from __future__ import annotations

from deploykit.core.errors import InputError
from deploykit.inspection.graph import GraphBuilder
from deploykit.inspection.model import Inspection
from deploykit.inspection.rules import conv_layer_type, conv_macs, elements, transposed_conv_macs

_BATCH_NORM_STATE = ("moving_mean", "moving_variance")


def inspect(path: str, fmt: str, inputs: list[str] | None, *, allow_h5: bool = False) -> Inspection:
    from deploykit.loaders.keras_loader import load_keras_model

    if inputs:
        raise InputError("--input does not apply to a Keras model: its layers were built for one input size",
                         hint="save the model with the input shape you ship (keras.Input(shape=...)), then inspect it")
    return walk_model(load_keras_model(path, fmt, allow_h5=allow_h5), path)


def walk_model(model, path: str) -> Inspection:
    """The inspection of a loaded keras.Model (``path`` names it in messages)."""
    builder = GraphBuilder(path, "keras")
    for tensor in model.inputs:
        builder.input(tensor.name, _shape(tensor, path), _dtype(tensor))
    aliases: dict[str, str] = {}
    _walk(_functional(model), builder, aliases, path)
    for tensor in model.outputs:
        builder.output(aliases.get(tensor.name, tensor.name), _shape(tensor, path), _dtype(tensor))
    return builder.build()


def _walk(model, builder: GraphBuilder, aliases: dict[str, str], path: str, prefix: str = "") -> None:
    import keras

    produced = {aliases.get(t.name, t.name) for t in model.inputs}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        for node in layer._inbound_nodes:
            reads = [aliases.get(t.name, t.name) for t in node.input_tensors]
            if not all(name in produced for name in reads):
                continue  # the layer is shared with another model; this call is not part of this graph
            if isinstance(layer, keras.Model):
                inner = _functional(layer)
                aliases.update({i.name: r for i, r in zip(inner.inputs, reads)})
                _walk(inner, builder, aliases, path, prefix=f"{prefix}{layer.name}/")
                for outer, inner_out in zip(node.output_tensors, inner.outputs):
                    aliases[outer.name] = aliases.get(inner_out.name, inner_out.name)
            else:
                _layer(layer, node, reads, builder, path, prefix)
            produced.update(aliases.get(t.name, t.name) for t in node.output_tensors)


def _functional(model):
    """A Sequential model's functional graph (Keras builds one once the model has an input)."""
    inner = getattr(model, "_functional", None)
    if inner is not None:
        return inner
    if not getattr(model, "inputs", None):
        raise InputError(f"the Keras model {model.name!r} was never built on an input, so it has no graph to count",
                         hint="build it with keras.Input(shape=...) before saving")
    return model


def _layer(layer, node, reads: list[str], builder: GraphBuilder, path: str, prefix: str) -> None:
    import keras

    name = prefix + layer.name
    outputs = [(t.name, _shape(t, path), _dtype(t)) for t in node.output_tensors]
    for out_name, shape, dtype in outputs:
        builder.activation(out_name, shape, dtype)
    writes = [o[0] for o in outputs]
    out_shape = outputs[0][1] if outputs else None
    in_shape = _shape(node.input_tensors[0], path) if node.input_tensors else ()
    weights = []
    for variable in layer.weights:
        builder.constant(f"{name}/{variable.path}", tuple(variable.shape), _dtype(variable))
        if not (isinstance(layer, keras.layers.BatchNormalization) and variable.path.endswith(_BATCH_NORM_STATE)):
            weights.append(f"{name}/{variable.path}")
    op = type(layer).__name__
    common = dict(op=op, reads=reads, writes=writes, output_shape=out_shape)
    channels_first = getattr(layer, "data_format", "channels_last") == "channels_first"
    in_channels = (in_shape[1] if channels_first else in_shape[-1]) if in_shape else 0
    in_spatial = (in_shape[2:] if channels_first else in_shape[1:-1]) if in_shape else ()

    if isinstance(layer, keras.layers.SeparableConv2D | keras.layers.SeparableConv1D):
        kernel = tuple(layer.depthwise_kernel.shape[:-2])
        multiplier = layer.depthwise_kernel.shape[-1]
        mid_shape = (*out_shape[:-1], in_channels * multiplier) if not channels_first else \
            (out_shape[0], in_channels * multiplier, *out_shape[2:])
        mid = f"{name}:depthwise"
        builder.activation(mid, mid_shape, outputs[0][2])
        depthwise, pointwise = weights[0], weights[1:]
        builder.layer(name=f"{name}/depthwise", op=op, layer_type=conv_layer_type(kernel, in_channels, in_channels, in_spatial),
                      macs=conv_macs(mid_shape, in_channels, in_channels, kernel), reads=reads, weights=[depthwise],
                      writes=[mid], output_shape=mid_shape)
        builder.layer(name=f"{name}/pointwise", op=op, layer_type="conv1x1",
                      macs=conv_macs(out_shape, in_channels * multiplier, 1, (1,)), reads=[mid], weights=pointwise,
                      writes=writes, output_shape=out_shape)
        return
    if isinstance(layer, keras.layers.DepthwiseConv2D | keras.layers.DepthwiseConv1D):
        kernel = tuple(layer.kernel.shape[:-2])
        builder.layer(name=name, layer_type=conv_layer_type(kernel, in_channels, in_channels, in_spatial),
                      macs=conv_macs(out_shape, in_channels, in_channels, kernel), weights=weights, **common)
        return
    if isinstance(layer, keras.layers.Conv1DTranspose | keras.layers.Conv2DTranspose | keras.layers.Conv3DTranspose):
        kernel = tuple(layer.kernel.shape[:-2])
        out_channels = layer.kernel.shape[-2]
        builder.layer(name=name, layer_type="conv", macs=transposed_conv_macs(in_shape, out_channels, 1, kernel),
                      weights=weights, **common)
        return
    if isinstance(layer, keras.layers.Conv1D | keras.layers.Conv2D | keras.layers.Conv3D):
        kernel = tuple(layer.kernel.shape[:-2])
        groups = int(getattr(layer, "groups", 1) or 1)
        builder.layer(name=name, layer_type=conv_layer_type(kernel, groups, in_channels, in_spatial),
                      macs=conv_macs(out_shape, in_channels, groups, kernel), weights=weights, **common)
        return
    if isinstance(layer, keras.layers.Dense):
        builder.layer(name=name, layer_type="fully_connected", macs=elements(out_shape) * layer.kernel.shape[0],
                      weights=weights, **common)
        return
    builder.layer(name=name, weights=weights, **common)


def _shape(tensor, path: str) -> tuple:
    dims = tuple(tensor.shape)
    if any(d is None for d in dims[1:]):
        raise InputError(
            f"{path}: tensor '{tensor.name}' has an unknown size {dims}; mult-adds and memory depend on it",
            hint="save the model with a fixed input shape (keras.Input(shape=(224, 224, 3))) and inspect it again")
    return tuple(1 if d is None else int(d) for d in dims)


def _dtype(tensor) -> str:
    dtype = getattr(tensor, "dtype", "float32")
    return getattr(dtype, "name", None) or str(dtype)
