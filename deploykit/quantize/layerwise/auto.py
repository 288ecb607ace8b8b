"""``--quantize auto``: the smallest per-layer assignment within the budget, made and checked for real.

``make_auto`` runs ``search`` on the reference artifact (TFLite: the fp32 ``.tflite``; Core ML: the fp16
program the compressed variants start from), makes the longest prefix of the path that kept to the
budget with the target's engine (``make``), runs the made artifact on every validation sample and steps
back along the path while it misses. The record says what each layer got and why, every candidate
evaluated (the report's Pareto plot) and the seconds each phase took.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from deploykit.core.errors import ConversionError
from deploykit.core.progress import NullProgress
from deploykit.quantize.layerwise import metric
from deploykit.quantize.layerwise.layers import open_layers
from deploykit.quantize.layerwise.search import STEP_BACKS, Candidate, Search, step_back


@dataclass(frozen=True)
class AutoRequest:
    target: str
    reference: Path  # the artifact whose weights are replaced layer by layer
    validation: metric.Validation
    budget: metric.Budget
    choices: tuple  # choices.Choice, largest first
    make: Callable[[dict, Path], dict]  # (assignment, out path) -> the engine's record


def run_auto(target: str, reference: Path, out_path: Path, workspace, options, *, ios18: bool = False,
             judged_against: Path | None = None) -> dict:
    """The target's ``make`` for scheme ``auto``: ``options`` is the QuantizeOptions, ``workspace.validation(path,
    target, outputs_of)`` gives the samples (pipeline/convert.py), ``ios18`` offers Core ML's grouped tables and int4
    blocks. ``judged_against``: the artifact whose outputs the budget compares with when the weights are replaced in
    another (Core ML: the fp32 program, while the fp16 program is patched), so the drop is against fp32 on both."""
    from deploykit.quantize.layerwise.choices import for_target

    if getattr(workspace, "validation", None) is None:
        raise ConversionError("--quantize auto checks every candidate: it cannot run with --no-verify",
                              hint="drop --no-verify")
    auto = options.auto
    if target == "tflite":
        from deploykit.quantize.layerwise.tflite_make import make_tflite as make
    else:
        from deploykit.quantize.layerwise.coreml_make import make_coreml as make
    request = AutoRequest(target, Path(reference), workspace.validation(reference, target, judged_against), auto.budget(),
                          for_target(target, ios18=ios18, allowed=auto.choices or None),
                          lambda assignment, out: make(Path(reference), out, assignment))
    return make_auto(request, out_path, workspace.progress or NullProgress())


def make_auto(request: AutoRequest, out_path: Path, progress) -> dict:
    layers = open_layers(request.target, request.reference)
    if not layers.layers:
        raise ConversionError("--quantize auto: the artifact has no conv / dense weights to choose for",
                              hint="use a single scheme (--quantize fp16)")
    search = Search(layers, request.choices, request.validation, request.budget)
    with progress.step(f"Measuring what {len(layers.layers)} layers lose under {len(request.choices) - 1} choices each"):
        search.measure_sensitivity()
        search.plan_path()
    with progress.step("Evaluating every single-scheme assignment"):
        singles = search.single_schemes()
    with progress.step(f"Searching {len(search.moves)} layer moves for the smallest within the budget"):
        steps, chosen = search.longest_within()
        moves, chosen = search.refine(steps, chosen)
    made, tried = None, []
    with progress.step("Making the chosen assignment and checking it on the validation samples"):
        started = time.perf_counter()
        for _ in range(STEP_BACKS + 1):
            assignment = search.apply(moves)
            record = request.make(assignment, out_path)
            outputs = open_layers(request.target, out_path).run({}, list(request.validation.feeds))
            cost = metric.cost(request.budget, request.validation, outputs)
            made = Candidate(f"made {len(moves)} moves", tuple(assignment.items()), search.weight_bytes(assignment),
                             cost, metric.within(request.budget, cost), made=True, size=_size(out_path))
            search.candidates.append(made)
            tried.append(made)
            if made.within or not moves:
                break
            moves = moves[:step_back(len(moves))]
        search.seconds["make"] = round(time.perf_counter() - started, 2)
    if not made.within:
        raise ConversionError(f"--quantize auto: even the reference's own storage misses the budget "
                              f"({request.budget.measure} {made.cost:.4g} > {request.budget.limit})",
                              hint="check the validation data, or give a larger budget")
    return {
        "scheme": "auto", **record, "budget": request.budget.to_json(), "measure": request.budget.measure,
        "validation": request.validation.describe(), "reference": request.reference.name,
        "chosen": made.to_json(), "single_schemes": [c.to_json() for c in singles],
        "candidates": [c.to_json() for c in search.candidates], "path_moves": len(search.moves),
        "path_steps_kept": steps, "moves_kept": len(moves), "layers": _layers(search, dict(made.assignment)), "seconds": dict(search.seconds),
        "weights": "per layer: " + ", ".join(f"{n} {c}" for c, n in sorted(made.counts().items())),
        "profile": coarsest_profile({c.name: 1 for c in request.choices}),
    }


# The parity check of a per-layer variant is the net for gross conversion errors (a wrong layout, a broken op), not its
# accuracy verdict: that is the budget, measured on the made artifact over every validation sample above. A profile
# tuned for one scheme everywhere would cry wolf on a mix (PP-OCRv4's recogniser, TFLite: the auto variant within
# 0.53 points of agreement has cosine 0.998, under the int8-weights profile's 0.999, which the plain int8-weights
# variant fails at 0.936), so the check uses the profile of the coarsest choice the search was allowed.
# Ordered from the tightest profile to the loosest.
_PROFILE_ORDER = ("fp32", "fp16", "int8-weights", "lut8", "lut6", "lut4", "int4", "lut3", "lut2")


def coarsest_profile(counts: dict[str, int]) -> str:
    profiles = {_profile_of(choice) for choice in counts}
    return max(profiles, key=_PROFILE_ORDER.index)


def _profile_of(choice: str) -> str:
    if choice.startswith("lut"):
        return choice.split("-")[0]
    return {"int8": "int8-weights", "int4-block": "int4"}.get(choice, choice)


def _layers(search: Search, assignment: dict[str, str]) -> list[dict]:
    """Each layer's choice and why: the noise it causes alone there, and what its next smaller choice would add."""
    names = [c.name for c in search.choices]
    by_name = {c.name: c for c in search.choices}
    rows = []
    for layer in search.layers.layers:
        choice = assignment[layer.name]
        noise = search.sensitivity[layer.name]
        smaller = [c for c in names[names.index(choice) + 1:] if c in noise]
        row = {"layer": layer.name, "op": layer.op, "elements": layer.elements, "choice": choice,
               "noise_alone_db": _db(noise.get(choice, 0.0))}
        if smaller:
            saved = (by_name[choice].stored_bytes(layer.elements, layer.channels)
                     - by_name[smaller[0]].stored_bytes(layer.elements, layer.channels))
            row["why"] = (f"{smaller[0]} would save {saved} bytes for {_db(noise[smaller[0]])} dB of output noise alone: "
                          "a worse trade than the moves the budget allowed")
        else:
            row["why"] = "the smallest choice allowed"
        rows.append(row)
    return rows


def _db(ratio: float) -> float | None:
    return None if ratio <= 0 else round(10 * math.log10(ratio), 1)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
