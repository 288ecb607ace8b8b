"""Padding arithmetic and strided window views shared by conv and pooling.

Sliding-window ops are computed one kernel tap at a time: for tap ``t`` the input positions seen
by all outputs form one strided slice of the padded input, so a whole layer is ``prod(K)`` numpy
operations on large arrays and never a Python loop over pixels.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

PAD_TYPES = ("valid", "custom", "same", "same_lower")


def read_geometry(args, spatial: int, kernel: tuple[int, ...], dilations: tuple[int, ...] | None = None):
    """(pad_type, strides, pads as [(before, after)] per spatial dim) for conv and pooling ops.

    ``pad`` is only meaningful with ``pad_type == "custom"``; MIL ignores it otherwise. The
    evaluator accepts an ignored ``pad`` only when it is all zeros, since a non-zero ``pad`` next
    to another pad type means the program wants something the spec does not define.
    """
    strides = args.ints("strides", (1,) * spatial)
    pad_type = args.string("pad_type", "valid", choices=PAD_TYPES)
    pad = args.ints("pad", (0,) * (2 * spatial))
    if len(strides) != spatial or len(pad) != 2 * spatial:
        raise args.unsupported("strides" if len(strides) != spatial else "pad", strides if len(strides) != spatial else pad,
                               f"{spatial} spatial dimensions")
    if pad_type != "custom" and any(pad):
        raise args.unsupported("pad", pad, f"a non-zero pad with pad_type '{pad_type}' is undefined in MIL")
    return pad_type, strides, pads_for(pad_type, pad, args.tensor("x").shape[2:], kernel, strides, dilations)


def pads_for(pad_type, pad, sizes, kernel, strides, dilations=None) -> list[tuple[int, int]]:
    """Per spatial dim (before, after). ``same`` puts the odd extra row after, ``same_lower`` before."""
    dilations = dilations or (1,) * len(kernel)
    result = []
    for i, (size, k, s, d) in enumerate(zip(sizes, kernel, strides, dilations)):
        if pad_type == "custom":
            result.append((pad[2 * i], pad[2 * i + 1]))
        elif pad_type == "valid":
            result.append((0, 0))
        else:
            effective = (k - 1) * d + 1
            total = max(0, (math.ceil(size / s) - 1) * s + effective - size)
            small, large = total // 2, total - total // 2
            result.append((small, large) if pad_type == "same" else (large, small))
    return result


def out_size(size: int, before: int, after: int, k: int, s: int, d: int = 1, ceil_mode: bool = False) -> int:
    effective = (k - 1) * d + 1
    span = size + before + after - effective
    if not ceil_mode:
        return span // s + 1
    out = -(-span // s) + 1
    # As in PyTorch (and MIL's shape rule): the last window must start inside the input or left pad.
    if (out - 1) * s >= size + before:
        out -= 1
    return out


def pad_array(x: np.ndarray, pads, value=0.0) -> np.ndarray:
    if not any(b or a for b, a in pads):
        return x
    return np.pad(x, [(0, 0)] * (x.ndim - len(pads)) + [tuple(p) for p in pads], constant_values=value)


def taps(kernel: tuple[int, ...]):
    return itertools.product(*(range(k) for k in kernel))


def window(xp: np.ndarray, tap, strides, dilations, outs) -> np.ndarray:
    """The view of padded ``xp`` that kernel position ``tap`` sees, for every output position."""
    index = [slice(None)] * (xp.ndim - len(tap))
    for t, s, d, o in zip(tap, strides, dilations, outs):
        index.append(slice(t * d, t * d + s * (o - 1) + 1, s))
    return xp[tuple(index)]
