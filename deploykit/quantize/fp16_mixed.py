"""Mixed fp16: which layers to keep in float32 when the all-fp16 variant fails its parity profile.

Some real models lose more than the fp16 profile allows when every weight is rounded to half
precision (PP-OCRv6's recogniser: 0.0113 of its probabilities' range on TFLite, 0.0152 on Core ML,
bound 0.01; bench/results/corpus.md). coremltools documents the remedy for Core ML (an
``op_selector`` that keeps chosen ops in float32), ai-edge-quantizer has the same per op for TFLite
(``NO_QUANTIZE``). What it does not say is *which* layers. deploykit measures it:

1. An estimator runs the fp32 artifact as it would compute in fp16 (TFLite: conv / fully-connected
   weights rounded to fp16 in a copy of the flatbuffer, as ai-edge-quantizer's float casting does;
   Core ML: every float constant and every op result rounded, as the evaluator emulates an fp16
   program) on a few parity inputs, against the fp32 artifact itself.
2. The units that can stay float32 are TFLite layers and Core ML program segments (runs of ops:
   ``fp16_estimate_coreml`` says why). Each is scored by the error left when it alone stays float32;
   the ``CANDIDATES`` best are then added greedily, each step keeping the unit that lowers the estimate
   most, until the estimate is at most ``TARGET`` of the fp16 profile's limits or the budget
   (``MAX_LAYERS``, or the estimator's ``max_kept``) is spent. The estimate is a *score*: the worst of
   max_rel_error / its limit, (1 - cosine) / (1 - its limit) and the noise amplitude over the one the SNR
   limit allows, over outputs and samples, so 1.0 is at the profile's limit whichever metric binds
   (the corpus's ResNet-50 fails TFLite fp16 on cosine, 0.99969, with max_rel_error at 0.0019).
3. The variant is made again with those units in float32 and checked with the real parity check.
   The record lists them, the estimates and the verdict (``quantization.mixed_precision``).

Greedy rather than the individual ranking alone: on PP-OCRv4's detector the single most sensitive
layer kept alone lowers the estimate from 0.026 to 0.018 while the next four by rank lower it by
nothing more (errors of fp16 layers interact).

4. When that variant fails the check too, ``widen`` searches once more with a larger budget: every unit
   ranked by the error it causes when it *alone* is fp16 (the rest float32), then added in that order,
   each step scored on every parity sample, until the estimate is at most ``WIDER_TARGET`` or the kept
   units hold more than ``WIDER_SHARE`` of the weight bytes. Measured on PP-OCRv4's detector (TFLite,
   64 layers): the greedy search's 8 layers leave 1.9 of the limit; by this ranking 16 layers (20 % of
   the weight bytes) leave 0.99 and 20 layers (33 %) 0.83. Its stem convolution alone, 0.05 % of the
   bytes, causes 2.3 of the limit: sensitivity is not where the weights are.

Decision (the budget): a mixed fp16 variant keeps at most half of its weight bytes in float32, so it
is at most about three quarters of the fp32 size; past that it is not an fp16 model and the failure
is reported. The bound itself (fp16 profile, max_rel_error 1e-2) is not moved. Float32 parts cost
more than bytes on Core ML (they leave the Neural Engine, which computes fp16 only): the record
states the share kept (``float32_weight_share``) so an app team can choose the fp32 variant instead.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

CANDIDATES = 16
MAX_LAYERS = 8
TARGET = 0.6  # of the profile's limits: the estimate runs on fewer samples than the check
SCORED = ("max_rel_error", "cosine_similarity", "snr_db")
WIDER_TARGET = 0.8  # on every parity sample: the estimate is the check's own arithmetic (TFLite exactly)
WIDER_SHARE = 0.5  # of the float weight bytes at most, in float32
NONFINITE = 1e6  # the score of an output with NaN / Inf the fp32 artifact does not have, times 1 + their share


class Estimator(Protocol):
    layers: tuple[str, ...]  # the units that can stay float32, by the name the record shows
    unit_bytes: dict[str, int]  # the float weight bytes each unit holds

    def error(self, kept: frozenset[str]) -> float:
        """The score of the emulated fp16 artifact (``kept`` in float32) against the fp32 artifact."""

    def error_on_all(self, kept: frozenset[str]) -> float:
        """The same on every parity sample, not only the worst few."""

    def selector_keys(self, kept) -> tuple:
        """What the variant's maker identifies the kept units by."""


