"""linear (x @ weight.T + bias), matmul with transpose flags, einsum."""

from __future__ import annotations

import numpy as np

from .registry import register


@register("linear")
def linear(args):
    x, w = args.tensor("x"), args.tensor("weight")
    bias = args.optional("bias")
    if w.ndim != 2 or x.shape[-1] != w.shape[1]:
        raise args.unsupported("weight", w.shape, f"[D_out, D_in] matching input {x.shape}")
    y = np.matmul(x, w.T.astype(x.dtype, copy=False))
    if bias is not None:
        y += bias.astype(y.dtype, copy=False)
    return y


@register("matmul")
def matmul(args):
    x, y = args.tensor("x"), args.tensor("y")
    # The flags swap the last two dims and have no effect on 1-D operands (MIL doc).
    if args.scalar("transpose_x", False) and x.ndim >= 2:
        x = np.swapaxes(x, -1, -2)
    if args.scalar("transpose_y", False) and y.ndim >= 2:
        y = np.swapaxes(y, -1, -2)
    return np.matmul(x, y)


@register("einsum")
def einsum(args):
    equation = args.string("equation")
    return np.einsum(equation, *args.values("values"))
