"""gather_nd, scatter, scatter_along_axis and scatter_nd (MIL scatter_gather.py).

Index rules: before iOS17 an index may be negative (``-D <= v < D``, counted from the end); from
iOS17 on MIL calls negative indices out of bounds with undefined results, so they are refused, as
is every out-of-range index in any version ("undefined but memory safe" is nothing to reproduce).

Scatter modes combine each update with the value already there, in index order, so repeated
indices accumulate (``add``: data + u1 + u2). With mode ``update`` a repeated index would make
the result depend on which write lands last, which MIL leaves open, so it is refused.
"""

from __future__ import annotations

import numpy as np

from .registry import register

_MODES = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "max": np.maximum,
    "min": np.minimum,
}


def _checked(args, indices: np.ndarray, sizes, key: str = "indices") -> np.ndarray:
    """Indices along dims of the given sizes (broadcast over the last axis), made non-negative."""
    indices = indices.astype(np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    low = 0 if args.opset >= 17 else -sizes
    if indices.size and ((indices < low).any() or (indices >= sizes).any()):
        bad = indices[(indices < low) | (indices >= sizes)]
        rule = "non-negative (iOS17 and later)" if args.opset >= 17 else "within [-size, size)"
        raise args.unsupported(key, int(bad.flat[0]), f"indices must be {rule} for dims of size {sizes.tolist()}")
    if args.has("validate_indices"):  # out-of-range indices are refused whatever it says
        args.scalar("validate_indices")
    return np.where(indices < 0, indices + sizes, indices)


def _mode(args, default: str) -> str:
    return args.string("mode", default, choices=("update",) + tuple(_MODES))


def _apply(args, data: np.ndarray, index: tuple, updates: np.ndarray, mode: str) -> np.ndarray:
    """data with updates combined in at the (possibly repeated) positions of ``index``."""
    out = data.copy()
    if mode == "update":
        flat = np.ravel_multi_index(tuple(np.broadcast_arrays(*index)), data.shape)
        if np.unique(flat).size != flat.size:
            raise args.unsupported("indices", "repeated", "with mode 'update' the winning write is unspecified")
        out[index] = updates
        return out
    if mode == "div" and not np.issubdtype(data.dtype, np.floating):
        raise args.unsupported("mode", mode, "integer division rounding is not specified by MIL")
    with np.errstate(divide="ignore", invalid="ignore"):
        _MODES[mode].at(out, index, updates.astype(data.dtype, copy=False))
    return out


@register("gather_nd")
def gather_nd(args):
    # output[b..., i...] = x[b..., indices[b..., i..., :]] with batch_dims leading dims shared
    x, indices = args.tensor("x"), args.tensor("indices")
    batch = int(args.scalar("batch_dims", 0))
    depth = indices.shape[-1]
    if indices.shape[:batch] != x.shape[:batch] or batch + depth > x.ndim:
        raise args.unsupported("indices", indices.shape, f"index tuples into x of shape {x.shape} with batch_dims={batch}")
    indices = _checked(args, indices, x.shape[batch:batch + depth])
    rank = indices.ndim - 1  # the index tuples' own dims, which the output starts with
    lead = tuple(np.arange(n).reshape([-1 if a == b else 1 for a in range(rank)]) for b, n in enumerate(x.shape[:batch]))
    return x[lead + tuple(indices[..., i] for i in range(depth))]


@register("scatter")
def scatter(args):
    # output[..., indices[i], ...] (axis) <- updates[..., i, ...]
    data, updates = args.tensor("data"), args.tensor("updates")
    axis = int(args.scalar("axis", 0)) % data.ndim
    indices = args.tensor("indices")
    expected = data.shape[:axis] + (indices.size,) + data.shape[axis + 1:]
    if indices.ndim != 1 or updates.shape != expected:
        raise args.unsupported("updates", updates.shape, f"1-D indices and updates of shape {expected}")
    indices = _checked(args, indices, data.shape[axis])
    index = tuple(indices.reshape([-1 if a == axis else 1 for a in range(data.ndim)]) if a == axis
                  else np.arange(n).reshape([-1 if b == a else 1 for b in range(data.ndim)])
                  for a, n in enumerate(updates.shape))
    return _apply(args, data, index, updates, _mode(args, "update"))


@register("scatter_along_axis")
def scatter_along_axis(args):
    # output[p..., indices[p..., i, ...], ...] <- updates[p..., i, ...] along axis
    data, updates = args.tensor("data"), args.tensor("updates")
    axis = int(args.scalar("axis", 0)) % data.ndim
    indices = args.tensor("indices")
    if indices.shape != updates.shape or indices.ndim != data.ndim:
        raise args.unsupported("indices", indices.shape, f"indices shaped like updates {updates.shape}, rank {data.ndim}")
    indices = _checked(args, indices, data.shape[axis])
    index = tuple(indices if a == axis else np.arange(n).reshape([-1 if b == a else 1 for b in range(data.ndim)])
                  for a, n in enumerate(updates.shape))
    return _apply(args, data, index, updates, _mode(args, "add"))


@register("scatter_nd")
def scatter_nd(args):
    # output[indices[i..., :]] <- updates[i..., ...]
    data, updates = args.tensor("data"), args.tensor("updates")
    indices = args.tensor("indices")
    depth = indices.shape[-1]
    expected = indices.shape[:-1] + data.shape[depth:]
    if depth > data.ndim or updates.shape != expected:
        raise args.unsupported("updates", updates.shape, f"shape indices.shape[:-1] + data.shape[{depth}:] = {expected}")
    indices = _checked(args, indices, data.shape[:depth]).reshape(-1, depth)
    rest = data.shape[depth:]
    index = tuple(indices[:, i].reshape((-1,) + (1,) * len(rest)) for i in range(depth)) + tuple(
        np.arange(n).reshape((1,) + tuple(-1 if b == a else 1 for b in range(len(rest)))) for a, n in enumerate(rest))
    return _apply(args, data, index, updates.reshape((-1,) + rest), _mode(args, "add"))