@dataclass(frozen=True)
class MixedPrecision:
    kept: tuple[str, ...]
    plain_score: float  # the estimate with every unit in fp16
    estimated_score: float  # with ``kept`` in float32
    steps: tuple[tuple[str, float], ...] = field(default=())  # (unit added, score after it)
    evaluations: int = 0
    seconds: float = 0.0
    search: str = "greedy"  # or "widened" (``widen``)
    weight_share: float = 0.0  # of the float weight bytes, kept in float32

    @property
    def target(self) -> float:
        return WIDER_TARGET if self.search == "widened" else TARGET

    @property
    def reached(self) -> bool:
        return self.estimated_score <= self.target

    def to_json(self) -> dict:
        return {"search": self.search, "kept_float32": list(self.kept), "float32_weight_share": round(self.weight_share, 4),
                "estimate": {"all_fp16": self.plain_score, "mixed": self.estimated_score},
                "estimate_is": "the worst metric as a fraction of its fp16 limit (1.0 = at the limit)",
                "target": self.target, "steps": [{"kept": unit, "estimate": value} for unit, value in self.steps],
                "evaluations": self.evaluations, "seconds": round(self.seconds, 1)}


def choose_layers(estimator: Estimator, progress=None) -> MixedPrecision:
    """The fewest units (greedy, at most ``MAX_LAYERS`` or the estimator's ``max_kept``) whose float32
    brings the estimate under ``TARGET``."""
    from deploykit.core.progress import NullProgress

    progress = progress or NullProgress()
    started = time.perf_counter()
    with progress.step(f"Estimating the fp16 error of {len(estimator.layers)} part(s)"):
        plain = estimator.error(frozenset())
        singles = sorted((estimator.error(frozenset([layer])), index, layer) for index, layer in enumerate(estimator.layers))
    evaluations = 1 + len(singles)
    required = list(getattr(estimator, "required", ()))  # units that cannot be fp16 at all (values beyond its range)
    candidates = [layer for _, _, layer in singles if layer not in required][:CANDIDATES]
    kept: list[str] = list(required)
    steps: list[tuple[str, float]] = []
    best = plain
    if required:
        best = estimator.error(frozenset(required))
        evaluations += 1
        steps.append((required[0], best))
    limit = min(MAX_LAYERS, getattr(estimator, "max_kept", MAX_LAYERS)) + len(required)
    with progress.step("Choosing the parts to keep in float32"):
        while best > TARGET and len(kept) < limit and len(kept) < len(candidates) + len(required):
            scored = sorted((estimator.error(frozenset(kept + [layer])), index, layer)
                            for index, layer in enumerate(candidates) if layer not in kept)
            evaluations += len(scored)
            value, _, layer = scored[0]
            if value >= best:
                break  # no candidate lowers the error any more
            kept.append(layer)
            steps.append((layer, value))
            best = value
    return MixedPrecision(tuple(kept), plain, best, tuple(steps), evaluations, time.perf_counter() - started,
                          weight_share=weight_share(estimator, kept))


