"""conv and conv_transpose (1-D to 3-D, any groups), plus crop, which the torch frontend pairs with conv_transpose.

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
    """The gradient of ``conv`` with respect to its input (MIL's definition), on 1 to 3 spatial dims.

    Every input position scatters ``W[:, :, tap]^T x`` to ``i * stride + tap * dilation`` of the full
    output; the result is the window of the full output that the matching conv's input occupies. That
    conv's input size is ``output_shape`` when given (the spec's reason for it: conv maps several input
    sizes onto one output size), else the size the spec's formula gives.
    """
    x, w = args.tensor("x"), args.tensor("weight")
    bias = args.optional("bias")
    spatial = x.ndim - 2
    kernel = w.shape[2:]
    strides = args.ints("strides", (1,) * spatial)
    dilations = args.ints("dilations", (1,) * spatial)
    groups = int(args.scalar("groups", 1))
    pad_type = args.string("pad_type", "valid", choices=("valid", "custom", "same"))
    pad = args.ints("pad", (0,) * (2 * spatial))
    if not 1 <= spatial <= 3 or w.ndim != x.ndim or len(strides) != spatial or len(dilations) != spatial \
            or len(pad) != 2 * spatial:
        raise args.unsupported("weight", w.shape, f"input {x.shape}, strides {strides}, dilations {dilations} "
                                                  f"and pad {pad} do not describe one spatial geometry")
    if pad_type != "custom" and any(pad):
        raise args.unsupported("pad", pad, f"a non-zero pad with pad_type '{pad_type}' is undefined in MIL")
    if x.shape[1] != w.shape[0] or x.shape[1] % groups:
        raise args.unsupported("weight", w.shape, f"input {x.shape} with groups={groups} does not match it")
    sizes = x.shape[2:]
    effective = [(kernel[i] - 1) * dilations[i] + 1 for i in range(spatial)]
    full = [(sizes[i] - 1) * strides[i] + effective[i] for i in range(spatial)]
    outs = _transpose_sizes(args, x, w.shape[1] * groups, pad_type, pad, strides, effective, full)
    crops = _transpose_crops(args, pad_type, pad, sizes, strides, effective, outs)
    y = _scatter(x, w, groups, strides, dilations, full)
    # The window [before, before + out) of the full output; what lies past its end (an output_shape
    # one stride longer, as for ONNX's and PyTorch's output_padding) receives no input: zero.
    index = (slice(None), slice(None)) + tuple(slice(b, min(b + o, f)) for b, o, f in zip(crops, outs, full))
    y = _spatial.pad_array(y[index], [(0, max(0, b + o - f)) for b, o, f in zip(crops, outs, full)])
    if bias is not None:
        y = y + bias.reshape((1, -1) + (1,) * spatial).astype(y.dtype, copy=False)
    return y


def _scatter(x, w, groups, strides, dilations, full):
    """The full (uncropped) transposed convolution: input pixel i lands on i * stride + tap * dilation."""
    n = x.shape[0]
    cin, cout = x.shape[1] // groups, w.shape[1]
    dtype = np.result_type(x, w)
    y = np.zeros((n, cout * groups, *full), dtype=dtype)
    for g in range(groups):
        xg = x[:, g * cin:(g + 1) * cin].reshape(n, cin, -1)
        yg = y[:, g * cout:(g + 1) * cout]
        for tap in _spatial.taps(w.shape[2:]):
            tap_weight = w[(slice(g * cin, (g + 1) * cin), slice(None)) + tap].T.astype(dtype, copy=False)
            contribution = np.matmul(tap_weight, xg)
            _spatial.window(yg, tap, strides, dilations, x.shape[2:])[...] += contribution.reshape(
                (n, cout, *x.shape[2:]))
    return y


def _transpose_sizes(args, x, channels, pad_type, pad, strides, effective, full) -> list[int]:
    """Output spatial sizes: ``output_shape`` if given (checked against x), else the spec's formula."""
    spatial = x.ndim - 2
    if not args.has("output_shape"):
        if pad_type == "same":
            return [x.shape[2 + i] * strides[i] for i in range(spatial)]
        outs = [full[i] - (pad[2 * i] + pad[2 * i + 1] if pad_type == "custom" else 0) for i in range(spatial)]
        if min(outs) < 1:
            raise args.unsupported("pad", pad, f"it crops the whole output ({full} before cropping)")
        return outs
    wanted = args.ints("output_shape")
    if len(wanted) != x.ndim or tuple(wanted[:2]) != (x.shape[0], channels) or min(wanted[2:]) < 1:
        raise args.unsupported("output_shape", wanted, f"it must be [{x.shape[0]}, {channels}, ...] "
                                                       f"with {spatial} positive spatial sizes")
    outs = list(wanted[2:])
    for i in range(spatial):
        # The conv whose gradient this is: input size outs[i], same geometry. It must map onto x's size,
        # or output_shape names no such conv and the result is not defined by the spec.
        if pad_type == "same":
            conv_out = -(-outs[i] // strides[i])
        else:
            padded = outs[i] + (pad[2 * i] + pad[2 * i + 1] if pad_type == "custom" else 0)
            conv_out = (padded - effective[i]) // strides[i] + 1 if padded >= effective[i] else 0
        if conv_out != x.shape[2 + i]:
            raise args.unsupported("output_shape", wanted, f"a conv ({pad_type} padding) of spatial size {outs[i]} "
                                                           f"gives {conv_out}, not the input's {x.shape[2 + i]}, so "
                                                           "the op is not that conv's gradient")
    return outs


def _transpose_crops(args, pad_type, pad, sizes, strides, effective, outs) -> list[int]:
    """Where each output window starts in the full output: the matching conv's padding before."""
    crops = []
    for i, out in enumerate(outs):
        if pad_type == "custom":
            crops.append(pad[2 * i])
        elif pad_type == "valid":
            crops.append(0)
        else:
            # 'same' padding of the conv with input size ``out``, the extra row after (conv's rule,
            # and TensorFlow's, whose Conv2DBackpropInput the TF frontend maps onto this op).
            total = (sizes[i] - 1) * strides[i] + effective[i] - out
            if total < 0:
                raise args.unsupported("pad_type", "same", f"kernel {effective[i]} is smaller than stride "
                                                           f"{strides[i]}: the conv would pad by {total}")
            crops.append(total // 2)
    return crops


@register("crop")
def crop(args):
    # Removes crop_height = [top, bottom] rows and crop_width = [left, right] columns (last two dims).
    x = args.tensor("x")
    top, bottom = args.ints("crop_height", (0, 0))
    left, right = args.ints("crop_width", (0, 0))
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]
