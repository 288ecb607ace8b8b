"""Op type -> implementation. Each family module registers its functions with ``@register``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from deploykit.core.errors import UnsupportedOperatorError


@dataclass(frozen=True)
class OpImpl:
    """An implementation: ``fn(args) -> array | tuple of arrays``. ``constexpr`` ops run at load."""

    op_type: str
    fn: Callable
    family: str
    constexpr: bool = False


_REGISTRY: dict[str, OpImpl] = {}


def register(*op_types: str, constexpr: bool = False):
    def decorate(fn: Callable) -> Callable:
        family = fn.__module__.rsplit(".", 1)[-1]
        for op_type in op_types:
            if op_type in _REGISTRY:
                raise RuntimeError(f"op type {op_type!r} registered twice")
            _REGISTRY[op_type] = OpImpl(op_type, fn, family, constexpr)
        return fn

    return decorate


def lookup(op_type: str, output_name: str) -> OpImpl:
    impl = _REGISTRY.get(op_type)
    if impl is None:
        raise UnsupportedOperatorError(
            f"Core ML evaluator: op '{op_type}' (output '{output_name}') has no numpy implementation",
            hint=f"supported ops: {', '.join(sorted(_REGISTRY))}",
        )
    return impl


def registered() -> dict[str, OpImpl]:
    return dict(_REGISTRY)
