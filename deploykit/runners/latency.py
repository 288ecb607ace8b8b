"""Host latency for the record and the report: how long a conversion spends timing each artifact.

The figure is information, not a check: one that cannot be had is recorded with the reason, never failing
the conversion. Each target says how it measures (``deploykit.targets``): TFLite with LiteRT in this
process, ExecuTorch in its runtime's child process, Core ML by an op-count estimate.
"""

from __future__ import annotations

WARMUP = 3
RUNS = 20  # a few milliseconds for the small models convert usually sees; `deploykit bench` for more


def why(exc: Exception) -> str:
    """An exception as the one line a record's ``unavailable`` says."""
    text = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else 'no message'}"[:300]
