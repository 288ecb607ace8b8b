"""Compressed weights: the ``constexpr_*`` ops, run once when the program is loaded.

iOS16 forms take their parameters as op attributes (packed ``uint8`` indices or masks plus a
``shape``); iOS18 forms take inputs whose sub-byte types (uint1..uint6, int4) were already
unpacked when the constants were decoded. An op's form is told apart by its arguments.
Arithmetic is float32, each result rounded to the dtype the program declares (fp16 or fp32).
"""

from __future__ import annotations

import numpy as np

from deploykit.formats.coreml.values import BY_NAME, to_runtime, unpack_bits

from .registry import register


def _f32(a) -> np.ndarray:
    return np.asarray(a).astype(np.float32)


@register("constexpr_affine_dequantize", constexpr=True)
def affine_dequantize(args):
    # iOS16: scale * (quantized_data - zero_point); scale/zero_point scalars or vectors along axis
    q = args.tensor("quantized_data")
    zero, scale = args.tensor("zero_point"), args.tensor("scale")
    axis = int(args.scalar("axis")) % q.ndim
    shape = [1] * q.ndim
    shape[axis] = -1
    for key, p in (("zero_point", zero), ("scale", scale)):
        if p.ndim > 1 or (p.ndim == 1 and p.size != q.shape[axis]):
            raise args.unsupported(key, p.shape, f"a scalar or a vector of length {q.shape[axis]} is expected")
    zero = zero.reshape(shape) if zero.ndim else zero
    scale = scale.reshape(shape) if scale.ndim else scale
    return (_f32(q) - _f32(zero)) * _f32(scale)


@register("constexpr_cast", constexpr=True)
def constexpr_cast(args):
    args.string("output_dtype", choices=("fp32",))
    return _f32(args.tensor("source_val"))


