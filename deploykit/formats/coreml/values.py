"""MIL data types and the decoding of MIL ``Value`` messages into numpy arrays.

At run time every floating tensor is held as float32, whatever its declared type: fp16 values are
rounded to float16 and widened back, which is exact, so arithmetic stays fast (numpy's float16
arithmetic is slow) while the values are those the declared type can hold. ``public`` turns a
runtime array back into the declared dtype for callers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deploykit.core.errors import InputError, UnsupportedOperatorError


@dataclass(frozen=True)
class DType:
    """One MIL data type. ``bits`` is set for sub-byte integers, which are stored one per byte."""

    name: str
    public: np.dtype | None  # what callers receive; None for strings
    runtime: np.dtype | None  # what ops compute on
    blob_code: int | None = None  # dtype code in weight.bin records
    bits: int | None = None
    signed: bool = False

    @property
    def is_float(self) -> bool:
        return self.name in ("fp16", "fp32", "fp64")


def _d(name, public, runtime, blob_code=None, bits=None, signed=False):
    to = (lambda t: None if t is None else np.dtype(t))
    return DType(name, to(public), to(runtime), blob_code, bits, signed)


# Keyed by the MIL_pb2.DataType enum numbers. bf16 and fp8 are left out on purpose: numpy has no
# such types and an emulation would need its own tests; programs using them are refused.
DTYPES: dict[int, DType] = {
    1: _d("bool", np.bool_, np.bool_),
    2: _d("str", None, None),
    10: _d("fp16", np.float16, np.float32, blob_code=1),
    11: _d("fp32", np.float32, np.float32, blob_code=2),
    12: _d("fp64", np.float64, np.float64),
    21: _d("int8", np.int8, np.int8, blob_code=4, signed=True),
    22: _d("int16", np.int16, np.int16, blob_code=6, signed=True),
    23: _d("int32", np.int32, np.int32, blob_code=14, signed=True),
    24: _d("int64", np.int64, np.int64, signed=True),
    25: _d("int4", np.int8, np.int8, blob_code=8, bits=4, signed=True),
    31: _d("uint8", np.uint8, np.uint8, blob_code=3),
    32: _d("uint16", np.uint16, np.uint16, blob_code=7),
    33: _d("uint32", np.uint32, np.uint32, blob_code=15),
    34: _d("uint64", np.uint64, np.uint64),
    35: _d("uint4", np.uint8, np.uint8, blob_code=11, bits=4),
    36: _d("uint2", np.uint8, np.uint8, blob_code=10, bits=2),
    37: _d("uint1", np.uint8, np.uint8, blob_code=9, bits=1),
    38: _d("uint6", np.uint8, np.uint8, blob_code=13, bits=6),
    39: _d("uint3", np.uint8, np.uint8, blob_code=12, bits=3),
}
BY_NAME: dict[str, DType] = {d.name: d for d in DTYPES.values()}


DICT = DType("dict", None, None)  # a classifier's probabilities: label -> probability (``classify``)


def dtype_of(code: int, where: str) -> DType:
    if code not in DTYPES:
        raise UnsupportedOperatorError(f"Core ML evaluator: {where} uses MIL data type {code}, which it does not handle")
    return DTYPES[code]


def to_runtime(array, dtype: DType) -> np.ndarray:
    """Round to the declared type and store as the runtime type (fp16 -> float16 -> float32)."""
    arr = np.asarray(array)
    if dtype.runtime is None:  # strings
        return arr
    if dtype.name == "fp16":
        return round_fp16(arr)
    if dtype.bits is not None:
        return arr.astype(dtype.runtime)
    return arr.astype(dtype.runtime, copy=False)


_FP16_SMALLEST_NORMAL = 0x38800000  # 2**-14 as float32 bits
_FP16_OVERFLOW = 0x477FF000  # 65520: from here on float16 rounds to inf


def round_fp16(array) -> np.ndarray:
    """float32 values rounded to the nearest float16 (ties to even), kept as float32.

    Same result as ``a.astype(float16).astype(float32)`` but about five times faster, which
    matters because fp16 programs round every op result: in float16's normal range rounding is
    dropping 13 mantissa bits of the float32 pattern with round-half-to-even; values below that
    range (float16 subnormals), overflowing values, inf and nan go through numpy's conversion.
    """
    shape = np.shape(array)
    a = np.ascontiguousarray(array, dtype=np.float32).reshape(-1)
    bits = a.view(np.uint32)
    rounded = bits + np.uint32(0x0FFF)
    rounded += (bits >> np.uint32(13)) & np.uint32(1)
    rounded &= np.uint32(0xFFFFE000)
    out = rounded.view(np.float32)
    magnitude = bits & np.uint32(0x7FFFFFFF)
    # (magnitude - 1) wraps around for zeros, which the bit rounding already maps to themselves.
    special = ((magnitude - np.uint32(1)) < np.uint32(_FP16_SMALLEST_NORMAL - 1)) | (magnitude >= np.uint32(_FP16_OVERFLOW))
    if special.any():
        with np.errstate(over="ignore"):
            out[special] = a[special].astype(np.float16).astype(np.float32)
    return out.reshape(shape)


def public(array, dtype: DType):
    """The value as a caller should see it: in the declared dtype (fp16 tensors as float16)."""
    if dtype.public is None:
        return array
    return np.asarray(array).astype(dtype.public, copy=False)


def unpack_bits(packed: np.ndarray, count: int, dtype: DType) -> np.ndarray:
    """Sub-byte values packed least-significant bit first across the byte stream (MIL's layout)."""
    bits = dtype.bits
    stream = np.unpackbits(np.frombuffer(packed, np.uint8), bitorder="little")
    if stream.size < count * bits:
        raise InputError(f"packed {dtype.name} data holds {stream.size // bits} values, {count} expected")
    fields = stream[: count * bits].reshape(count, bits).astype(np.int16)
    values = (fields << np.arange(bits, dtype=np.int16)).sum(axis=1)
    if dtype.signed:
        values = np.where(values >= 1 << (bits - 1), values - (1 << bits), values)
    return values.astype(dtype.runtime)


def decode_tensor_value(tensor_value, dtype: DType, shape: tuple[int, ...], where: str):
    """An ``ImmediateValue.tensor`` as a runtime array (or a Python str for a string scalar)."""
    field = tensor_value.WhichOneof("value")
    count = int(np.prod(shape, dtype=np.int64))
    if field is None:
        raw = np.zeros(0)
    elif field == "bytes":
        data = tensor_value.bytes.values
        if dtype.bits is not None:
            return to_runtime(unpack_bits(data, count, dtype).reshape(shape), dtype)
        if dtype.public is None:
            raise InputError(f"{where}: bytes given for a {dtype.name} value")
        raw = np.frombuffer(data, dtype.public)
    elif field == "strings":
        values = list(tensor_value.strings.values)
        if dtype.name != "str":
            raise InputError(f"{where}: strings given for a {dtype.name} value")
        if shape == ():
            if len(values) != 1:
                raise InputError(f"{where}: a string scalar holds {len(values)} values")
            return values[0]
        return np.array(values, dtype=object).reshape(shape)
    else:
        raw = np.array(list(getattr(tensor_value, field).values))
    if raw.size != count:
        raise InputError(f"{where}: the value holds {raw.size} elements, its type declares {count}")
    if dtype.runtime is None:
        raise InputError(f"{where}: {field} given for a string value")
    return to_runtime(raw.reshape(shape), dtype)


def tensor_type(value_type, where: str) -> tuple[DType, tuple[int | None, ...] | None]:
    """(dtype, shape) of a ``ValueType`` that must be a tensor; unknown dims are None."""
    if value_type.WhichOneof("type") == "dictionaryType":
        return DICT, ()
    if value_type.WhichOneof("type") != "tensorType":
        kind = value_type.WhichOneof("type")
        raise UnsupportedOperatorError(f"Core ML evaluator: {where} has a {kind} value; only tensors are handled")
    tt = value_type.tensorType
    dtype = dtype_of(tt.dataType, where)
    dims = []
    for dim in tt.dimensions:
        dims.append(dim.constant.size if dim.WhichOneof("dimension") == "constant" else None)
    if len(dims) != tt.rank:
        if tt.rank < 0:  # variadic rank: nothing is known about the shape
            return dtype, None
        raise InputError(f"{where}: tensor type declares rank {tt.rank} but lists {len(dims)} dimensions")
    return dtype, tuple(dims)


def decode_value(value, blobs, where: str):
    """A MIL ``Value`` (immediate or in weight.bin) as a runtime array or Python string; an immediate list
    (a classifier's classes) as a tuple of its decoded items."""
    if value.type.WhichOneof("type") == "listType" and value.WhichOneof("value") == "immediateValue":
        items = value.immediateValue.list.values
        return tuple(decode_value(item, blobs, f"{where} item {i}") for i, item in enumerate(items))
    dtype, shape = tensor_type(value.type, where)
    if shape is None or any(d is None for d in shape):
        raise InputError(f"{where}: a constant must have a fully known shape")
    kind = value.WhichOneof("value")
    if kind == "immediateValue":
        if value.immediateValue.WhichOneof("value") != "tensor":
            other = value.immediateValue.WhichOneof("value")
            raise UnsupportedOperatorError(f"Core ML evaluator: {where} holds a {other} immediate value; only tensors are handled")
        return decode_tensor_value(value.immediateValue.tensor, dtype, shape, where)
    if kind == "blobFileValue":
        count = int(np.prod(shape, dtype=np.int64))
        flat = blobs.read(value.blobFileValue.fileName, value.blobFileValue.offset, dtype, count, where)
        return to_runtime(flat.reshape(shape), dtype)
    raise InputError(f"{where}: the value has neither an immediate value nor a blob reference")
