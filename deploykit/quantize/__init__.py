"""Quantization schemes (one module per scheme family), ``--quantize`` parsing, calibration data,
size accounting, and the two engines: ai-edge-quantizer for TFLite, coremltools.optimize for Core ML."""

from __future__ import annotations

from deploykit.quantize.options import (
    DEFAULT_CALIBRATION_SAMPLES,
    DEFAULT_LUT_BUDGET,
    GROUPED_LUT_TARGETS,
    AutoOptions,
    KeepFloat,
    QuantizeOptions,
    parse_keep_float,
    parse_quantize,
    skipped_schemes,
)
from deploykit.quantize.schemes import SCHEMES, Scheme, supported


def build_options(targets, quantize=None, calibration=None, calibration_samples=None, int8_io=False, keep_float=None,
                  per_tensor=False, lut_group_size=None, coreml_target="iOS16", lut_budget=None,
                  auto: AutoOptions | None = None, bias_correction: bool = True) -> QuantizeOptions:
    """Parse and cross-check every quantization flag (raises UsageError before any work starts)."""
    from deploykit.quantize.options import check_combinations

    options = QuantizeOptions(
        plan=parse_quantize(quantize, tuple(targets), coreml_target),
        calibration=str(calibration) if calibration else None,
        calibration_samples=DEFAULT_CALIBRATION_SAMPLES if calibration_samples is None else int(calibration_samples),
        int8_io=int8_io,
        keep_float=keep_float if isinstance(keep_float, KeepFloat) else parse_keep_float(keep_float),
        per_tensor=per_tensor,
        lut_group_size=lut_group_size,
        lut_budget=DEFAULT_LUT_BUDGET if lut_budget is None else float(lut_budget),
        lut_grouped=coreml_target in GROUPED_LUT_TARGETS,
        auto=auto,
        bias_correction=bias_correction,
    )
    check_combinations(options, coreml_target)
    return options


__all__ = ["SCHEMES", "Scheme", "QuantizeOptions", "AutoOptions", "KeepFloat", "build_options", "parse_quantize", "parse_keep_float",
           "supported", "skipped_schemes", "DEFAULT_CALIBRATION_SAMPLES"]
