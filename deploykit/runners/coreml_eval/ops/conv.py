"""conv and conv_transpose (1-D to 3-D), plus crop, which the torch frontend pairs with conv_transpose.

conv weight layout is ``[C_out, C_in / groups, *K]``; conv_transpose's is ``[C_in, C_out / groups, *K]``.
Dense convs are one matrix product per kernel tap over the strided view of the padded input;
depthwise convs (groups == C_in, one input channel per group) are a broadcast multiply-add per tap.
"""

from __future__ import annotations

import numpy as np

from . import _spatial
from .registry import register


@register("conv")
def conv(args):
    x, w = args.tensor("x"), args.tensor("weight")
    bias = args.optional("bias")
    spatial = x.ndim - 2
    kernel = w.shape[2:]
    dilations = args.ints("dilations", (1,) * spatial)
    groups = int(args.scalar("groups", 1))
    _, strides, pads = _spatial.read_geometry(args, spatial, kernel, dilations)
    if spatial < 1 or w.ndim != x.ndim or x.shape[1] != w.shape[1] * groups or w.shape[0] % groups:
        raise args.unsupported("weight", w.shape, f"input {x.shape} with groups={groups} does not match it")
    xp = _spatial.pad_array(x, pads)
    outs = [_spatial.out_size(xp.shape[2 + i], 0, 0, kernel[i], strides[i], dilations[i]) for i in range(spatial)]
    dtype = np.result_type(x, w)
    if groups == 1:
        y = _dense(xp, w, strides, dilations, outs, dtype)
    elif w.shape[1] == 1 and groups == x.shape[1]:
        y = _depthwise(xp, w, strides, dilations, outs, dtype)
    else:
        cin, cout = w.shape[1], w.shape[0] // groups
        y = np.concatenate([
            _dense(xp[:, g * cin:(g + 1) * cin], w[g * cout:(g + 1) * cout], strides, dilations, outs, dtype)
            for g in range(groups)
        ], axis=1)
    if bias is not None:
        y += bias.reshape((1, -1) + (1,) * spatial).astype(dtype, copy=False)
    return y


def _dense(xp, w, strides, dilations, outs, dtype):
    # One 2-D matrix product per kernel tap and batch item: numpy hands 2-D products of contiguous
    # operands to BLAS, while a broadcast (O, C) @ (N, C, P) product is several times slower.
    n, c = xp.shape[:2]
    kernel = w.shape[2:]
    per_tap = np.ascontiguousarray(np.moveaxis(w, 0, -1).reshape(c, -1, w.shape[0]).transpose(1, 2, 0), dtype=dtype)
    y = np.zeros((n, w.shape[0], int(np.prod(outs))), dtype=dtype)
    scratch = np.empty((w.shape[0], y.shape[2]), dtype=dtype)
    for index, tap in enumerate(_spatial.taps(kernel)):
        view = _spatial.window(xp, tap, strides, dilations, outs)
        for b in range(n):
            np.matmul(per_tap[index], view[b].reshape(c, -1), out=scratch)
            y[b] += scratch
    return y.reshape((n, w.shape[0], *outs))


def _depthwise(xp, w, strides, dilations, outs, dtype):
    multiplier = w.shape[0] // xp.shape[1]  # output channel o reads input channel o // multiplier
    if multiplier > 1:
        xp = np.repeat(xp, multiplier, axis=1)
    y = np.zeros((xp.shape[0], w.shape[0], *outs), dtype=dtype)
    scratch = np.empty_like(y)
    shape = (1, -1) + (1,) * len(outs)
    for tap in _spatial.taps(w.shape[2:]):
        coefficient = w[(slice(None), 0) + tap].reshape(shape).astype(dtype, copy=False)
        np.multiply(_spatial.window(xp, tap, strides, dilations, outs), coefficient, out=scratch)
        y += scratch
    return y


@register("conv_transpose")
def conv_transpose(args):
    x, w = args.tensor("x"), args.tensor("weight")
    bias = args.optional("bias")
    spatial = x.ndim - 2
    kernel = w.shape[2:]
    strides = args.ints("strides", (1,) * spatial)
    dilations = args.ints("dilations", (1,) * spatial)
    groups = int(args.scalar("groups", 1))
    pad_type = args.string("pad_type", "valid", choices=("valid", "custom", "same"))
    pad = args.ints("pad", (0,) * (2 * spatial))
    if pad_type != "custom" and any(pad):
        raise args.unsupported("pad", pad, f"a non-zero pad with pad_type '{pad_type}' is undefined in MIL")
    if x.shape[1] != w.shape[0] or x.shape[1] % groups:
        raise args.unsupported("weight", w.shape, f"input {x.shape} with groups={groups} does not match it")
    cin, cout = x.shape[1] // groups, w.shape[1]
    dtype = np.result_type(x, w)
    full = [(x.shape[2 + i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 for i in range(spatial)]
    y = np.zeros((x.shape[0], cout * groups, *full), dtype=dtype)
    for g in range(groups):
        xg = x[:, g * cin:(g + 1) * cin].reshape(x.shape[0], cin, -1)
        yg = y[:, g * cout:(g + 1) * cout]
        for tap in _spatial.taps(kernel):
            # Each input pixel scatters W[:, :, tap]^T x to output position tap * d + s * i.
            contribution = np.matmul(w[(slice(g * cin, (g + 1) * cin), slice(None)) + tap].T.astype(dtype, copy=False), xg)
            _spatial.window(yg, tap, strides, dilations, x.shape[2:])[...] += contribution.reshape(
                (x.shape[0], cout, *x.shape[2:]))
    if pad_type == "custom":
        crops = [(pad[2 * i], pad[2 * i + 1]) for i in range(spatial)]
    elif pad_type == "same":
        # Output D * stride: the transpose of a 'same' conv, so the crop splits like that conv's
        # padding (TensorFlow's rule, which the TF frontend maps onto this op): extra one after.
        totals = [full[i] - x.shape[2 + i] * strides[i] for i in range(spatial)]
        if min(totals) < 0:
            raise args.unsupported("pad_type", "same", f"kernel {kernel} smaller than strides {strides}")
        crops = [(t // 2, t - t // 2) for t in totals]
    else:
        crops = [(0, 0)] * spatial
    y = y[(slice(None), slice(None)) + tuple(slice(b, full[i] - a) for i, (b, a) in enumerate(crops))]
    if args.has("output_shape"):
        # The torch frontend passes the size it expects; anything else (e.g. zero-filling a larger
        # shape) is not specified well enough to reproduce, so only an exact match is accepted.
        wanted = args.ints("output_shape")
        if tuple(wanted[-spatial:]) != y.shape[2:]:
            raise args.unsupported("output_shape", wanted, f"the computed output is {y.shape}")
    if bias is not None:
        y = y + bias.reshape((1, -1) + (1,) * spatial).astype(dtype, copy=False)
    return y


@register("crop")
def crop(args):
    # Removes crop_height = [top, bottom] rows and crop_width = [left, right] columns (last two dims).
    x = args.tensor("x")
    top, bottom = args.ints("crop_height", (0, 0))
    left, right = args.ints("crop_width", (0, 0))
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]
