"""Activations and inference-time no-ops onnx2coreml does not lower: Dropout (identity at inference:
ONNX evaluates it with training_mode false unless an input says otherwise), Selu, Softsign, Mish,
ThresholdedRelu, Celu. Each is the ONNX operator's own formula in MIL ops."""

from __future__ import annotations

from deploykit.converters.onnx_lowerings._args import attribute, inputs
from deploykit.formats import coremltools_facade


def _dropout(ctx, node):
    mb = coremltools_facade.mil_builder()
    values = inputs(ctx, node)
    training = values[2] if len(values) > 2 else None
    if training is not None and (training.val is None or bool(training.val)):
        raise NotImplementedError("Dropout with training_mode set (only inference graphs convert)")
    out = mb.identity(x=values[0], name=node.output[0])
    if len(node.output) > 1 and node.output[1]:
        return [out, mb.fill_like(ref_tensor=values[0], value=True)]
    return out


def _selu(ctx, node):
    mb = coremltools_facade.mil_builder()
    (x,) = inputs(ctx, node)[:1]
    alpha = float(attribute(node, "alpha", 1.67326319217681884765625))
    gamma = float(attribute(node, "gamma", 1.05070102214813232421875))
    return mb.mul(x=mb.elu(x=x, alpha=alpha), y=gamma, name=node.output[0])


def _softsign(ctx, node):
    mb = coremltools_facade.mil_builder()
    return mb.softsign(x=inputs(ctx, node)[0], name=node.output[0])


def _mish(ctx, node):
    mb = coremltools_facade.mil_builder()
    x = inputs(ctx, node)[0]
    return mb.mul(x=x, y=mb.tanh(x=mb.softplus(x=x)), name=node.output[0])


def _thresholded_relu(ctx, node):
    mb = coremltools_facade.mil_builder()
    return mb.thresholded_relu(x=inputs(ctx, node)[0], alpha=float(attribute(node, "alpha", 1.0)), name=node.output[0])


def _celu(ctx, node):
    mb = coremltools_facade.mil_builder()
    # celu(x) = max(0, x) + min(0, alpha * (exp(x / alpha) - 1)) = elu(x / alpha) * alpha
    x = inputs(ctx, node)[0]
    alpha = float(attribute(node, "alpha", 1.0))
    return mb.mul(x=mb.elu(x=mb.real_div(x=x, y=alpha), alpha=1.0), y=alpha, name=node.output[0])


LOWERINGS = {"Dropout": _dropout, "Selu": _selu, "Softsign": _softsign, "Mish": _mish,
             "ThresholdedRelu": _thresholded_relu, "Celu": _celu}
