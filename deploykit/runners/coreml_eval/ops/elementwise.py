"""Elementwise binary ops (numpy broadcasting), unary math, clip and select.

Integer tensors stay integer: ``real_div`` on two int32 tensors is refused rather than guessed,
because MIL does not document whether it truncates or floors.
"""

from __future__ import annotations

import numpy as np

from .registry import register

_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "pow": np.power,
    "floor_div": np.floor_divide,  # "rounded towards negative infinity" (MIL doc)
    "mod": np.mod,
    "equal": np.equal,
    "not_equal": np.not_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
    "logical_xor": np.logical_xor,
}


def _binary(args):
    fn = _BINARY[args.op.type]
    x, y = args.tensor("x"), args.tensor("y")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return fn(x, y)


register(*_BINARY)(_binary)


@register("real_div")
def real_div(args):
    x, y = args.tensor("x"), args.tensor("y")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(y.dtype, np.floating)):
        raise args.unsupported("x", str(x.dtype), "integer division rounding is not specified by MIL")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.true_divide(x, y)


_UNARY = {
    "abs": np.abs,
    "acos": np.arccos,
    "asin": np.arcsin,
    "atan": np.arctan,
    "atanh": np.arctanh,
    "ceil": np.ceil,
    "cos": np.cos,
    "cosh": np.cosh,
    "exp": np.exp,
    "exp2": np.exp2,
    "floor": np.floor,
    "logical_not": np.logical_not,
    "sign": np.sign,
    "sin": np.sin,
    "sinh": np.sinh,
    "sqrt": np.sqrt,
    "square": np.square,
    "tan": np.tan,
    "tanh": np.tanh,
}


def _unary(args):
    x = args.tensor("x")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return _UNARY[args.op.type](x)


register(*_UNARY)(_unary)


@register("round")
def round_(args):
    # MIL: "0.5 is rounded to 0", i.e. half to even, which is numpy's rule.
    return np.round(args.tensor("x"))


@register("erf")
def erf(args):
    return erf_array(args.tensor("x"))


def erf_array(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf as _erf  # scipy comes with scikit-learn, a declared dependency

    return _erf(x).astype(x.dtype, copy=False)


# Ops with a stabilising epsilon: y = f(x + epsilon). Defaults are MIL's (iOS15 elementwise_unary).
_EPSILON_OPS = {
    "inverse": (1e-4, lambda v: 1.0 / v),
    "log": (1e-45, np.log),
    "rsqrt": (1e-12, lambda v: 1.0 / np.sqrt(v)),
}


def _with_epsilon(args):
    default, fn = _EPSILON_OPS[args.op.type]
    x = args.tensor("x")
    if args.has("epsilon"):
        eps = args.scalar("epsilon")
    else:  # the default is a value of x's type: in fp16, 1e-45 and 1e-12 are 0
        eps = float(np.float16(default)) if args.output().dtype.name == "fp16" else default
    with np.errstate(divide="ignore", invalid="ignore"):
        return fn(x + x.dtype.type(eps))


register(*_EPSILON_OPS)(_with_epsilon)


@register("threshold")
def threshold(args):
    return np.maximum(args.tensor("x"), args.scalar("alpha"))


@register("clip")
def clip(args):
    x = args.tensor("x")
    return np.minimum(np.maximum(x, args.scalar("alpha")), args.scalar("beta")).astype(x.dtype, copy=False)


@register("select")
def select(args):
    cond = args.tensor("cond")
    return np.where(cond.astype(bool), args.tensor("a"), args.tensor("b"))
