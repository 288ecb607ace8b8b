"""upsample_nearest_neighbor (integer factors), upsample_bilinear, resize_bilinear.

Bilinear ops sample each output position at a fractional source coordinate given by the op's
grid rule (quoted below from the MIL reference), clipped to ``[0, X_in - 1]``, and interpolate
separably along height then width.
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


@register("resize_bilinear")
def resize_bilinear(args):
    x = args.tensor("x")
    out_h, out_w = int(args.scalar("target_size_height", 1)), int(args.scalar("target_size_width", 1))
    mode = args.string("sampling_mode", "DEFAULT", choices=(
        "STRICT_ALIGN_CORNERS", "ALIGN_CORNERS", "DEFAULT", "OFFSET_CORNERS", "UNALIGN_CORNERS"))
    return _bilinear(x, out_h, out_w, mode)
