"""Ops along one axis: reverse, reverse_sequence, sliding_windows, cumsum."""

from __future__ import annotations

import numpy as np

from .registry import register


@register("reverse")
def reverse(args):
    x = args.tensor("x")
    axes = args.ints("axes", None)  # absent: every dim
    return np.flip(x, axis=None if axes is None else tuple(a % x.ndim for a in axes))


@register("reverse_sequence")
def reverse_sequence(args):
    # for each b along batch_axis, reverse the first lengths[b] entries along seq_axis
    x = args.tensor("x")
    lengths = args.tensor("lengths").astype(np.int64).reshape(-1)
    seq_axis = int(args.scalar("seq_axis", 0)) % x.ndim
    batch_axis = int(args.scalar("batch_axis", 0)) % x.ndim
    if seq_axis == batch_axis or lengths.size != x.shape[batch_axis]:
        raise args.unsupported("lengths", lengths.shape, f"one length per entry of axis {batch_axis}, a different seq_axis")
    if lengths.size and (lengths.min() < 0 or lengths.max() > x.shape[seq_axis]):
        raise args.unsupported("lengths", lengths.tolist(), f"lengths within [0, {x.shape[seq_axis]}]")
    positions = np.arange(x.shape[seq_axis])
    # source position along seq_axis for each (batch, position): mirrored inside the length
    source = np.where(positions[None] < lengths[:, None], lengths[:, None] - 1 - positions[None], positions[None])
    shape = [1] * x.ndim
    shape[batch_axis], shape[seq_axis] = lengths.size, positions.size
    if batch_axis > seq_axis:
        source = source.T
    return np.take_along_axis(x, np.broadcast_to(source.reshape(shape), x.shape), axis=seq_axis)


@register("sliding_windows")
def sliding_windows(args):
    # [*d0, d_axis, *dn] -> [*d0, (d_axis - size) // stride + 1, size, *dn]
    x = args.tensor("x")
    axis = int(args.scalar("axis")) % x.ndim
    size, stride = int(args.scalar("size")), int(args.scalar("stride", 1))
    if not 1 <= size <= x.shape[axis] or stride < 1:
        raise args.unsupported("size", size, f"1 <= size <= {x.shape[axis]} and a positive stride")
    windows = np.lib.stride_tricks.sliding_window_view(x, size, axis=axis)  # window index last
    windows = np.take(windows, np.arange(0, x.shape[axis] - size + 1, stride), axis=axis)
    return np.moveaxis(windows, -1, axis + 1)


@register("cumsum")
def cumsum(args):
    x = args.tensor("x")
    axis = int(args.scalar("axis", 0)) % x.ndim
    exclusive, backward = bool(args.scalar("exclusive", False)), bool(args.scalar("reverse", False))
    y = np.flip(x, axis) if backward else x
    total = np.cumsum(y, axis=axis, dtype=x.dtype)
    if exclusive:  # each position sums only what comes before it
        total = np.concatenate([np.zeros_like(np.take(total, [0], axis=axis)),
                                np.take(total, np.arange(x.shape[axis] - 1), axis=axis)], axis=axis)
    return np.flip(total, axis) if backward else total