def widen(estimator: Estimator, first: MixedPrecision, progress=None) -> MixedPrecision:
    """The second search, after ``first`` failed the check: units by the error each causes alone in fp16,
    added to ``first.kept`` in that order and scored on every sample, within ``WIDER_SHARE`` of the bytes."""
    from deploykit.core.progress import NullProgress

    progress = progress or NullProgress()
    started = time.perf_counter()
    everything = frozenset(estimator.layers)
    with progress.step(f"Ranking {len(estimator.layers)} part(s) by the error each causes alone in fp16"):
        alone = sorted(((-estimator.error(everything - {layer}), index, layer)
                        for index, layer in enumerate(estimator.layers) if layer not in first.kept))
    evaluations = len(alone)
    kept, steps = list(first.kept), []
    best = estimator.error_on_all(frozenset(kept))
    evaluations += 1
    with progress.step("Keeping the most sensitive parts in float32"):
        for _, _, layer in alone:
            if best <= WIDER_TARGET or weight_share(estimator, kept + [layer]) > WIDER_SHARE:
                break
            kept.append(layer)
            best = estimator.error_on_all(frozenset(kept))
            evaluations += 1
            steps.append((layer, best))
    return MixedPrecision(tuple(kept), first.plain_score, best, tuple(steps), evaluations,
                          time.perf_counter() - started, "widened", weight_share(estimator, kept))


def weight_share(estimator: Estimator, kept) -> float:
    total = sum(estimator.unit_bytes.values())
    return sum(estimator.unit_bytes.get(unit, 0) for unit in set(kept)) / total if total else 0.0


FOCUS = 4  # samples the search runs on: the worst of all parity samples under the all-fp16 estimate


class SampledEstimate:
    """What both estimators share: the fp32 outputs, the all-fp16 estimate on every parity sample, and
    the search narrowed to the ``FOCUS`` samples that estimate finds worst (the check then runs on all).

    Subclasses set ``layers`` and ``unit_bytes`` and implement ``_outputs(kept, feeds) -> [outputs per feed]``; their
    ``_outputs(None, feeds)`` is the unmodified fp32 artifact."""

    def _start(self, feeds: list[dict], floors: dict[str, float]) -> None:
        self.limits = fp16_limits()
        self.floors = floors
        reference = self._outputs(None, feeds)
        plain = self._outputs(frozenset(), feeds)
        per_sample = [score([r], [p], floors, self.limits) for r, p in zip(reference, plain)]
        worst = sorted(range(len(feeds)), key=lambda i: -per_sample[i])[:FOCUS]
        self.feeds = [feeds[i] for i in sorted(worst)]
        self._reference = [reference[i] for i in sorted(worst)]
        self._all_feeds, self._all_reference = feeds, reference

    def error(self, kept: frozenset[str]) -> float:
        return score(self._reference, self._outputs(kept, self.feeds), self.floors, self.limits)

    def error_on_all(self, kept: frozenset[str]) -> float:
        return score(self._all_reference, self._outputs(kept, self._all_feeds), self.floors, self.limits)


def fp16_limits() -> dict[str, float]:
    """The fp16 profile's limits of the scored metrics."""
    from deploykit.parity.profiles import get_profile

    return {t.metric: t.limit for t in get_profile("fp16").thresholds if t.metric in SCORED}


def score(reference: list[dict], actual: list[dict], floors: dict[str, float], limits: dict[str, float]) -> float:
    """The worst, over outputs and samples, of each scored metric as a fraction of its limit.

    Outputs with a floor (a range the source bounds them to) are scaled as parity.compare scales them.
    NaN or Inf that the fp32 artifact does not produce scores above any finite error, by their share of
    the output (so that keeping the part that overflows in fp16 ranks first)."""
    import numpy as np

    from deploykit.parity import metrics as M

    worst = 0.0
    for ref, out in zip(reference, actual):
        for name, value in ref.items():
            floor = floors.get(name, 0.0)
            broken = ~np.isfinite(out[name]) & np.isfinite(value)
            if broken.any():
                worst = max(worst, NONFINITE * (1.0 + float(broken.mean())))
                continue
            if "max_rel_error" in limits:
                worst = max(worst, M.max_rel_error(value, out[name], floor) / limits["max_rel_error"])
            if "cosine_similarity" in limits:
                worst = max(worst, (1.0 - M.cosine_similarity(value, out[name])) / (1.0 - limits["cosine_similarity"]))
            if "snr_db" in limits:
                snr = M.snr_db(value, out[name], max(floor, M.output_scale(value)) if floor else None)
                worst = max(worst, 10.0 ** ((limits["snr_db"] - snr) / 20.0))
    return worst
