"""deploykit's own ONNX -> MIL lowerings for the ops onnx2coreml lacks, one small module per op family.

Each module has ``LOWERINGS: dict[op_type, fn]`` with ``fn(ctx, node) -> MIL Var``, the signature of
onnx2coreml's ``@converter.register("OpType")``. The ONNX -> Core ML path hands them to the facade
(``deploykit.converters.onnx2coreml_facade``), which registers them all on the converter it builds; a key already lowered by onnx2coreml is never
overridden, so an upstream lowering that appears in a later version wins automatically. The one
exception is ``corrections``: lowerings that replace onnx2coreml's because its lowering computes
something else than the ONNX op (each says what, and what it measured).
"""

from __future__ import annotations

from deploykit.converters.onnx_lowerings import (
    activations,
    control_flow,
    corrections,
    normalization,
    sequence,
    variadic,
)

_MODULES = (activations, control_flow, normalization, sequence, variadic)


def lowerings() -> dict:
    merged: dict = {}
    for module in _MODULES:
        for op_type, fn in module.LOWERINGS.items():
            if op_type in merged:
                raise RuntimeError(f"two deploykit lowerings for ONNX {op_type}")
            merged[op_type] = fn
    return merged


def replacements() -> dict:
    """Lowerings registered even where onnx2coreml has its own (``corrections``)."""
    return dict(corrections.LOWERINGS)
