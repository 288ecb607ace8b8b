"""topk and argsort (MIL tensor_operation.py).

Both sort stably: equal values keep their input order, lower index first, in ascending and
descending order alike (PyTorch's rule with ``stable=True``). MIL does not say how ties are
ordered; this is the evaluator's choice and has not been checked on a device.
"""

from __future__ import annotations

import numpy as np

from .registry import register


def _order(x: np.ndarray, axis: int, ascending: bool) -> np.ndarray:
    keys = x.astype(np.float64) if not np.issubdtype(x.dtype, np.floating) else x
    return np.argsort(keys if ascending else -keys, axis=axis, kind="stable")


@register("argsort")
def argsort(args):
    x = args.tensor("x")
    axis = int(args.scalar("axis", -1)) % x.ndim
    return _order(x, axis, bool(args.scalar("ascending", False))).astype(np.int32)


@register("topk")
def topk(args):
    x = args.tensor("x")
    axis = int(args.scalar("axis", -1)) % x.ndim
    k = int(args.scalar("k", 1))
    k = x.shape[axis] if k == -1 and args.opset >= 17 else k  # iOS17: -1 selects every element
    if not 0 < k <= x.shape[axis]:
        raise args.unsupported("k", k, f"1 <= k <= {x.shape[axis]} (the size of axis {axis})")
    if not args.scalar("sort", True):
        # "no particular ordering is guaranteed": the device's order cannot be reproduced.
        raise args.unsupported("sort", False, "the order of unsorted top-k results is unspecified")
    if args.has("output_indices_dtype"):  # the declared type of the indices output says the same
        args.string("output_indices_dtype", choices=("int32", "uint16"))
    indices = np.take(_order(x, axis, bool(args.scalar("ascending", False))), np.arange(k), axis=axis)
    values = np.take_along_axis(x, indices, axis=axis)
    if not args.scalar("return_indices", True):
        return values
    return values, indices.astype(np.int32)
