"""upsample_nearest_neighbor, resize_nearest_neighbor, upsample_bilinear, resize_bilinear and the
iOS17 ``resize`` (either interpolation, to a size given as a tensor).

Bilinear ops sample each output position at a fractional source coordinate given by the op's
grid rule (quoted below from the MIL reference), clipped to ``[0, X_in - 1]``, and interpolate
separably along height then width.

Nearest-neighbour resizing is computed only for whole upscaling factors (X_out a multiple of
X_in), where every source-pixel rule agrees. For other sizes the frontends disagree on the rule:
coremltools' TensorFlow frontend maps TF's half-pixel nearest resize onto
``resize_nearest_neighbor`` while onnx2coreml maps ONNX's asymmetric (floor) one onto it, so the
evaluator refuses rather than pick one.
"""

from __future__ import annotations

import math

import numpy as np

from .registry import register


@register("upsample_nearest_neighbor")
def upsample_nearest_neighbor(args):
    x = args.tensor("x")
    factors = []
    for key in ("scale_factor_height", "scale_factor_width"):
        f = args.scalar(key, 1)
        # Fractional factors pick source pixels by a rule MIL does not spell out: refuse them.
        if float(f) != int(f) or int(f) < 1:
            raise args.unsupported(key, f, "only positive integer factors are implemented")
        factors.append(int(f))
    return np.repeat(np.repeat(x, factors[0], axis=-2), factors[1], axis=-1)


def _nearest(args, x: np.ndarray, sizes) -> np.ndarray:
    """Repeat the last len(sizes) dims of x up to ``sizes``, refusing non-whole factors."""
    for i, size in enumerate(sizes):
        axis = x.ndim - len(sizes) + i
        if size < 1 or size % x.shape[axis]:
            raise args.unsupported("target size", size, f"nearest-neighbour resizing from {x.shape[axis]} is only "
                                   "defined here for whole upscaling factors (see ops/resize.py)")
        x = np.repeat(x, size // x.shape[axis], axis=axis)
    return x


@register("resize_nearest_neighbor")
def resize_nearest_neighbor(args):
    x = args.tensor("x")
    return _nearest(args, x, (int(args.scalar("target_size_height")), int(args.scalar("target_size_width"))))


def _grid(mode: str, size_in: int, size_out: int) -> np.ndarray:
    i = np.arange(size_out, dtype=np.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        # spacing = (Xin - 1) / (Xout - 1); ALIGN_CORNERS samples the centre when Xout == 1
        if size_out == 1:
            pos = np.array([(size_in - 1) / 2.0 if mode == "ALIGN_CORNERS" else 0.0])
        else:
            pos = i * (size_in - 1) / (size_out - 1)
    elif mode == "DEFAULT":
        # spacing = (Xin - Xin / Xout) / (Xout - 1)
        pos = i * 0.0 if size_out == 1 else i * (size_in - size_in / size_out) / (size_out - 1)
    elif mode == "OFFSET_CORNERS":
        delta = max(1, size_in - 1) / size_out
        pos = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        # spacing = Xin / Xout; grid = i * spacing + 0.5 * spacing - 0.5
        pos = (i + 0.5) * size_in / size_out - 0.5
    elif mode == "ASYMMETRIC":  # align_corners = half_pixel_centers = False: i * Xin / Xout
        pos = i * size_in / size_out
    else:
        raise ValueError(mode)
    return np.clip(pos, 0, size_in - 1)


def _interpolate(x: np.ndarray, axis: int, pos: np.ndarray) -> np.ndarray:
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, x.shape[axis] - 1)
    frac = (pos - lo).astype(x.dtype)
    shape = [1] * x.ndim
    shape[axis] = -1
    frac = frac.reshape(shape)
    return np.take(x, lo, axis=axis) * (1 - frac) + np.take(x, hi, axis=axis) * frac


def _bilinear(x, out_h, out_w, mode):
    y = _interpolate(x, x.ndim - 2, _grid(mode, x.shape[-2], out_h))
    return _interpolate(y, x.ndim - 1, _grid(mode, x.shape[-1], out_w))


@register("upsample_bilinear")
def upsample_bilinear(args):
    x = args.tensor("x")
    fh, fw = float(args.scalar("scale_factor_height", 1)), float(args.scalar("scale_factor_width", 1))
    align = bool(args.scalar("align_corners", True))
    # iOS16 added half_pixel_centers (default: not align_corners); iOS15 implies exactly that.
    half = bool(args.scalar("half_pixel_centers", not align))
    if align and half:
        raise args.unsupported("half_pixel_centers", True, "it contradicts align_corners=True")
    mode = "STRICT_ALIGN_CORNERS" if align else ("UNALIGN_CORNERS" if half else "ASYMMETRIC")
    # output size floor(X * factor); the grid uses the recomputed factor Xout / Xin (MIL doc)
    return _bilinear(x, math.floor(x.shape[-2] * fh), math.floor(x.shape[-1] * fw), mode)


_SAMPLING_MODES = ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT", "OFFSET_CORNERS", "UNALIGN_CORNERS")


@register("resize_bilinear")
def resize_bilinear(args):
    x = args.tensor("x")
    out_h, out_w = int(args.scalar("target_size_height", 1)), int(args.scalar("target_size_width", 1))
    mode = args.string("sampling_mode", "DEFAULT", choices=_SAMPLING_MODES)
    return _bilinear(x, out_h, out_w, mode)


@register("resize")
def resize(args):
    # iOS17: the last `resized_dims` dims take their sizes from the end of `shape` (0 keeps x's size)
    x = args.tensor("x")
    shape = args.ints("shape")
    count = int(args.scalar("resized_dims"))
    interpolation = args.string("interpolation_mode", "LINEAR", choices=("LINEAR", "NEAREST_NEIGHBOR"))
    mode = args.string("sampling_mode", "DEFAULT", choices=_SAMPLING_MODES)
    if not 1 <= count <= 2 or count > len(shape) or len(shape) > x.ndim:
        raise args.unsupported("resized_dims", count, f"1 or 2 resized dims, with shape {list(shape)} for rank {x.ndim}")
    sizes = [s if s else x.shape[x.ndim - count + i] for i, s in enumerate(shape[len(shape) - count:])]
    if interpolation == "NEAREST_NEIGHBOR":
        if mode != "DEFAULT":
            raise args.unsupported("sampling_mode", mode, "nearest-neighbour sampling is only specified with DEFAULT")
        return _nearest(args, x, sizes)
    if not np.issubdtype(x.dtype, np.floating):
        raise args.unsupported("x", str(x.dtype), "how interpolated integers are rounded is not specified")
    if count == 1:
        return _interpolate(x, x.ndim - 1, _grid(mode, x.shape[-1], sizes[0]))
    return _bilinear(x, sizes[0], sizes[1], mode)
