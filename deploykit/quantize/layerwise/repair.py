"""A plain variant that fails its parity check, made again with the fewest layers kept in float.

The layers are ranked by ``localize`` (the output noise each causes alone, read back from the failed variant
itself), then kept in float in that order: 1, 2, 4, ... layers until the check passes, then a bisection between
the last failing and the first passing count for the fewest. At most ``MAX_SHARE`` of the layers are kept: past
that the variant is not that scheme any more, and the failure is reported as it was. Every try is an attempt
in the record; the choice is ``quantization.repair``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from deploykit.core.errors import ConversionError
from deploykit.core.types import Attempt
from deploykit.quantize.fp16_rescue import remove_artifact, seconds_since
from deploykit.quantize.layerwise.localize import localize_variant

MAX_SHARE = 0.5


def repair(target: str, scheme: str, reference: Path, candidate: Path, workspace, converter: str,
           remake: Callable[[tuple[str, ...], Path], dict]) -> tuple[dict | None, tuple[Attempt, ...]]:
    """(the kept remake's record plus ``repair``, or None when the candidate passes or cannot be repaired; the
    attempts). ``remake(layers, path)`` writes the variant with ``layers`` (names as ``localize`` gives them) in float."""
    check = getattr(workspace, "check", None)
    if check is None or workspace.samples is None:
        return None, ()
    started = time.perf_counter()
    report = check(candidate, target, scheme)
    attempts = [Attempt(scheme, converter, seconds_since(started), "kept" if report else "parity-failed", parity=report.to_summary())]
    if report:
        return None, ()
    progress = workspace.progress
    with progress.step(f"Finding the layers that break {scheme}"):
        feeds, _ = workspace.samples(reference, target, prefer=sorted({o.worst_sample for o in report.outputs if not o.passed}))
        ranked = [row["layer"] for row in localize_variant(target, reference, candidate, feeds)["layers"]
                  if row.get("noise_alone_db") is not None]
    limit = max(1, int(len(ranked) * MAX_SHARE))
    tries, passing, failing = {}, None, 0

    def attempt(count: int) -> bool:
        out = candidate.with_name(f"{candidate.stem}.keep{count}{candidate.suffix}")
        started = time.perf_counter()
        try:
            record = remake(tuple(ranked[:count]), out)
        except ConversionError as exc:  # e.g. nothing left to quantize once these layers are float
            attempts.append(Attempt(f"{scheme} + {count} layer(s) in float", converter, seconds_since(started), "failed",
                                    error=exc.message))
            tries[count] = (out, None, False)
            return False
        verdict = check(out, target, scheme)
        attempts.append(Attempt(f"{scheme} + {count} layer(s) in float", converter, seconds_since(started),
                                "kept" if verdict else "parity-failed", parity=verdict.to_summary()))
        tries[count] = (out, record, bool(verdict))
        return bool(verdict)

    with progress.step(f"Keeping the fewest of {len(ranked)} ranked layers in float"):
        count = 1
        while count <= limit:
            if attempt(count):
                passing = count
                break
            failing, count = count, count * 2
        if passing is None and failing < limit and attempt(limit):
            passing = limit
        while passing is not None and passing - failing > 1:
            middle = (passing + failing) // 2
            if attempt(middle):
                passing = middle
            else:
                failing = middle
    for count, (out, _, _) in tries.items():
        if count != passing:
            remove_artifact(out)
    if passing is None:
        return None, tuple(attempts)
    out, record, _ = tries[passing]
    remove_artifact(candidate)
    out.rename(candidate)
    summary = {"failed_outputs": [o.name for o in report.outputs if not o.passed],
               "ranked": ranked[:8], "kept_float": ranked[:passing], "layers": len(ranked),
               "tries": {str(k): v[2] for k, v in sorted(tries.items())}, "seconds": seconds_since(started)}
    return {**record, "repair": summary}, tuple(attempts)

