"""What the TFLite paths share: running TFLiteConverter with deploykit's errors."""

from __future__ import annotations

from deploykit.core.errors import ConversionError, UnsupportedOperatorError


def run_tflite_converter(converter, label: str) -> bytes:
    try:
        return converter.convert()
    except Exception as exc:
        text = str(exc)
        ops = [line.strip() for line in text.splitlines() if "op" in line.lower() and ("not supported" in line.lower() or "custom" in line.lower())]
        if ops or "not supported" in text.lower():
            raise UnsupportedOperatorError(
                f"{label}: the model uses operators TFLite's builtin set cannot express: {(ops or [text.splitlines()[0]])[0][:300]}",
                hint="replace the operator, or convert to coreml only",
            ) from exc
        first = (text.strip().splitlines() or [type(exc).__name__])[0][:400]
        raise ConversionError(f"{label}: {first}", hint="rerun with --verbose to see the converter's log") from exc


def dynamic_shape(spec) -> tuple:
    """The input shape a TFLite converter is given: the flexible dimensions unknown (None), the rest static."""
    from deploykit.core.flexible import flexible_of

    flexible = flexible_of(spec)
    if flexible is None:
        return tuple(spec.shape)
    return tuple(low if low == high else None for low, high in flexible.dim_bounds)
