"""Tell the trade-off: a variant whose host latency is worse than its target's fp32 artifact says so, and why.

A compressed variant is expected to be faster or no slower than fp32; some are not (TFLite int8-weights and int4
under XNNPACK: docs/quantization.md). After latency is measured, each such variant's record gets
``latency.slower_than_fp32 = {"fp32_ms", "ratio", "rule", "retimed", "why"}``; `deploykit convert` prints one note per
variant and report.html shows it in the latency cell. A candidate that timing again does not confirm keeps what was
seen as ``latency.retimed_against_fp32`` (the same keys but ``why``), so the record shows why no note was written.

The rule (``slower``): at least ``MIN_RATIO`` times and ``MIN_MS`` more than fp32's median, confirmed.
- 10 %: a smaller difference is not a trade-off worth a line. It is not above a shared machine's noise: one
  MobileNetV2 fp32 file, timed ten times in a row as convert times it (3 warm-up + 20 runs) while other jobs ran
  (load average 6 on 2 cores), gave medians from 39.2 to 47.1 ms, 1.20x apart; hence the confirmation below.
- 0.05 ms: the timing loop's own cost per call (a Python call into the runtime with its inputs) is part of every
  median (a 33k-parameter model's whole median is 0.023 ms), so below that the difference is the loop's, not the
  model's. The floor is deliberately small: a ratio measured on the host carries over to a device's CPU kernels
  where absolute times do not.
- Confirmation: load only ever adds time, and two timings taken seconds apart meet different load, so a measured
  candidate is timed again, fp32 and variant in turn (``RETIMES`` rounds), and stands only if the rule holds on each
  file's fastest median. It does not make a false note impossible on a loaded machine; it makes one need the load
  to hit all three timings of the variant and miss one of fp32's, and the record keeps every timing. A real
  trade-off is far above this (int8-weights 1.8x, int4 2.5x on MobileNetV2). An estimate (Core ML's cost model)
  is deterministic and is not timed again.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

MIN_RATIO = 1.10
MIN_MS = 0.05
RETIMES = 2
RULE = f"median at least {MIN_RATIO:g}x and {MIN_MS:g} ms above fp32's, confirmed on each file's fastest of " \
       f"{RETIMES + 1} interleaved timings (measured figures)"


def slower(ms: float, fp32_ms: float) -> bool:
    """The rule on two medians: is ``ms`` slower than ``fp32_ms`` beyond noise?"""
    return ms >= fp32_ms * MIN_RATIO and ms - fp32_ms >= MIN_MS


def confirmed(medians: list[float], fp32_medians: list[float]) -> bool:
    """The rule on repeated timings of both files: each file's fastest median is its least disturbed figure."""
    return bool(medians and fp32_medians) and slower(min(medians), min(fp32_medians))


def with_latency_notes(artifacts: list, staging: Path, targets) -> list:
    """``artifacts`` with ``latency.slower_than_fp32`` on every variant slower than its target's fp32 artifact.
    ``targets``: name -> the ``Target`` (which times again and says why). Without an fp32 artifact (a build job
    that writes one variant) there is nothing to compare with."""
    fp32 = {a.target: a for a in artifacts if a.variant == "fp32" and _median(a) is not None}
    noted = []
    for artifact in artifacts:
        base = fp32.get(artifact.target)
        ms = _median(artifact)
        if base is None or artifact is base or ms is None or not slower(ms, _median(base)):
            noted.append(artifact)
            continue
        target = targets(artifact.target)
        note = {"fp32_ms": _median(base), "ratio": round(ms / _median(base), 2), "rule": RULE}
        if not target.latency_is_estimate:
            note["retimed"] = _retimed(target, artifact, base, staging)
            if not confirmed(note["retimed"]["ms"], note["retimed"]["fp32_ms"]):  # it was the load: say what was seen
                noted.append(replace(artifact, latency={**artifact.latency, "retimed_against_fp32": note}))
                continue
        note["why"] = target.slower_reason(artifact, staging / artifact.path, base, staging / base.path)
        noted.append(replace(artifact, latency={**artifact.latency, "slower_than_fp32": note}))
    return noted


def _retimed(target, artifact, base, staging: Path) -> dict:
    """Medians of both files, the record's first, then ``RETIMES`` more rounds, fp32 and variant in turn."""
    times = {"fp32_ms": [_median(base)], "ms": [_median(artifact)]}
    for _ in range(RETIMES):
        for key, which in (("fp32_ms", base), ("ms", artifact)):
            again = _median_of(target.latency(which, staging / which.path))
            if again is not None:
                times[key].append(again)
    return times


def _median(artifact) -> float | None:
    return _median_of(artifact.latency)


def _median_of(latency: dict | None) -> float | None:
    value = (latency or {}).get("median_ms")
    return float(value) if value is not None else None
