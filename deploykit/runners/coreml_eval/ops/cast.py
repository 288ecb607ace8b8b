"""cast and identity.

Float to integer casts truncate toward zero, as numpy's ``astype`` does and as coremltools' own
``cast.value_inference`` computes; the device is assumed to agree (not verified on a Mac here).
The rounding of fp16 results is done by the program runner from the declared output type.
"""

from __future__ import annotations

import numpy as np

from .registry import register

_TARGETS = {
    "fp16": np.float16,
    "fp32": np.float32,
    "int32": np.int32,
    "int16": np.int16,
    "uint16": np.uint16,
    "int8": np.int8,
    "uint8": np.uint8,
    "bool": np.bool_,
}


@register("cast")
def cast(args):
    x = args.tensor("x")
    target = args.string("dtype", choices=tuple(_TARGETS))
    declared = args.output().dtype.name
    if declared != target:
        raise args.unsupported("dtype", target, f"the program declares the output as {declared}")
    if np.issubdtype(_TARGETS[target], np.integer) and np.issubdtype(x.dtype, np.floating):
        x = np.trunc(x)
    return x.astype(_TARGETS[target])


@register("identity")
def identity(args):
    return args.tensor("x")
