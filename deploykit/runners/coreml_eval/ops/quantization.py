"""iOS17 quantize and dequantize: int8 / uint8 activations with a per-tensor or per-axis affine map.

    quantize:   clip(round(input / scale) + zero_point) to the output type's range
    dequantize: scale * (input - zero_point)

``round`` is half to even, as in coremltools' own value inference of ``quantize`` and in
PyTorch's quantize_per_tensor / quantize_per_channel, whose models the torch frontend maps here.
``input / scale`` is divided in float64: for fp16 and fp32 operands that decides every rounding as the
exact quotient would (a quotient that is not a tie lies at least 2^-25 of it away from one, far above
float64's step; float32 division can land such a quotient on the tie). A device computing the quotient
in fp16 may round differently near ties; like every fp16 accumulation detail, that is not modelled.
A zero scale is refused (the MIL spec forbids it), as is a zero point whose type is not the output's.
"""

from __future__ import annotations

import numpy as np

from .registry import register

_RANGES = {"int8": (-128, 127), "uint8": (0, 255)}


def _along_axis(args, key: str, x: np.ndarray, default):
    """A scalar or a vector along ``axis`` (shaped to broadcast against x), or ``default``."""
    value = args.optional(key)
    if value is None:
        return default
    if value.ndim == 0 or (value.size == 1 and not args.has("axis")):
        return value.reshape(())
    if value.ndim != 1:
        raise args.unsupported(key, value.shape, "a scalar or a vector")
    if not args.has("axis"):
        raise args.unsupported(key, value.shape, "a vector needs an axis")
    axis = int(args.scalar("axis")) % x.ndim
    if value.size != x.shape[axis]:
        raise args.unsupported(key, value.shape, f"a vector of length x.shape[{axis}] = {x.shape[axis]}")
    return value.reshape([-1 if a == axis else 1 for a in range(x.ndim)])


@register("quantize")
def quantize(args):
    x = args.tensor("input")
    target = args.string("output_dtype", choices=tuple(_RANGES))
    if args.output().dtype.name != target:
        raise args.unsupported("output_dtype", target, f"the program declares {args.output().dtype.name}")
    scale = _along_axis(args, "scale", x, None).astype(np.float64)
    if np.any(scale == 0):
        raise args.unsupported("scale", scale, "the MIL spec forbids a zero scale")
    zero = _along_axis(args, "zero_point", x, None)
    if zero is not None and zero.dtype.name != target:
        raise args.unsupported("zero_point", zero.dtype.name, f"its type must be output_dtype {target}")
    zero = np.zeros(()) if zero is None else zero.astype(np.float64)
    args.ignore("axis")  # read by _along_axis when a vector needs it; a scalar pair ignores it
    low, high = _RANGES[target]
    return np.clip(np.round(x.astype(np.float64) / scale) + zero, low, high).astype(np.float32)


@register("dequantize")
def dequantize(args):
    x = args.tensor("input")
    scale = _along_axis(args, "scale", x, None).astype(np.float32)
    zero = _along_axis(args, "zero_point", x, np.zeros((), np.int32)).astype(np.float32)
    args.ignore("axis")
    return (x.astype(np.float32) - zero) * scale