def _blocks(data_shape, param, key, args) -> np.ndarray:
    """Repeat a per-block parameter up to ``data_shape`` (block size = data dim / param dim)."""
    if param.ndim != len(data_shape) or any(d % p for d, p in zip(data_shape, param.shape)):
        raise args.unsupported(key, param.shape, f"each dim must divide the data shape {tuple(data_shape)}")
    for axis, (d, p) in enumerate(zip(data_shape, param.shape)):
        if d != p:
            param = np.repeat(param, d // p, axis=axis)
    return param


def _shift_scale(args, data: np.ndarray) -> np.ndarray:
    scale = _blocks(data.shape, args.tensor("scale"), "scale", args)
    out_type = args.output(len(args.op.outputs) - 1).dtype
    values = _f32(data)
    if args.has("offset"):
        offset = _blocks(data.shape, args.tensor("offset"), "offset", args)
        # coremltools computes data - offset in the scale's type; round the same way.
        values = to_runtime(values - _f32(offset), out_type)
    return values * _f32(scale)


@register("constexpr_blockwise_shift_scale", constexpr=True)
def blockwise_shift_scale(args):
    # iOS18: scale[block] * (data - offset[block]), blocks implied by data.shape / scale.shape
    return _shift_scale(args, args.tensor("data"))


def _unpack_mask(args, key: str, shape) -> np.ndarray:
    """iOS16 masks/indices: ``uint8`` bytes with bit fields packed LSB first."""
    count = int(np.prod(shape))
    packed = args.tensor(key).astype(np.uint8)
    if packed.ndim != 1 or packed.size != -(-count // 8):
        raise args.unsupported(key, packed.shape, f"{-(-count // 8)} packed bytes for shape {tuple(shape)}")
    return unpack_bits(packed.tobytes(), count, BY_NAME["uint1"])


def _sparse(args, mask: np.ndarray, data: np.ndarray, key: str) -> np.ndarray:
    if data.ndim != 1 or int(np.count_nonzero(mask)) != data.size:
        raise args.unsupported(key, data.shape, f"the mask has {int(np.count_nonzero(mask))} set bits")
    dense = np.zeros(mask.shape, dtype=data.dtype)
    dense[mask != 0] = data  # row-major order, as the spec says
    return dense


@register("constexpr_sparse_to_dense", constexpr=True)
def sparse_to_dense(args):
    data = args.tensor("nonzero_data")
    if args.has("shape"):  # iOS16: packed uint8 mask + shape
        shape = args.ints("shape")
        return _sparse(args, _unpack_mask(args, "mask", shape).reshape(shape), data, "nonzero_data")
    return _sparse(args, args.tensor("mask"), data, "nonzero_data")  # iOS18: uint1 mask tensor


def _lut18(args, indices: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """iOS18 LUT: lut[*group, palette, vector]; groups are blocks of ``indices`` along each dim."""
    if lut.ndim != indices.ndim + 2 or any(i % g for i, g in zip(indices.shape, lut.shape)):
        raise args.unsupported("lut", lut.shape, f"rank {indices.ndim + 2} with dims dividing {indices.shape}")
    palettes, vector = lut.shape[-2], lut.shape[-1]
    if indices.size and int(indices.max()) >= palettes:
        raise args.unsupported("indices", int(indices.max()), f"the LUT has {palettes} entries")
    groups = [np.arange(n).reshape([-1 if a == k else 1 for a in range(indices.ndim)]) // (n // g)
              for k, (n, g) in enumerate(zip(indices.shape, lut.shape))]
    picked = lut[tuple(groups) + (indices.astype(np.int64),)]  # indices.shape + (vector,)
    if vector == 1:
        args.ignore("vector_axis")  # MIL: optional and meaningless for scalar palettization
        return picked[..., 0]
    axis = int(args.scalar("vector_axis")) % indices.ndim
    # out[..., j * vector + v, ...] = picked[..., j, ..., v] along vector_axis
    moved = np.moveaxis(picked, -1, axis + 1)
    shape = list(indices.shape)
    shape[axis] *= vector
    return moved.reshape(shape)


@register("constexpr_lut_to_dense", constexpr=True)
def lut_to_dense(args):
    lut = args.tensor("lut")
    if args.has("shape"):  # iOS16: flat LUT of 2^nbits entries, packed uint8 indices
        shape = args.ints("shape")
        nbits = int(np.log2(lut.size))
        if lut.ndim != 1 or lut.size != 1 << nbits or nbits not in (1, 2, 4, 6, 8):
            raise args.unsupported("lut", lut.shape, "a vector of 2, 4, 16, 64 or 256 entries")
        count = int(np.prod(shape))
        packed = args.tensor("indices").astype(np.uint8)
        if packed.ndim != 1 or packed.size != -(-count * nbits // 8):
            raise args.unsupported("indices", packed.shape, f"{-(-count * nbits // 8)} packed bytes")
        indices = packed if nbits == 8 else unpack_bits(packed.tobytes(), count, BY_NAME[f"uint{nbits}"])
        return lut[indices.astype(np.int64)].reshape(shape)
    return _lut18(args, args.tensor("indices"), lut)


@register("constexpr_lut_to_sparse", constexpr=True)
def lut_to_sparse(args):
    # iOS18 joint compression: palettized non-zeros. Returns (mask, values of the set positions).
    mask = args.tensor("indices_mask")
    indices = _sparse(args, mask, args.tensor("indices_nonzero_data"), "indices_nonzero_data")
    dense = _lut18(args, indices, args.tensor("lut"))
    if dense.shape != mask.shape:  # vector palettization widens the mask along vector_axis
        axis = int(args.scalar("vector_axis")) % mask.ndim
        mask = np.repeat(mask, dense.shape[axis] // mask.shape[axis], axis=axis)
    return mask, dense[mask != 0]


@register("constexpr_sparse_blockwise_shift_scale", constexpr=True)
def sparse_blockwise_shift_scale(args):
    # iOS18 joint compression: quantized non-zeros. Returns (mask, dequantized set values).
    mask = args.tensor("data_mask")
    dense = _sparse(args, mask, args.tensor("nonzero_data"), "nonzero_data")
    return mask, _shift_scale(args, dense)[mask != 0]
