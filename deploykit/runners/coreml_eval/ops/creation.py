"""Ops that make a tensor from shapes and constants: shape, fill, fill_like, range_1d, one_hot.

Converters fold these away when shapes are static; they remain in programs with dynamic shapes.
The element type of each result is the one the program declares for it.
"""

from __future__ import annotations

import math

import numpy as np

from .registry import register


def _declared(args, index: int = 0) -> np.dtype:
    return args.output(index).dtype.runtime


@register("shape")
def shape(args):
    return np.array(args.tensor("x").shape, dtype=np.int32)


def _filled(args, dims, value):
    if any(d < 0 for d in dims):
        raise args.unsupported("shape", list(dims), "dimensions must not be negative")
    return np.full(tuple(dims), value, dtype=_declared(args))


@register("fill")
def fill(args):
    return _filled(args, args.ints("shape"), args.scalar("value", 0.0))


@register("fill_like")
def fill_like(args):
    return _filled(args, args.tensor("ref_tensor").shape, args.scalar("value", 0.0))


@register("range_1d")
def range_1d(args):
    # numpy-style [start, end) by step; the length is ceil((end - start) / step)
    start, end, step = (args.scalar(k) for k in ("start", "end", "step"))
    if step == 0:
        raise args.unsupported("step", step, "a zero step")
    count = max(0, math.ceil((end - start) / step))
    return (start + step * np.arange(count)).astype(_declared(args))


@register("one_hot")
def one_hot(args):
    indices = args.tensor("indices").astype(np.int64)
    size = int(args.scalar("one_hot_vector_size"))
    axis = int(args.scalar("axis", -1))
    axis = axis + indices.ndim + 1 if axis < 0 else axis
    on, off = args.scalar("on_value", 1), args.scalar("off_value", 0)
    if indices.size and (indices.min() < 0 or indices.max() >= size):
        # Frameworks disagree here (TensorFlow writes an all-off vector, PyTorch raises).
        raise args.unsupported("indices", [int(indices.min()), int(indices.max())], f"indices outside [0, {size})")
    hot = np.expand_dims(indices, axis) == np.arange(size).reshape([-1 if a == axis else 1 for a in range(indices.ndim + 1)])
    return np.where(hot, on, off).astype(_declared(args))
