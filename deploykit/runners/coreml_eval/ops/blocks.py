"""space_to_depth, depth_to_space, space_to_batch, batch_to_space on ``[n, C, H, W]``.

The element order is TensorFlow's (its NHWC ops transposed to NCHW), which both frontends that
emit these ops rely on: coremltools' TensorFlow frontend maps SpaceToDepth / DepthToSpace /
SpaceToBatchND / BatchToSpaceND straight onto them, and onnx2coreml maps ONNX's DepthToSpace in
its default DCR mode, which is TensorFlow's order. A channel (or batch) index is split block row
first, then block column, then the original channel (or batch) index.
"""

from __future__ import annotations

import numpy as np

from .registry import register


def _rank4(args, x):
    if x.ndim != 4:
        raise args.unsupported("x", x.shape, "a rank-4 [n, C, H, W] input is expected")
    return x.shape


@register("space_to_depth")
def space_to_depth(args):
    x = args.tensor("x")
    n, c, h, w = _rank4(args, x)
    b = int(args.scalar("block_size"))
    if b < 1 or h % b or w % b:
        raise args.unsupported("block_size", b, f"a block size dividing H={h} and W={w}")
    y = x.reshape(n, c, h // b, b, w // b, b).transpose(0, 3, 5, 1, 2, 4)
    return y.reshape(n, b * b * c, h // b, w // b)


@register("depth_to_space")
def depth_to_space(args):
    x = args.tensor("x")
    n, c, h, w = _rank4(args, x)
    b = int(args.scalar("block_size"))
    if b < 1 or c % (b * b):
        raise args.unsupported("block_size", b, f"block_size^2 dividing C={c}")
    y = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    return y.reshape(n, c // (b * b), h * b, w * b)


def _block_shape(args):
    block = args.ints("block_shape")
    if len(block) != 2 or min(block) < 1:
        raise args.unsupported("block_shape", block, "two positive block sizes")
    return block


def _pairs(args, key):
    values = args.ints(key)
    if len(values) != 4 or min(values) < 0:
        raise args.unsupported(key, values, "a [2, 2] tensor of non-negative amounts")
    return (values[0], values[1]), (values[2], values[3])


@register("space_to_batch")
def space_to_batch(args):
    # zero-pad H and W, then move each (block row, block column) phase to its own batch group
    x = args.tensor("x")
    n, c, _, _ = _rank4(args, x)
    bh, bw = _block_shape(args)
    pads = _pairs(args, "paddings")
    x = np.pad(x, [(0, 0), (0, 0), *pads])
    h, w = x.shape[2:]
    if h % bh or w % bw:
        raise args.unsupported("paddings", list(pads), f"padded size {h}x{w} not divisible by {bh}x{bw}")
    y = x.reshape(n, c, h // bh, bh, w // bw, bw).transpose(3, 5, 0, 1, 2, 4)
    return y.reshape(bh * bw * n, c, h // bh, w // bw)


@register("batch_to_space")
def batch_to_space(args):
    x = args.tensor("x")
    nb, c, h, w = _rank4(args, x)
    bh, bw = _block_shape(args)
    (top, bottom), (left, right) = _pairs(args, "crops")
    if nb % (bh * bw):
        raise args.unsupported("block_shape", [bh, bw], f"batch {nb} not divisible by {bh * bw}")
    n = nb // (bh * bw)
    y = x.reshape(bh, bw, n, c, h, w).transpose(2, 3, 4, 0, 5, 1).reshape(n, c, h * bh, w * bw)
    return y[:, :, top:h * bh - bottom, left:w * bw - right]
