"""Layout ops: reshape, transpose, squeeze, expand_dims, flatten2d, concat (incl. interleave),
split, stack, tile, pad, pixel_shuffle / pixel_unshuffle."""

from __future__ import annotations

import numpy as np

from .registry import register


@register("reshape")
def reshape(args):
    x = args.tensor("x")
    shape = list(args.ints("shape"))
    if 0 in shape and len(shape) != x.ndim and args.opset < 17:
        raise args.unsupported("shape", shape, "before iOS17 a 0 entry needs len(shape) == rank(x)")
    for i, s in enumerate(shape):
        if s == 0:  # copy the matching dim of x, counted from the right (iOS17 rule; same when ranks agree)
            j = x.ndim - (len(shape) - i)
            shape[i] = x.shape[j] if j >= 0 else 1
    try:
        return np.reshape(x, shape)
    except ValueError as exc:
        raise args.unsupported("shape", shape, f"cannot reshape {x.shape}: {exc}") from None


@register("transpose")
def transpose(args):
    return np.transpose(args.tensor("x"), args.ints("perm"))


@register("squeeze")
def squeeze(args):
    x = args.tensor("x")
    if not args.has("axes"):
        return np.squeeze(x)
    # PyTorch behaviour (MIL doc): listed axes that are not of size 1 are left alone.
    axes = tuple(a % x.ndim for a in args.ints("axes") if x.shape[a % x.ndim] == 1)
    return np.squeeze(x, axis=axes)


@register("expand_dims")
def expand_dims(args):
    # Negative axes count in the output rank, rank(x) + len(axes), as numpy does.
    return np.expand_dims(args.tensor("x"), tuple(args.ints("axes")))


@register("flatten2d")
def flatten2d(args):
    x = args.tensor("x")
    axis = int(args.scalar("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    return x.reshape(int(np.prod(x.shape[:axis])), -1)


@register("concat")
def concat(args):
    values = [np.asarray(v) for v in args.values("values")]
    axis = int(args.scalar("axis"))
    if not args.scalar("interleave", False):
        return np.concatenate(values, axis=axis)
    # interleave: output[i::n] along axis = values[i]; all inputs share one shape.
    if len({v.shape for v in values}) != 1:
        raise args.unsupported("interleave", True, "interleaved inputs must share one shape")
    axis %= values[0].ndim
    stacked = np.stack(values, axis=axis + 1)
    shape = list(values[0].shape)
    shape[axis] *= len(values)
    return stacked.reshape(shape)


@register("split")
def split(args):
    x = args.tensor("x")
    axis = int(args.scalar("axis")) % x.ndim
    if args.has("split_sizes"):
        sizes = args.ints("split_sizes")
        if args.has("num_splits") and int(args.scalar("num_splits")) != len(sizes):
            raise args.unsupported("num_splits", args.scalar("num_splits"), f"{len(sizes)} split_sizes are given")
        if sum(sizes) != x.shape[axis]:
            raise args.unsupported("split_sizes", sizes, f"they must add up to {x.shape[axis]}")
        points = np.cumsum(sizes)[:-1]
    else:
        count = int(args.scalar("num_splits"))
        if x.shape[axis] % count:
            raise args.unsupported("num_splits", count, f"axis size {x.shape[axis]} is not divisible")
        points = count
    return tuple(np.split(x, points, axis=axis))


@register("stack")
def stack(args):
    return np.stack([np.asarray(v) for v in args.values("values")], axis=int(args.scalar("axis")))


@register("tile")
def tile(args):
    x = args.tensor("x")
    reps = args.ints("reps")
    if len(reps) != x.ndim:
        raise args.unsupported("reps", reps, f"one repetition per dim of {x.shape}")
    return np.tile(x, reps)


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "replicate": "edge"}


@register("pad")
def pad(args):
    # pad[2i], pad[2i+1] pad before/after the i-th of the LAST len(pad)/2 dims
    x = args.tensor("x")
    amounts = args.ints("pad")
    mode = args.string("mode", "constant", choices=tuple(_PAD_MODES))
    value = args.scalar("constant_val", 0.0)
    if len(amounts) % 2 or len(amounts) // 2 > x.ndim:
        raise args.unsupported("pad", amounts, f"2 * N values for N <= rank {x.ndim}")
    n = len(amounts) // 2
    widths = [(0, 0)] * (x.ndim - n) + [(amounts[2 * i], amounts[2 * i + 1]) for i in range(n)]
    if any(b < 0 or a < 0 for b, a in widths):
        raise args.unsupported("pad", amounts, "negative padding")
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=value)
    if mode == "reflect" and any(b >= x.shape[i] or a >= x.shape[i] for i, (b, a) in enumerate(widths) if b or a):
        raise args.unsupported("pad", amounts, "reflect padding must be smaller than the dim")
    return np.pad(x, widths, mode=_PAD_MODES[mode])


@register("pixel_shuffle")
def pixel_shuffle(args):
    # PyTorch PixelShuffle: [N, C*f*f, H, W] -> [N, C, H*f, W*f]
    x = args.tensor("x")
    f = int(args.scalar("upscale_factor"))
    n, c, h, w = x.shape
    y = x.reshape(n, c // (f * f), f, f, h, w).transpose(0, 1, 4, 2, 5, 3)
    return y.reshape(n, c // (f * f), h * f, w * f)


@register("pixel_unshuffle")
def pixel_unshuffle(args):
    # PyTorch PixelUnshuffle: [N, C, H*f, W*f] -> [N, C*f*f, H, W]
    x = args.tensor("x")
    f = int(args.scalar("downscale_factor"))
    n, c, h, w = x.shape
    y = x.reshape(n, c, h // f, f, w // f, f).transpose(0, 1, 3, 5, 2, 4)
    return y.reshape(n, c * f * f, h // f, w // f)
