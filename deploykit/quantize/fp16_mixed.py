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
   most, until the estimate is at most ``TARGET`` of the profile's max_rel_error bound or the budget
   (``MAX_LAYERS``, or the estimator's ``max_kept``) is spent.
3. The variant is made again with those units in float32 and checked with the real parity check.
   The record lists them, the estimates and the verdict (``quantization.mixed_precision``).

Greedy rather than the individual ranking alone: on PP-OCRv4's detector the single most sensitive
layer kept alone lowers the estimate from 0.026 to 0.018 while the next four by rank lower it by
nothing more (errors of fp16 layers interact). The budget bounds the cost and the size: a model that
needs more than 8 float32 layers, or a quarter of its Core ML program, is not an fp16 model, and the
failure says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

CANDIDATES = 16
MAX_LAYERS = 8
TARGET = 0.6  # of the profile's max_rel_error bound: the estimate runs on fewer samples than the check


class Estimator(Protocol):
    layers: tuple[str, ...]  # the layers that can stay float32, by the name the variant's maker takes

    def error(self, kept: frozenset[str]) -> float:
        """max_rel_error of the emulated fp16 artifact (``kept`` in float32) against the fp32 artifact."""

    def selector_keys(self, kept) -> tuple:
        """What the variant's maker identifies the kept units by."""


@dataclass(frozen=True)
class MixedPrecision:
    kept: tuple[str, ...]
    plain_error: float  # the estimate with every layer in fp16
    estimated_error: float  # with ``kept`` in float32
    bound: float  # the profile's max_rel_error bound
    steps: tuple[tuple[str, float], ...] = field(default=())  # (layer added, estimate after it)
    evaluations: int = 0
    seconds: float = 0.0

    @property
    def reached(self) -> bool:
        return self.estimated_error <= TARGET * self.bound

    def to_json(self) -> dict:
        return {"kept_float32": list(self.kept), "estimated_max_rel_error": {"all_fp16": self.plain_error,
                                                                             "mixed": self.estimated_error},
                "bound": self.bound, "target": TARGET * self.bound,
                "steps": [{"layer": layer, "estimate": value} for layer, value in self.steps],
                "evaluations": self.evaluations, "seconds": round(self.seconds, 1)}


def choose_layers(estimator: Estimator, bound: float, progress=None) -> MixedPrecision:
    """The fewest layers (greedy, at most ``MAX_LAYERS`` or the estimator's ``max_kept``) whose float32
    brings the estimate under target."""
    from deploykit.progress import NullProgress

    progress = progress or NullProgress()
    started = time.perf_counter()
    with progress.step(f"Estimating the fp16 error of {len(estimator.layers)} layer(s)"):
        plain = estimator.error(frozenset())
        singles = sorted((estimator.error(frozenset([layer])), index, layer) for index, layer in enumerate(estimator.layers))
    evaluations = 1 + len(singles)
    candidates = [layer for _, _, layer in singles[:CANDIDATES]]
    kept: list[str] = []
    steps: list[tuple[str, float]] = []
    best = plain
    limit = min(MAX_LAYERS, getattr(estimator, "max_kept", MAX_LAYERS))
    with progress.step("Choosing the layers to keep in float32"):
        while best > TARGET * bound and len(kept) < limit and len(kept) < len(candidates):
            scored = sorted((estimator.error(frozenset(kept + [layer])), index, layer)
                            for index, layer in enumerate(candidates) if layer not in kept)
            evaluations += len(scored)
            value, _, layer = scored[0]
            if value >= best:
                break  # no candidate lowers the error any more
            kept.append(layer)
            steps.append((layer, value))
            best = value
    return MixedPrecision(tuple(kept), plain, best, bound, tuple(steps), evaluations, time.perf_counter() - started)


def max_rel_error(reference: list[dict], actual: list[dict], floors: dict[str, float]) -> float:
    """The worst output's max_rel_error over samples, each scaled by max(its peak, the output's floor)."""
    from deploykit.parity import metrics as M

    worst = 0.0
    for ref, out in zip(reference, actual):
        for name, value in ref.items():
            worst = max(worst, M.max_rel_error(value, out[name], floors.get(name, 0.0)))
    return worst
