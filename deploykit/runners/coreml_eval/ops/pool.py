"""avg_pool, max_pool and l2_pool over 1 to 3 spatial dims, with MIL's pad types and ceil_mode.

``ceil_mode`` may add windows that run past the padded input. Following PyTorch (whose semantics
the coremltools torch frontend maps straight onto these ops) those positions never count: they
are ignored by max and l2 pooling and left out of the average's divisor. Padding counts in the
divisor unless ``exclude_padding_from_average`` is set.
"""

from __future__ import annotations

import numpy as np

from . import _spatial
from .registry import register


def _geometry(args, x):
    spatial = x.ndim - 2
    kernel = args.ints("kernel_sizes")
    if len(kernel) != spatial:
        raise args.unsupported("kernel_sizes", kernel, f"{spatial} spatial dimensions")
    pad_type, strides, pads = _spatial.read_geometry(args, spatial, kernel)
    ceil_mode = bool(args.scalar("ceil_mode", False))
    if ceil_mode and pad_type not in ("valid", "custom"):
        raise args.unsupported("ceil_mode", True, f"MIL allows it with valid or custom padding, not '{pad_type}'")
    outs, extra = [], []
    for i in range(spatial):
        before, after = pads[i]
        if ceil_mode and before != after:
            raise args.unsupported("pad", [before, after], "ceil_mode needs symmetric padding (MIL)")
        size = x.shape[2 + i]
        out = _spatial.out_size(size, before, after, kernel[i], strides[i], ceil_mode=ceil_mode)
        if ceil_mode and (out - 1) * strides[i] >= size + before and before + after == 0:
            raise args.unsupported("ceil_mode", True, "a window would lie entirely outside the input")
        outs.append(out)
        extra.append(max(0, (out - 1) * strides[i] + kernel[i] - (size + before + after)))
    return kernel, strides, pads, outs, extra


def _windows(padded, kernel, strides, outs):
    for tap in _spatial.taps(kernel):
        yield _spatial.window(padded, tap, strides, (1,) * len(kernel), outs)


@register("max_pool")
def max_pool(args):
    x = args.tensor("x")
    kernel, strides, pads, outs, extra = _geometry(args, x)
    full = [(b, a + e) for (b, a), e in zip(pads, extra)]
    xp = _spatial.pad_array(x, full, value=-np.inf)
    y = None
    for view in _windows(xp, kernel, strides, outs):
        y = view.copy() if y is None else np.maximum(y, view, out=y)
    return y


def _counts(x, kernel, strides, pads, outs, extra, include_pad: bool):
    """How many positions of each window count in the average: real ones, plus padding if included."""
    shape = x.shape[2:]
    ones = np.ones(shape, dtype=x.dtype)
    if include_pad:
        ones = np.pad(ones, pads, constant_values=1)
        grid = [(0, e) for e in extra]
    else:
        grid = [(b, a + e) for (b, a), e in zip(pads, extra)]
    ones = np.pad(ones, grid, constant_values=0)
    total = np.zeros(outs, dtype=x.dtype)
    for view in _windows(ones, kernel, strides, outs):
        total += view
    return total


@register("avg_pool")
def avg_pool(args):
    x = args.tensor("x")
    exclude = bool(args.scalar("exclude_padding_from_average", False))
    kernel, strides, pads, outs, extra = _geometry(args, x)
    xp = _spatial.pad_array(x, [(b, a + e) for (b, a), e in zip(pads, extra)])
    y = np.zeros(x.shape[:2] + tuple(outs), dtype=x.dtype)
    for view in _windows(xp, kernel, strides, outs):
        y += view
    with np.errstate(divide="ignore", invalid="ignore"):
        return y / _counts(x, kernel, strides, pads, outs, extra, include_pad=not exclude)


@register("l2_pool")
def l2_pool(args):
    # sqrt of the sum of squares over each window (padding contributes zeros)
    x = args.tensor("x")
    kernel, strides, pads, outs, extra = _geometry(args, x)
    xp = _spatial.pad_array(x, [(b, a + e) for (b, a), e in zip(pads, extra)])
    y = np.zeros(x.shape[:2] + tuple(outs), dtype=x.dtype)
    for view in _windows(xp, kernel, strides, outs):
        y += view * view
    return np.sqrt(y)
