"""The counting rules every format's walker applies, so that a source and its artifacts agree."""

from __future__ import annotations

import math

import numpy as np

# Integer constants are shapes, axes and indices, not learned weights; the walkers pass the weights of
# convolutions and fully connected layers explicitly, so an int8 model's int32 biases still count.
_PARAMETER_KINDS = "fcu"  # float, complex (never seen), unsigned: uint8 LUT indices / quantized weights
_QUANTIZED_INTEGERS = ("int8", "uint8", "int4", "uint4", "int16")


def is_parameter(dtype: str, elements: int) -> bool:
    """Whether a constant read by an element-wise or normalization op counts as a parameter.

    Scalars (epsilon, a Mul by 0.5, clip bounds) are hyperparameters; integer tensors are shapes and
    indices, except the int8/uint8 storage of quantized weights.
    """
    if elements <= 1:
        return False
    if dtype in _QUANTIZED_INTEGERS:
        return True
    try:
        return np.dtype(dtype).kind in "fc"
    except TypeError:
        return dtype in ("bfloat16", "float16")


def conv_layer_type(kernel: tuple[int, ...], groups: int, in_channels: int, in_spatial: tuple[int, ...]) -> str:
    """The MobileNet table's row for a convolution.

    Depthwise: one group per input channel. 1x1: a pointwise kernel without groups. A 1x1 convolution
    over a 1x1 map is a fully connected layer (Keras' MobileNet writes its classifier that way); every
    other convolution (3x3, 7x7, grouped, transposed) is "conv".
    """
    if groups > 1 and groups == in_channels:
        return "depthwise"
    if groups == 1 and all(k == 1 for k in kernel):
        if in_spatial and all(s == 1 for s in in_spatial):
            return "fully_connected"
        return "conv1x1"
    return "conv"


def conv_macs(out_shape: tuple[int, ...], in_channels: int, groups: int, kernel: tuple[int, ...]) -> int:
    """Each output element is a dot product over (in_channels / groups) x kernel inputs."""
    return elements(out_shape) * (in_channels // max(groups, 1)) * math.prod(kernel)


def transposed_conv_macs(in_shape: tuple[int, ...], out_channels: int, groups: int, kernel: tuple[int, ...]) -> int:
    """Each input element is scattered into (out_channels / groups) x kernel outputs."""
    return elements(in_shape) * (out_channels // max(groups, 1)) * math.prod(kernel)


def matmul_macs(out_shape: tuple[int, ...], reduced: int) -> int:
    """Every output element of a matrix product is a dot product of length ``reduced``."""
    return elements(out_shape) * reduced


def elements(shape) -> int:
    return int(math.prod(int(d) for d in shape)) if shape else 1


def dtype_bytes(dtype: str) -> float:
    """Bytes per element; sub-byte types (int4, uint2, ...) as fractions."""
    sub_byte = {"int4": 0.5, "uint4": 0.5, "uint1": 0.125, "uint2": 0.25, "uint3": 0.375, "uint6": 0.75,
                "int2": 0.25, "uint8": 1, "int8": 1, "bfloat16": 2}
    if dtype in sub_byte:
        return sub_byte[dtype]
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return 4
