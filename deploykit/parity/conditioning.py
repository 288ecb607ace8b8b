"""How precise the source itself is on the parity inputs, and the tolerance that follows from it.

A converted artifact computes the same function in another order, with other kernels. On an input where
the source's output moves by 1e-4 of its scale when the input moves by 1e-7 (a saturated softmax, logits
in the hundreds), a right conversion differs by as much, and a fixed bound fails it. So, per output and
sample, the source's own noise is measured:

- **perturbation**: the source run again on its input times ``1 + 1e-7 * u`` (``u`` = +1 or -1 per
  element, seeded), ``DRAWS`` times: the change float32 rounding of the input alone causes;
- **float64** (PyTorch sources, where the module runs in double): the float32 output's distance from the
  float64 one, the rounding of the whole float32 computation.

Each is scored with the comparison's own metric against the reference, and the worst counts. The limit
used for a sample is the profile's bound or ``MULTIPLE`` times that noise, whichever is looser (for SNR:
the noise's SNR less 20 dB; for cosine: ``MULTIPLE**2`` times the noise's 1 - cosine).

Decision: ``MULTIPLE`` = 10. An artifact is a second float32 evaluation in another order: its error is of
the order of the noise, not ten times it (bench/results/conditioning.md: 11 right TFLite, Core ML and
ExecuTorch artifacts of the ill-conditioned fixture, LeViT-128S and EfficientNetV2-B0 measured at most 2.96x
their source's noise, 2.21x on ill-conditioned inputs). A real conversion error (a swapped colour order, a
dropped bias, a transposed weight, a wrong resize) measured at least 1538x (16 of 16 broken artifacts failed).

A sample whose noise exceeds the profile's bound is **ill-conditioned** for that output; one whose
noise exceeds ``CHAOTIC`` (1e-3 of the scale: the source amplifies its input's rounding ten thousand
fold) cannot tell a right artifact from a wrong one: it carries no evidence either way, the verdict
comes from the other samples, and a check whose samples are all chaotic is **inconclusive**, neither
passed nor failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PERTURBATION = 1e-7
DRAWS = 3
MULTIPLE = 10.0
CHAOTIC = 1e-3
# The bound that decides whether default inputs are ill-conditioned (and another range is looked for): the
# fp32 profile's max_rel_error, the strictest, so every artifact of one model is checked on the same inputs.
CONDITIONING_BOUND = 1e-4
WIDENED = ("max_rel_error", "max_abs_error", "mean_abs_error", "cosine_similarity", "snr_db")


@dataclass(frozen=True)
class Judgement:
    """One check over all samples: the verdict, and the limit and noise of its deciding sample."""

    passed: bool
    effective_limit: float
    noise: float | None
    inconclusive: bool  # failed only on samples whose own noise is beyond CHAOTIC


def effective_limit(metric: str, limit: float, noise: float | None) -> float:
    """The limit for one sample: the profile's, or the one ``noise`` (the metric's value of the source's own
    noise on that sample) implies, whichever is looser."""
    if noise is None or metric not in WIDENED or not math.isfinite(noise):
        return limit
    if metric == "snr_db":
        return min(limit, noise - 20.0 * math.log10(MULTIPLE))
    if metric == "cosine_similarity":
        return 1.0 - max(1.0 - limit, MULTIPLE ** 2 * (1.0 - noise))
    return max(limit, MULTIPLE * noise)


def judge(metric: str, bound: str, limit: float, values: list[float], noise: list[float] | None,
          noise_rel: list[float] | None) -> Judgement:
    """The verdict of a per-sample metric with per-sample limits (``noise``: the metric on the source's own
    noise per sample; ``noise_rel``: its max_rel_error per sample, which says which samples are chaotic).

    A chaotic sample carries no evidence either way (its limit would be wide enough to pass anything), so the
    verdict comes from the other samples: failed if any fails, passed if all pass, and inconclusive when
    every sample is chaotic."""
    limits = [effective_limit(metric, limit, None if noise is None else noise[i]) for i in range(len(values))]
    evidence = [i for i in range(len(values)) if noise_rel is None or not noise_rel[i] > CHAOTIC]
    if values and not evidence:
        worst = max(range(len(values)), key=lambda i: noise_rel[i])
        return Judgement(False, limits[worst], None if noise is None else noise[worst], True)
    fails = [i for i in evidence if not _within(values[i], limits[i], bound)]
    decisive = max(evidence, key=lambda i: _excess(values[i], limits[i], bound)) if evidence else 0
    return Judgement(not fails, limits[decisive] if values else limit,
                     None if noise is None or not values else noise[decisive], False)


def _within(value: float, limit: float, bound: str) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return False
    return value <= limit if bound == "max" else value >= limit


def _excess(value: float, limit: float, bound: str) -> float:
    """How far past its limit a value is (positive: failing), comparable across samples."""
    if isinstance(value, float) and math.isnan(value):
        return math.inf
    if bound == "max":
        return value / limit if limit > 0 else value
    if math.isinf(value) and value > 0:
        return -math.inf
    return limit - value  # dB for SNR; 1 - cosine difference for cosine


def perturbed(feeds: dict[str, np.ndarray], rng) -> dict[str, np.ndarray]:
    """``feeds`` with every float element scaled by 1 +/- PERTURBATION (integer inputs, ids and masks, as they are)."""
    moved = {}
    for name, value in feeds.items():
        array = np.asarray(value)
        if array.dtype.kind == "f":
            signs = rng.integers(0, 2, array.shape) * 2 - 1
            array = (array.astype(np.float64) * (1.0 + PERTURBATION * signs)).astype(array.dtype)
        moved[name] = array
    return moved


def noise_runs(infer, feeds: dict[str, np.ndarray], seed: int, infer_float64=None) -> list[dict[str, np.ndarray]]:
    """The source's outputs on ``DRAWS`` perturbed copies of ``feeds`` (and in float64, when it can run so)."""
    rng = np.random.default_rng(seed)
    runs = [infer(perturbed(feeds, rng)) for _ in range(DRAWS)]
    if infer_float64 is not None:
        try:
            runs.append(infer_float64(feeds))
        except Exception:  # noqa: BLE001  (a module that cannot run in double: the perturbation draws stand)
            pass
    return runs
