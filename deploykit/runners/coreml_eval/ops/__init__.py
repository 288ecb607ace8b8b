"""One module per op family; importing this package registers them all (see ``registry``)."""

from __future__ import annotations

from . import (  # noqa: F401  (imported for their @register side effects)
    activation,
    cast,
    constexpr,
    conv,
    elementwise,
    linear,
    normalization,
    pool,
    reduce,
    resize,
    shape,
    slicing,
)
from .registry import lookup, registered

__all__ = ["lookup", "registered"]
