"""reduce_* over ``axes`` (default: all) with ``keep_dims`` (default False); argmax/argmin."""

from __future__ import annotations

import numpy as np

from .registry import register


def _sum_exp_log(x, axis, keepdims):
    peak = np.max(x, axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0)
    total = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    return total if keepdims else np.squeeze(total, axis=axis)


_REDUCERS = {
    "reduce_mean": np.mean,
    "reduce_sum": np.sum,
    "reduce_max": np.max,
    "reduce_min": np.min,
    "reduce_prod": np.prod,
    "reduce_sum_square": lambda x, axis, keepdims: np.sum(x * x, axis=axis, keepdims=keepdims),
    "reduce_l1_norm": lambda x, axis, keepdims: np.sum(np.abs(x), axis=axis, keepdims=keepdims),
    "reduce_l2_norm": lambda x, axis, keepdims: np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims)),
    "reduce_log_sum": lambda x, axis, keepdims: np.log(np.sum(x, axis=axis, keepdims=keepdims)),
    "reduce_log_sum_exp": _sum_exp_log,
}


def _reduce(args):
    x = args.tensor("x")
    axes = args.ints("axes", None) if args.has("axes") else None
    axis = tuple(range(x.ndim)) if axes is None else tuple(a % x.ndim for a in axes)
    keep = bool(args.scalar("keep_dims", False))
    with np.errstate(divide="ignore", invalid="ignore"):
        y = _REDUCERS[args.op.type](x, axis=axis, keepdims=keep)
    return np.asarray(y).astype(x.dtype, copy=False)


register(*_REDUCERS)(_reduce)


@register("reduce_argmax", "reduce_argmin")
def reduce_arg(args):
    x = args.tensor("x")
    axis = int(args.scalar("axis", -1)) % x.ndim
    keep = bool(args.scalar("keep_dims", False))
    if args.has("output_dtype"):  # iOS17: the index type; the declared output type says the same
        args.string("output_dtype", choices=("int32", "uint16", "int16", "uint8", "int8"))
    fn = np.argmax if args.op.type == "reduce_argmax" else np.argmin
    y = fn(x, axis=axis)  # ties: the first index, like every framework (MIL leaves ties unspecified)
    return np.expand_dims(y, axis) if keep else y
