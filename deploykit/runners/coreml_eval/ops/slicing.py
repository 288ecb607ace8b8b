"""slice_by_index, slice_update, slice_by_size, gather, gather_along_axis."""

from __future__ import annotations

import numpy as np

from .registry import register


def _slice_index(args, x) -> tuple:
    """The numpy index of x[begin[i]:end[i]:stride[i], ...]; masks replace begin/end, squeeze_mask indexes."""
    rank = x.ndim
    begin, end = list(args.ints("begin")), list(args.ints("end"))
    stride = args.ints("stride", (1,) * rank)
    begin_mask = args.bools("begin_mask", (False,) * rank)
    end_mask = args.bools("end_mask", (False,) * rank)
    squeeze_mask = args.bools("squeeze_mask", (False,) * rank)
    if not all(len(v) == rank for v in (begin, end, stride, begin_mask, end_mask, squeeze_mask)):
        raise args.unsupported("begin", begin, f"one entry per dim of rank {rank}")
    index = []
    for i in range(rank):
        if squeeze_mask[i]:
            index.append(begin[i])  # a pure index: the dim goes away
            continue
        if stride[i] == 0:
            raise args.unsupported("stride", stride, "a zero stride")
        index.append(slice(None if begin_mask[i] else begin[i], None if end_mask[i] else end[i], stride[i]))
    return tuple(index)


@register("slice_by_index")
def slice_by_index(args):
    x = args.tensor("x")
    index = _slice_index(args, x)
    try:
        return x[index]
    except IndexError as exc:
        raise args.unsupported("begin", args.ints("begin"), str(exc)) from None


@register("slice_update")
def slice_update(args):
    # iOS18: x with x[slice] = update, the slice read exactly as slice_by_index reads it
    x, update = args.tensor("x"), args.tensor("update")
    index = _slice_index(args, x)
    out = x.copy()
    try:
        target = out[index]
    except IndexError as exc:
        raise args.unsupported("begin", args.ints("begin"), str(exc)) from None
    if target.shape != update.shape:
        raise args.unsupported("update", update.shape, f"the slice has shape {target.shape}")
    out[index] = update
    return out


@register("slice_by_size")
def slice_by_size(args):
    # x[begin[i] : begin[i] + size[i]], size -1 meaning "to the end"
    x = args.tensor("x")
    begin, size = args.ints("begin"), args.ints("size")
    if len(begin) != x.ndim or len(size) != x.ndim:
        raise args.unsupported("size", size, f"one entry per dim of rank {x.ndim}")
    index = []
    for b, s, n in zip(begin, size, x.shape):
        b = b + n if b < 0 else b
        index.append(slice(b, None if s == -1 else b + s))
    return x[tuple(index)]


def _indices(args, x, axis):
    indices = args.tensor("indices").astype(np.int64)
    if args.has("validate_indices"):  # iOS17: out-of-range indices are refused either way here
        args.scalar("validate_indices")
    size = x.shape[axis]
    if indices.size and (indices.min() < -size or indices.max() >= size):
        raise args.unsupported("indices", [int(indices.min()), int(indices.max())], f"indices outside [-{size}, {size})")
    return np.where(indices < 0, indices + size, indices)


@register("gather")
def gather(args):
    x = args.tensor("x")
    axis = int(args.scalar("axis", 0)) % x.ndim
    batch_dims = int(args.scalar("batch_dims", 0))
    if batch_dims != 0:
        raise args.unsupported("batch_dims", batch_dims, "only batch_dims = 0 is implemented")
    return np.take(x, _indices(args, x, axis), axis=axis)


@register("gather_along_axis")
def gather_along_axis(args):
    x = args.tensor("x")
    axis = int(args.scalar("axis", 0)) % x.ndim
    return np.take_along_axis(x, _indices(args, x, axis), axis=axis)
