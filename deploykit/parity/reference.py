"""The source's side of a parity check: its outputs on the inputs, its own noise there, and, when seeded
inputs turn out ill-conditioned, other seeded inputs that are not.

A conversion checks several candidates and artifacts against one source on the same inputs; the source's
outputs and noise are computed once per (source, inputs) and kept (``_CACHE``, a few entries).

Default inputs are ill-conditioned when, on some sample, the source's own noise exceeds
``conditioning.CONDITIONING_BOUND`` for some output. Then narrower seeded draws inside the same domain
are tried, in the order of ``ALTERNATIVES`` (the upper half, the lower half: the other sign of a symmetric
range; the middle quarter; the middle twentieth: a smaller magnitude), and the first whose samples are all
well-conditioned is used. When none is, the draw with the fewest ill-conditioned samples (then the least
noise) is used, and its checks may end inconclusive. The record says which range was used and why.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from deploykit.loaders.output_ranges import bounded_outputs
from deploykit.parity import metrics as M
from deploykit.parity.conditioning import CONDITIONING_BOUND, DRAWS, MULTIPLE, PERTURBATION, noise_runs
from deploykit.parity.inputs import InputSet

# Sub-ranges of the default domain [lo, hi] tried when it is ill-conditioned, as fractions of it.
ALTERNATIVES = ((0.5, 1.0), (0.0, 0.5), (0.375, 0.625), (0.475, 0.525))
_CACHE: OrderedDict = OrderedDict()
_CACHE_SIZE = 6


@dataclass(frozen=True)
class SourceRuns:
    feeds: InputSet
    refs: tuple[dict[str, np.ndarray], ...]
    noise: tuple[tuple[dict[str, np.ndarray], ...], ...]  # per sample, the source's outputs in each noise run
    worst: float  # the largest noise over samples and outputs (max_rel_error, as compare scales it)
    ill: int  # samples whose noise exceeds CONDITIONING_BOUND for some output


def source_runs(src, model, feeds: InputSet, view: Callable, seed: int = 0) -> SourceRuns:
    """The source's outputs and noise runs on ``feeds`` (each sample through ``view`` first), cached."""
    key = (id(model), _digest(feeds))
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key][1]
    infer64 = getattr(src, "infer_float64", None)
    refs, noise = [], []
    for index, sample in enumerate(feeds.samples):
        source_feeds = view(sample)
        refs.append(src.infer(source_feeds))
        noise.append(tuple(noise_runs(src.infer, source_feeds, seed + index, infer64)))
    worst, ill = _conditioning(model, refs, noise)
    runs = SourceRuns(feeds, tuple(refs), tuple(noise), worst, ill)
    _CACHE[key] = (model, runs)  # the model is kept so its id is not reused while the entry lives
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return runs


def conditioned(src, model, feeds: InputSet, view: Callable, redraw: Callable | None, seed: int = 0) -> SourceRuns:
    """``source_runs`` on ``feeds``, or on the first alternative draw that is well-conditioned when ``feeds``
    is not and ``redraw(fractions) -> InputSet`` can make others (seeded inputs only)."""
    runs = source_runs(src, model, feeds, view, seed)
    if not runs.ill or redraw is None:
        return _described(runs, [], None)
    tried = [runs]
    for fractions in ALTERNATIVES:
        candidate = source_runs(src, model, redraw(fractions), view, seed)
        tried.append(candidate)
        if not candidate.ill:
            return _described(candidate, tried, runs)
    best = min(tried, key=lambda r: (r.ill, r.worst))
    return _described(best, tried, runs)


def _described(runs: SourceRuns, tried: list[SourceRuns], default: SourceRuns | None) -> SourceRuns:
    """``runs`` with the record's ``conditioning`` entry in its inputs' origin: how noise was measured, and
    which draws were tried and why this one was used."""
    entry = {"perturbation": PERTURBATION, "draws": DRAWS, "multiple": MULTIPLE, "bound": CONDITIONING_BOUND,
             "float64": any(len(n) > DRAWS for n in runs.noise), "worst_noise": runs.worst,
             "ill_conditioned_samples": runs.ill}
    if tried:
        entry["tried"] = [{"distribution": r.feeds.origin.get("distribution"), "worst_noise": r.worst,
                           "ill_conditioned_samples": r.ill} for r in tried]
        if runs is not default:
            entry["why"] = (f"the default inputs were ill-conditioned for this model: on {default.ill} of "
                            f"{len(default.feeds)} samples the source itself moves by up to {default.worst:.2g} of "
                            f"an output's scale when its input moves by {PERTURBATION:g} (relative); "
                            + ("these are not" if not runs.ill else f"these have the fewest such samples ({runs.ill})"))
        else:
            entry["why"] = (f"no seeded draw tried was well-conditioned; the default's {runs.ill} ill-conditioned "
                            "sample(s) are judged against the source's own noise, and may end inconclusive: pass --data")
    origin = {**runs.feeds.origin, "conditioning": entry}
    return replace(runs, feeds=InputSet(runs.feeds.samples, origin))


def _conditioning(model, refs, noise) -> tuple[float, int]:
    ranges = bounded_outputs(model)
    worst, ill = 0.0, 0
    for ref, runs in zip(refs, noise):
        sample_worst = 0.0
        for name, value in ref.items():
            reference = np.asarray(value)
            if reference.dtype.kind != "f":
                continue
            floor = max(map(abs, ranges[name])) if name in ranges else 0.0
            for run in runs:
                moved = np.asarray(run.get(name))
                if moved.shape == reference.shape:
                    sample_worst = max(sample_worst, M.max_rel_error(reference, moved, floor))
        worst = max(worst, sample_worst)
        ill += sample_worst > CONDITIONING_BOUND
    return worst, ill


def _digest(feeds: InputSet) -> str:
    digest = hashlib.sha256()
    for sample in feeds.samples:
        for name in sorted(sample):
            array = np.ascontiguousarray(sample[name])
            digest.update(name.encode() + str(array.dtype).encode() + str(array.shape).encode() + array.tobytes())
    return digest.hexdigest()
