"""One module per op family; importing this package registers them all (see ``registry``)."""

from __future__ import annotations

from . import (  # noqa: F401  (imported for their @register side effects)
    activation,
    attention,
    blocks,
    cast,
    classify,
    constexpr,
    control_flow,
    conv,
    creation,
    elementwise,
    linear,
    masks,
    normalization,
    pool,
    quantization,
    recurrent,
    reduce,
    resample,
    resize,
    scatter_gather,
    sequence,
    shape,
    slicing,
    sort,
)
from .registry import lookup, registered

__all__ = ["lookup", "registered"]
