"""Parity metrics: small pure functions of a reference array and an artifact array.

Every function takes ``(reference, actual)`` of the same shape (any float or integer dtype) and
returns a plain Python float. They compute in float64 so that the metric itself adds no error.
Conventions for degenerate cases are chosen so that identical arrays always score perfectly:
``cosine_similarity`` of two all-zero arrays is 1.0, ``snr_db`` of identical arrays is +inf.
"""

from __future__ import annotations

import math

import numpy as np

# Below this peak magnitude an output is treated as all-zero when scaling errors (a ReLU output
# that is zero everywhere must not turn a 1e-30 difference into an "infinite" relative error).
SCALE_FLOOR = 1e-12


def _pair(reference, actual) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(reference, dtype=np.float64)
    act = np.asarray(actual, dtype=np.float64)
    if ref.shape != act.shape:
        raise ValueError(f"shapes differ: reference {ref.shape}, actual {act.shape}")
    return ref, act


def _finite_diff(ref: np.ndarray, act: np.ndarray) -> np.ndarray:
    # NaN/Inf are reported by nonfinite_count; errors are measured where both sides are finite,
    # except that a value finite on one side and not on the other is an infinite error.
    both = np.isfinite(ref) & np.isfinite(act)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf: handled just below
        diff = np.where(both, np.abs(ref - act), np.inf)
    same_nonfinite = ~both & ((ref == act) | (np.isnan(ref) & np.isnan(act)))
    return np.where(same_nonfinite, 0.0, diff)


def max_abs_error(reference, actual) -> float:
    """max |reference - actual|."""
    ref, act = _pair(reference, actual)
    return float(_finite_diff(ref, act).max()) if ref.size else 0.0


def mean_abs_error(reference, actual) -> float:
    """mean |reference - actual|."""
    ref, act = _pair(reference, actual)
    return float(_finite_diff(ref, act).mean()) if ref.size else 0.0


def output_scale(reference) -> float:
    """The scale errors are measured against: the reference's peak magnitude max |reference|."""
    ref = np.asarray(reference, dtype=np.float64)
    finite = ref[np.isfinite(ref)]
    return float(np.abs(finite).max()) if finite.size else 0.0


def max_rel_error(reference, actual, scale_floor: float = 0.0) -> float:
    """max |reference - actual| / max |reference|: the worst error as a fraction of the output's scale.

    Unlike an element-wise relative error it does not blow up on values near zero (a logit of
    1e-6 off by 1e-6 is not a 100 % error of the model). An all-zero reference gives the
    absolute error (the scale is taken as 1). ``scale_floor``: the least scale, for outputs whose
    range is known (a probability's is 1, ``parity.ranges``).
    """
    scale = max(output_scale(reference), scale_floor)
    return max_abs_error(reference, actual) / (scale if scale > SCALE_FLOOR else 1.0)


def cosine_similarity(reference, actual) -> float:
    """cos of the angle between the flattened arrays; 1.0 when both are all-zero, 0.0 when one is."""
    ref, act = _pair(reference, actual)
    ref, act = np.nan_to_num(ref.ravel()), np.nan_to_num(act.ravel())
    norm = float(np.linalg.norm(ref) * np.linalg.norm(act))
    if norm == 0.0:
        return 1.0 if not ref.any() and not act.any() else 0.0
    return float(np.clip(np.dot(ref, act) / norm, -1.0, 1.0))


def snr_db(reference, actual, peak: float | None = None) -> float:
    """Signal-to-noise ratio 10·log10(Σ reference² / Σ (reference - actual)²) in dB; +inf when identical.

    With ``peak`` (an output of known range) it is the peak SNR used for images: the signal is
    ``size · peak²``, so a near-zero probability map is not scored as if its noise were the signal's.
    """
    ref, act = _pair(reference, actual)
    noise = float(np.square(_finite_diff(ref, act)).sum())
    signal = float(ref.size * peak ** 2) if peak is not None else float(np.square(np.nan_to_num(ref)).sum())
    if noise == 0.0:
        return math.inf
    if signal == 0.0 or math.isinf(noise):
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def topk_agreement(reference, actual, k: int = 1, tie: float = 0.0) -> float:
    """Mean over rows (all axes but the last) of the fraction of the artifact's top-k classes that are
    in the reference's top-k, where a class whose reference score is within ``tie`` of the reference's
    k-th best also counts (a near-tie the artifact's precision cannot resolve is not a disagreement).

    With ``tie=0`` this is |top-k(reference) ∩ top-k(actual)| / k, exact ties excepted; for k = 1 the
    fraction of rows whose argmax agrees. ``k`` is capped at the number of classes.
    """
    ref, act = _pair(reference, actual)
    if ref.ndim == 0 or ref.shape[-1] == 0:
        return 1.0
    k = min(k, ref.shape[-1])
    ref = np.nan_to_num(ref.reshape(-1, ref.shape[-1]), nan=-np.inf)
    act = np.nan_to_num(act.reshape(-1, act.shape[-1]), nan=-np.inf)
    # The artifact's top-k (stable sort: equal scores keep class order) against the reference's k-th best.
    top_act = np.argsort(-act, axis=-1, kind="stable")[:, :k]
    kth_best = -np.sort(-ref, axis=-1)[:, k - 1:k]
    agreeing = np.take_along_axis(ref, top_act, axis=-1) >= kth_best - tie
    return float(agreeing.mean())


def nan_count(values) -> int:
    """Number of NaN elements."""
    arr = np.asarray(values)
    return int(np.isnan(arr).sum()) if np.issubdtype(arr.dtype, np.floating) else 0


def inf_count(values) -> int:
    """Number of +/-Inf elements."""
    arr = np.asarray(values)
    return int(np.isinf(arr).sum()) if np.issubdtype(arr.dtype, np.floating) else 0


def is_classifier_like(shape: tuple) -> bool:
    """Rank-2 (batch, classes) outputs with at least two classes: where top-k agreement is meaningful."""
    return len(shape) == 2 and shape[-1] >= 2
