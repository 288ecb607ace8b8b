"""When an fp16 variant fails its parity profile: make it again with the layers ``fp16_mixed`` chooses
kept in float32, and keep that one if it passes.

The plain fp16 candidate and the mixed one are both attempts in the artifact's record (``attempts``),
with their parity; the mixed choice (layers, estimates, cost) is ``quantization.mixed_precision``.
Without parity checking (``--no-verify``) nothing is estimated: there is no failure to react to.
When the mixed candidates fail too, or no layer lowers the estimate, the plain candidate stays and
the pipeline reports its parity failure as usual (exit 1), the record saying what was tried.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from deploykit.core.types import Attempt


@dataclass(frozen=True)
class Rescued:
    path: Path
    kept: tuple[str, ...]  # empty when the plain candidate stays
    mixed: dict | None  # the last search's MixedPrecision.to_json() plus the verdict, or None when nothing was tried
    attempts: tuple[Attempt, ...]
    made_as: Path | None = None  # the path ``remake`` wrote the kept artifact to, before it took the candidate's place


def rescue_fp16(target: str, candidate: Path, fp32_artifact: Path, remake: Callable[[tuple, Path], object],
                workspace, converter: str, *, estimator, report=None) -> Rescued:
    """``candidate`` is the all-fp16 artifact; ``remake(keys, path)`` writes one with the layers ``keys``
    identify (the estimator's ``selector_keys``) in float32 and returns its fp16 ParityReport when making it
    checked it already (the Core ML ladder does), else None.

    ``report`` is the candidate's fp16 ParityReport when the caller has it already. Two searches at most:
    ``choose_layers`` (a few units), then, when its variant fails the check, ``widen`` (up to half the
    weight bytes); a widened choice whose estimate is over the limit on every sample is not made.

    ``estimator`` is the estimate's class, ``estimator(fp32_artifact, feeds, floors)``: the target's own
    (``fp16_estimate_tflite``, ``fp16_estimate_coreml``), or ``CoreMLWeightsEstimate``, which searches the
    Core ML program with fp16 weights and float32 compute (``coreml_fp16_weights``), whose all-fp16 form is
    itself a new candidate, so it is made even when no weight needs keeping."""
    from deploykit.quantize.fp16_mixed import choose_layers, widen

    check = getattr(workspace, "check", None)
    if check is None or workspace.samples is None:
        return Rescued(candidate, (), None, ())
    started = time.perf_counter()
    report = report if report is not None else check(candidate, target, "fp16")
    tried = [Attempt("fp16", converter, seconds_since(started), "kept" if report else "parity-failed", parity=report.to_summary())]
    if report:
        return Rescued(candidate, (), None, ())
    started = time.perf_counter()
    worst = sorted({o.worst_sample for o in report.outputs if not o.passed})
    feeds, floors = workspace.samples(fp32_artifact, target, prefer=worst)
    estimator = estimator(fp32_artifact, feeds, floors)
    unit = getattr(estimator, "unit", "layer")
    label = getattr(estimator, "label", "fp16")
    new_plain = getattr(estimator, "plain_is_new", False)
    choice, searches = choose_layers(estimator, workspace.progress), []
    while True:
        mixed = {**choice.to_json(), "layers": len(estimator.layers), "searches": searches}
        if (not choice.kept and not (new_plain and choice.reached)) or (
                choice.search == "widened" and choice.estimated_score > 1.0):
            mixed["verdict"] = ("no layer kept in float32 lowers the estimated error" if not choice.kept else
                                f"over the fp16 limit with half the weight bytes in float32 ({choice.estimated_score:.2f})")
            return Rescued(candidate, (), mixed, tuple(tried))
        attempt_path = candidate.with_name(f"{candidate.stem}.{choice.search}{candidate.suffix}")
        second = remake(estimator.selector_keys(choice.kept), attempt_path)
        if second is None:
            second = check(attempt_path, target, "fp16")
        mixed["verdict"] = "passed" if second else "parity failed"
        name = f"{label} + {len(choice.kept)} float32 {unit}(s)" if choice.kept else label
        tried.append(Attempt(name, converter, seconds_since(started),
                             "kept" if second else "parity-failed", parity=second.to_summary()))
        if second:
            remove_artifact(candidate)
            attempt_path.rename(candidate)
            return Rescued(candidate, choice.kept, mixed, tuple(tried), attempt_path)
        remove_artifact(attempt_path)
        if choice.search == "widened":
            return Rescued(candidate, (), mixed, tuple(tried))
        searches = [{key: mixed[key] for key in ("search", "kept_float32", "float32_weight_share", "estimate", "verdict")}]
        started = time.perf_counter()
        choice = widen(estimator, choice, workspace.progress)


def remove_artifact(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def seconds_since(started: float) -> float:
    return round(time.perf_counter() - started, 3)
