"""Activations (MIL iOS15/iOS17 activation.py). Formulas are quoted from the MIL op reference."""

from __future__ import annotations

import numpy as np

from .elementwise import erf_array
from .registry import register


def _sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for very negative x: sigmoid -> 0
        return 1.0 / (1.0 + np.exp(-x))


def _typed(x: np.ndarray, value) -> np.ndarray:
    return np.asarray(value).astype(x.dtype, copy=False)


@register("relu")
def relu(args):
    return np.maximum(args.tensor("x"), 0)


@register("relu6")
def relu6(args):
    return np.clip(args.tensor("x"), 0, 6)


@register("sigmoid")
def sigmoid(args):
    return _sigmoid(args.tensor("x"))


@register("silu")
def silu(args):
    x = args.tensor("x")
    return x * _sigmoid(x)


@register("sigmoid_hard")
def sigmoid_hard(args):
    # min(max(alpha * x + beta, 0), 1)
    x = args.tensor("x")
    return _typed(x, np.clip(args.scalar("alpha") * x + args.scalar("beta"), 0, 1))


@register("gelu")
def gelu(args):
    x = args.tensor("x")
    mode = args.string("mode", "EXACT", choices=("EXACT", "TANH_APPROXIMATION", "SIGMOID_APPROXIMATION"))
    if mode == "EXACT":
        return 0.5 * x * (1 + erf_array(x / np.sqrt(2).astype(x.dtype)))
    if mode == "TANH_APPROXIMATION":
        inner = np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)
        return _typed(x, 0.5 * x * (1 + np.tanh(inner)))
    return _typed(x, x * _sigmoid(1.702 * x))


@register("softmax")
def softmax(args):
    x = args.tensor("x")
    axis = args.scalar("axis", -1)
    shifted = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


@register("leaky_relu")
def leaky_relu(args):
    # x if x >= 0 else alpha * x
    x = args.tensor("x")
    return np.where(x >= 0, x, _typed(x, args.scalar("alpha") * x))


def _per_channel(x: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A [C] vector shaped to broadcast along axis 1 of x (MIL's channel axis)."""
    return values.reshape((1, -1) + (1,) * (x.ndim - 2)).astype(x.dtype, copy=False)


@register("prelu")
def prelu(args):
    x = args.tensor("x")
    alpha = args.tensor("alpha")
    if x.ndim < 3 or alpha.shape != (x.shape[1],):
        raise args.unsupported("alpha", alpha.shape, f"a [C] vector for a rank>=3 input of shape {x.shape} is expected")
    return np.where(x > 0, x, x * _per_channel(x, alpha))


@register("elu")
def elu(args):
    # x if x > 0 else alpha * (exp(x) - 1)
    x = args.tensor("x")
    with np.errstate(over="ignore"):
        return np.where(x > 0, x, _typed(x, args.scalar("alpha") * np.expm1(np.minimum(x, 0))))


@register("softplus")
def softplus(args):
    x = args.tensor("x")
    return np.logaddexp(0, x).astype(x.dtype, copy=False)


@register("softplus_parametric")
def softplus_parametric(args):
    # alpha_i * log(1 + exp(beta_i * x_i)) per channel
    x = args.tensor("x")
    alpha, beta = _per_channel(x, args.tensor("alpha")), _per_channel(x, args.tensor("beta"))
    return alpha * np.logaddexp(0, beta * x)


@register("softsign")
def softsign(args):
    x = args.tensor("x")
    return x / (1 + np.abs(x))


@register("clamped_relu")
def clamped_relu(args):
    # min(beta, x) if x >= 0 else min(beta, alpha * x)
    x = args.tensor("x")
    alpha, beta = args.scalar("alpha"), args.scalar("beta")
    return _typed(x, np.minimum(np.where(x >= 0, x, alpha * x), beta))


@register("linear_activation")
def linear_activation(args):
    x = args.tensor("x")
    return _typed(x, args.scalar("alpha") * x + args.scalar("beta"))


@register("scaled_tanh")
def scaled_tanh(args):
    x = args.tensor("x")
    return _typed(x, args.scalar("alpha") * np.tanh(args.scalar("beta") * x))


@register("thresholded_relu")
def thresholded_relu(args):
    # x if x >= alpha else 0
    x = args.tensor("x")
    return np.where(x >= args.scalar("alpha"), x, 0).astype(x.dtype, copy=False)
