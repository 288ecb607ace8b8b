"""Comparing outputs, and the ParityReport: truthy only when every output passed, round-trips JSON.

Per output, every metric is computed per sample and aggregated to the worst case (largest error,
lowest cosine and SNR); top-k agreement is pooled over all rows of all samples. A NaN or Inf
that the artifact produces and the source does not fails the output whatever the thresholds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deploykit.parity import metrics as M
from deploykit.parity.conditioning import CHAOTIC, CONDITIONING_BOUND, MULTIPLE, judge
from deploykit.parity.profiles import Profile

SCHEMA = "deploykit.parity/1"
PER_SAMPLE = {
    "max_abs_error": (M.max_abs_error, max),
    "max_rel_error": (M.max_rel_error, max),
    "mean_abs_error": (M.mean_abs_error, lambda v: float(np.mean(v))),
    "cosine_similarity": (M.cosine_similarity, min),
    "snr_db": (M.snr_db, min),
}


@dataclass(frozen=True)
class Check:
    metric: str
    value: float
    limit: float
    bound: str  # "max" | "min"
    passed: bool
    reason: str
    # The limit in effect where the check was decided: the profile's, or MULTIPLE x the source's own noise on
    # that sample when looser (``parity.conditioning``); ``noise`` is that sample's noise in this metric.
    effective_limit: float | None = None
    noise: float | None = None
    inconclusive: bool = False  # every sample's own noise is beyond CHAOTIC: no evidence either way


@dataclass(frozen=True)
class OutputResult:
    name: str
    artifact_name: str | None
    shape: tuple[int, ...]
    metrics: dict[str, float]
    checks: tuple[Check, ...]
    nonfinite: dict[str, int]
    worst_sample: int = 0
    problem: str | None = None  # set when the output could not be compared or failed outright
    layout: str | None = None
    value_range: tuple[float, float] | None = None  # known from the source graph: errors scale by the range

    ill_conditioned: tuple[int, ...] = ()  # samples whose own noise exceeds the profile's bound (parity.conditioning)
    per_sample: tuple[dict, ...] = ()  # a detector's box-level comparison, image by image (parity.detections)

    @property
    def passed(self) -> bool:
        return self.problem is None and all(c.passed for c in self.checks)

    @property
    def status(self) -> str:
        """passed; failed; or inconclusive: every check that did not pass had no sample where the comparison
        means something (the source's own noise beyond CHAOTIC on all of them)."""
        if self.passed:
            return "passed"
        if self.problem is None and all(c.inconclusive for c in self.failed_checks):
            return "inconclusive"
        return "failed"

    @property
    def failed_checks(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if not c.passed)


@dataclass(frozen=True)
class Localization:
    """Where source and artifact first diverge. ``status``: found, not-found or unavailable."""

    status: str
    message: str
    culprit: dict[str, Any] | None = None
    last_agreeing: dict[str, Any] | None = None
    compared: int = 0
    sample: int = 0
    tolerance: float | None = None  # an intermediate tensor agrees within this share of its peak
    # Every source tensor with an artifact counterpart, in execution order: {"index", "source", "max_rel_error",
    # "fused"} (the report's per-layer divergence plot); ``culprit_index`` is the culprit's "index".
    layers: tuple[dict[str, Any], ...] = ()
    culprit_index: int | None = None


@dataclass(frozen=True)
class ParityReport:
    source: str
    framework: str
    artifact: str
    target: str
    profile: str
    profile_origin: str
    runners: dict[str, str]
    notes: tuple[str, ...]
    inputs: dict[str, Any]
    outputs: tuple[OutputResult, ...]
    localization: Localization | None = None
    seconds: float = 0.0
    problem: str | None = None  # a failure of the whole pair (e.g. inputs that cannot be matched)
    schema: str = field(default=SCHEMA)

    @property
    def passed(self) -> bool:
        return self.problem is None and bool(self.outputs) and all(o.passed for o in self.outputs)

    @property
    def status(self) -> str:
        """passed, failed, or inconclusive (no output failed; some could not be judged on these inputs)."""
        if self.passed:
            return "passed"
        if self.problem is None and self.outputs and all(o.status != "failed" for o in self.outputs):
            return "inconclusive"
        return "failed"

    def __bool__(self) -> bool:
        return self.passed

    @property
    def failures(self) -> tuple[OutputResult, ...]:
        return tuple(o for o in self.outputs if not o.passed)

    def to_json(self) -> dict[str, Any]:
        return _encode({
            "schema": self.schema, "passed": self.passed, "status": self.status, "source": self.source, "framework": self.framework,
            "artifact": self.artifact, "target": self.target, "profile": self.profile,
            "profile_origin": self.profile_origin, "runners": self.runners, "notes": list(self.notes),
            "inputs": self.inputs, "problem": self.problem, "seconds": self.seconds,
            "outputs": [_output_json(o) for o in self.outputs],
            "localization": None if self.localization is None else vars(self.localization),
        })

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ParityReport":
        loc = data.get("localization")
        if loc is not None and loc.get("culprit"):
            loc = {**loc, "culprit": {**loc["culprit"], "metrics": _numbers(loc["culprit"].get("metrics", {}))}}
        return cls(
            source=data["source"], framework=data["framework"], artifact=data["artifact"], target=data["target"],
            profile=data["profile"], profile_origin=data["profile_origin"], runners=data["runners"],
            notes=tuple(data["notes"]), inputs=data["inputs"],
            outputs=tuple(_output_from_json(o) for o in data["outputs"]),
            localization=None if loc is None else Localization(**{**loc, "layers": tuple(loc.get("layers", ()))}),
            seconds=data["seconds"], problem=data.get("problem"), schema=data.get("schema", SCHEMA),
        )

    def to_summary(self) -> dict[str, Any]:
        """The small record stored in ``Artifact.parity``: verdict, profile and each output's key metrics."""
        keys = ("max_rel_error", "cosine_similarity", "snr_db", "top1_agreement", "matched", "missing", "extra",
                "excused", "min_iou", "worst_score_error", "worst_coordinate_error_px")
        summary = {
            "passed": self.passed, "profile": self.profile, "samples": self.inputs.get("samples"),
            **({"status": self.status} if self.status != ("passed" if self.passed else "failed") else {}),
            "inputs": self.inputs.get("kind"),
            "artifact_runner": self.runners.get("artifact"),
            "outputs": {o.name: {"passed": o.passed, **{k: o.metrics[k] for k in keys if k in o.metrics},
                                 **_conditioning_summary(o),
                                 **({"value_range": list(o.value_range)} if o.value_range else {}),
                                 **({"problem": o.problem} if o.problem else {})} for o in self.outputs},
        }
        for key in ("distribution", "domains", "conditioning"):  # what the inputs were and why (parity.reference)
            if self.inputs.get(key):
                summary[f"input_{key}"] = self.inputs[key]
        if self.problem:
            summary["problem"] = self.problem
        if self.localization is not None and self.localization.culprit:
            summary["diverges_at"] = self.localization.culprit.get("source")
        if self.localization is not None and self.localization.layers:
            loc = self.localization
            summary["localization"] = {"status": loc.status, "tolerance": loc.tolerance, "culprit_index": loc.culprit_index,
                                       "layers": [{**layer, "max_rel_error": float(f"{layer['max_rel_error']:.4g}")}
                                                  for layer in loc.layers]}
        return _encode(summary)


def compare_output(name: str, refs: list[np.ndarray], outs: list[np.ndarray], profile: Profile,
                   overrides: dict | None = None, artifact_name: str | None = None, layout: str | None = None,
                   value_range: tuple[float, float] | None = None,
                   noise: list[list[np.ndarray]] | None = None) -> OutputResult:
    """Metrics and verdict of one output over all samples (arrays already in the source's layout).

    ``value_range``: the range the source bounds this output to (``parity.ranges``). Its magnitude is
    then the least scale of max_rel_error and the peak of snr_db (a PSNR), so that a probability near
    zero is judged as a probability, not against its own tiny peak.

    ``noise``: per sample, the source's own outputs under a tiny input perturbation (and in float64), in
    the reference's form (``parity.conditioning``). Each sample's limits then widen to MULTIPLE x the
    source's own noise where that is looser than the profile's.
    """
    shape = tuple(int(d) for d in refs[0].shape)
    nonfinite = {
        "source_nan": sum(M.nan_count(r) for r in refs), "source_inf": sum(M.inf_count(r) for r in refs),
        "artifact_nan": sum(M.nan_count(o) for o in outs), "artifact_inf": sum(M.inf_count(o) for o in outs),
    }
    if any(o.shape != r.shape for r, o in zip(refs, outs)):
        return OutputResult(name, artifact_name, shape, {}, (), nonfinite,
                            problem=f"the artifact returns shape {outs[0].shape}, the source {refs[0].shape}", layout=layout)
    per_sample = _per_sample(refs, outs, value_range)
    noisy = _noise_per_sample(refs, noise, value_range)
    values = {m: float(PER_SAMPLE[m][1](v)) for m, v in per_sample.items()}
    values["output_scale"] = max(M.output_scale(r) for r in refs)
    limit_rel = next((t.limit for t in profile.thresholds if t.metric == "max_rel_error"), CONDITIONING_BOUND)
    ill = ()
    if noisy is not None:
        values["source_noise"] = max(noisy["max_rel_error"])
        ill = tuple(i for i, n in enumerate(noisy["max_rel_error"]) if n > limit_rel)
    classifier = M.is_classifier_like(shape)
    if classifier:
        ref_rows, out_rows = np.concatenate(refs), np.concatenate(outs)
        tie = profile.tie_rel * values["output_scale"]
        if noisy is not None:  # classes closer than the source's own noise are a tie too
            tie = max(tie, MULTIPLE * max(noisy["max_abs_error"]))
        values["top1_agreement"] = M.topk_agreement(ref_rows, out_rows, 1, tie)
        values["top5_agreement"] = M.topk_agreement(ref_rows, out_rows, 5, tie)
    checks = tuple(_check(t, values, per_sample, noisy) for t in profile.thresholds_for(name, classifier, overrides)
                   if t.metric in values)
    problem = None
    new_nan = nonfinite["artifact_nan"] - nonfinite["source_nan"]
    new_inf = nonfinite["artifact_inf"] - nonfinite["source_inf"]
    if new_nan > 0 or new_inf > 0:
        problem = f"the artifact produced {max(new_nan, 0)} NaN and {max(new_inf, 0)} Inf value(s) the source does not"
    # The sample to localize on (and to estimate with, quantize.fp16_mixed): the one that fails max_rel_error
    # worst when that check fails, else the lowest SNR.
    failed_rel = any(c.metric == "max_rel_error" and not c.passed for c in checks)
    worst = (int(np.argmax(per_sample["max_rel_error"])) if failed_rel else int(np.argmin(per_sample["snr_db"]))) if refs else 0
    return OutputResult(name, artifact_name, shape, values, checks, nonfinite, worst, problem, layout,
                        None if value_range is None else tuple(value_range), ill)


def _per_sample(refs, outs, value_range) -> dict[str, list[float]]:
    per_sample = {m: [fn(r, o) for r, o in zip(refs, outs)] for m, (fn, _) in PER_SAMPLE.items()}
    if value_range is not None:
        magnitude = max(abs(value_range[0]), abs(value_range[1]))
        per_sample["max_rel_error"] = [M.max_rel_error(r, o, magnitude) for r, o in zip(refs, outs)]
        per_sample["snr_db"] = [M.snr_db(r, o, max(magnitude, M.output_scale(r))) for r, o in zip(refs, outs)]
    return per_sample


def _noise_per_sample(refs, noise, value_range) -> dict[str, list[float]] | None:
    """Each metric of the source's own noise per sample: its worst over the noise runs of that sample."""
    if not noise or any(not runs for runs in noise) or any(r.shape != runs[0].shape for r, runs in zip(refs, noise)):
        return None
    per_run = [_per_sample([r] * len(runs), runs, value_range) for r, runs in zip(refs, noise)]
    worst = {}
    for metric, (_, aggregate) in PER_SAMPLE.items():
        pick = min if aggregate is min else max
        worst[metric] = [float(pick(run[metric])) for run in per_run]
    return worst


def _check(threshold, values, per_sample, noisy) -> Check:
    value = values[threshold.metric]
    if PER_SAMPLE.get(threshold.metric, (None, None))[1] not in (max, min):
        # pooled metrics (top-k: the tie margin carries the noise) and averaged ones (mean_abs_error): no sample
        # decides alone, so the check is inconclusive only when every sample is chaotic
        chaotic = noisy is not None and not threshold.exact and all(n > CHAOTIC for n in noisy["max_rel_error"])
        return Check(threshold.metric, value, threshold.limit, threshold.bound, threshold.passes(value) and not chaotic,
                     threshold.reason, inconclusive=chaotic)
    noise = None if noisy is None or threshold.exact else noisy[threshold.metric]
    verdict = judge(threshold.metric, threshold.bound, threshold.limit, per_sample[threshold.metric], noise,
                    None if noise is None else noisy["max_rel_error"])
    widened = verdict.effective_limit != threshold.limit
    return Check(threshold.metric, value, threshold.limit, threshold.bound, verdict.passed, threshold.reason,
                 verdict.effective_limit if widened else None, verdict.noise, verdict.inconclusive)


def _conditioning_summary(o: OutputResult) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    if "source_noise" in o.metrics:
        entry["source_noise"] = o.metrics["source_noise"]
    widened = next((c for c in o.checks if c.metric == "max_rel_error" and c.effective_limit is not None), None)
    if widened is not None:
        entry["effective_max_rel_error"] = widened.effective_limit
    if o.ill_conditioned:
        entry["ill_conditioned_samples"] = list(o.ill_conditioned)
    if o.status == "inconclusive":
        entry["status"] = "inconclusive"
    return entry


def _output_json(o: OutputResult) -> dict[str, Any]:
    return {"name": o.name, "artifact_name": o.artifact_name, "shape": list(o.shape), "passed": o.passed,
            "status": o.status, "metrics": o.metrics, "checks": [vars(c) for c in o.checks], "nonfinite": o.nonfinite,
            **({"ill_conditioned": list(o.ill_conditioned)} if o.ill_conditioned else {}),
            "worst_sample": o.worst_sample, "problem": o.problem, "layout": o.layout,
            **({"value_range": list(o.value_range)} if o.value_range is not None else {}),
            **({"per_sample": list(o.per_sample)} if o.per_sample else {})}


def _output_from_json(data: dict[str, Any]) -> OutputResult:
    return OutputResult(
        name=data["name"], artifact_name=data["artifact_name"], shape=tuple(data["shape"]), metrics=_numbers(data["metrics"]),
        checks=tuple(Check(**{**c, "value": _number(c["value"]), "limit": _number(c["limit"]),
                              "effective_limit": _number(c.get("effective_limit")), "noise": _number(c.get("noise"))})
                     for c in data["checks"]),
        nonfinite=data["nonfinite"], ill_conditioned=tuple(data.get("ill_conditioned", ())),
        worst_sample=data["worst_sample"], problem=data["problem"], layout=data["layout"],
        value_range=tuple(data["value_range"]) if data.get("value_range") else None,
        per_sample=tuple(data.get("per_sample", ())),
    )


def _encode(value):
    """JSON-safe: tuples to lists, non-finite floats to the strings "inf", "-inf", "nan" (strict JSON has none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, np.generic):
        return _encode(value.item())
    return value


_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def _number(value):
    return _NONFINITE[value] if isinstance(value, str) and value in _NONFINITE else value


def _numbers(values: dict) -> dict:
    return {k: _number(v) for k, v in values.items()}
