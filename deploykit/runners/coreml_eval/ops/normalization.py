"""batch_norm, instance_norm, layer_norm, l2_norm, local_response_norm (MIL iOS15/iOS17 normalization.py).

Variances are population variances (divide by N), as in every framework these ops come from.
"""

from __future__ import annotations

import numpy as np

from .registry import register


def _channel(x: np.ndarray, v: np.ndarray | None, fill: float) -> np.ndarray:
    """A [C] parameter broadcast along axis 1; ``fill`` when the parameter is absent."""
    if v is None:
        return np.asarray(fill, dtype=x.dtype)
    return v.reshape((1, -1) + (1,) * (x.ndim - 2)).astype(x.dtype, copy=False)


@register("batch_norm")
def batch_norm(args):
    # gamma * (x - mean) / sqrt(variance + epsilon) + beta, per channel (axis 1)
    x = args.tensor("x")
    mean, var = _channel(x, args.tensor("mean"), 0), _channel(x, args.tensor("variance"), 1)
    gamma, beta = _channel(x, args.optional("gamma"), 1), _channel(x, args.optional("beta"), 0)
    eps = args.scalar("epsilon", 1e-5)
    scale = gamma / np.sqrt(var + x.dtype.type(eps))
    return (x - mean) * scale + beta


@register("instance_norm")
def instance_norm(args):
    # normalizes each (n, c) over the spatial dims, then per-channel gamma/beta
    x = args.tensor("x")
    gamma, beta = _channel(x, args.optional("gamma"), 1), _channel(x, args.optional("beta"), 0)
    eps = args.scalar("epsilon", 1e-5)
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = np.square(x - mean).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + x.dtype.type(eps)) * gamma + beta


@register("layer_norm")
def layer_norm(args):
    # gamma * (x - E[x]) / sqrt(Var[x] + epsilon) + beta over ``axes``; gamma/beta shape x.shape[axes]
    x = args.tensor("x")
    axes = args.ints("axes", tuple(range(x.ndim)))
    axes = tuple(a % x.ndim for a in axes)
    eps = args.scalar("epsilon", 1e-5)
    mean = x.mean(axis=axes, keepdims=True)
    var = np.square(x - mean).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + x.dtype.type(eps))
    for key in ("gamma", "beta"):
        param = args.optional(key)
        if param is None:
            continue
        expected = tuple(x.shape[a] for a in axes)
        if param.shape != expected:
            raise args.unsupported(key, param.shape, f"shape x.shape[axes] = {expected} is expected")
        # Put the parameter's dims (given in ``axes`` order) on those axes of x.
        order = np.argsort(axes)
        shaped = np.transpose(param, order).reshape([x.shape[a] if a in axes else 1 for a in range(x.ndim)])
        y = y * shaped if key == "gamma" else y + shaped
    return y.astype(x.dtype, copy=False)


@register("l2_norm")
def l2_norm(args):
    # x / sqrt(sum(x^2) + epsilon) over the last three dims, batch-wise over the leading ones
    x = args.tensor("x")
    if x.ndim < 3:
        raise args.unsupported("x", x.shape, "MIL's l2_norm needs rank >= 3")
    eps = args.scalar("epsilon", 1e-6)
    total = np.sum(np.square(x), axis=(-3, -2, -1), keepdims=True)
    return x / np.sqrt(total + x.dtype.type(eps))


@register("local_response_norm")
def local_response_norm(args):
    # x / (k + alpha / size * sum of x^2 over the `size` channels centred on this one)^beta
    x = args.tensor("x")
    size = int(args.scalar("size"))
    alpha, beta, k = args.scalar("alpha", 1e-4), args.scalar("beta", 0.75), args.scalar("k", 1.0)
    if not 3 <= x.ndim <= 4:
        raise args.unsupported("x", x.shape, "MIL's local_response_norm takes rank 3 or 4")
    if size < 1 or size % 2 == 0:
        # An even window has no centre; which side gets the extra channel is not specified.
        raise args.unsupported("size", size, "a positive odd window is expected")
    half = size // 2
    squares = np.pad(np.square(x), [(0, 0), (half, half)] + [(0, 0)] * (x.ndim - 2))
    total = np.zeros_like(x)
    for offset in range(size):
        total += squares[:, offset:offset + x.shape[1]]
    return (x / np.power(x.dtype.type(k) + x.dtype.type(alpha / size) * total, x.dtype.type(beta))).astype(x.dtype, copy=False)
