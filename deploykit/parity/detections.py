"""Box-level parity of a detector artifact (``--detector``): the artifact's detections against the source's raw
outputs decoded and suppressed in numpy with the same parameters (``deploykit.detection``), image by image.

One ``OutputResult`` named ``detections`` stands for the artifact's detector outputs. Its verdict is one check,
the number of box differences nothing excuses (``detection.match``), limited to 0; its metrics are the figures an
engineer reads first (matched, missing, extra, excused boxes, the least IoU, the worst score and coordinate
error), and ``per_sample`` has them image by image with what was excused and why.
"""

from __future__ import annotations

from deploykit.detection.decode import decode
from deploykit.detection.match import match, tolerance_for
from deploykit.detection.nms import suppress
from deploykit.detection.options import DetectorOptions
from deploykit.detection.outputs import read_detections
from deploykit.detection.presets import Head
from deploykit.parity.compare import Check, OutputResult


def compare_detections(block: dict, refs: list[dict], outs: list[dict], variant: str) -> OutputResult:
    """``block``: the artifact's record ``detector``; ``refs``: the source's raw outputs per sample (source names);
    ``outs``: the artifact's outputs per sample (its own names)."""
    head, options = Head.from_json(block["head"]), DetectorOptions.from_json(block)
    labels = block.get("labels")
    tolerance = tolerance_for(variant)
    per_sample, failures = [], []
    totals = {"matched": 0, "missing": 0, "extra": 0, "excused": 0, "reference_detections": 0}
    worst_score = worst_coordinate = 0.0
    least_iou = 1.0
    for index, (ref, out) in enumerate(zip(refs, outs)):
        candidates = decode(head, ref)
        reference = suppress(candidates, options)
        found = read_detections(out, head.input_size)
        result = match(reference, found, candidates, options, tolerance, labels)
        per_sample.append({"sample": index, "reference": len(reference), "artifact": len(found), **result.to_json()})
        failures += [f"image {index}: {why}" for why in result.failures]
        for key in ("matched", "missing", "extra"):
            totals[key] += getattr(result, key)
        totals["excused"] += len(result.excused)
        totals["reference_detections"] += len(reference)
        worst_score = max(worst_score, result.worst_score_error)
        worst_coordinate = max(worst_coordinate, result.worst_coordinate_error)
        least_iou = min(least_iou, result.min_iou)
    check = Check("unexcused_box_differences", float(len(failures)), 0.0, "max", not failures,
                  f"boxes matched at IoU >= {tolerance.min_iou} and scores within {tolerance.score_error} "
                  f"(the {variant} tolerance of detection.match), or excused near the threshold or as ties")
    metrics = {**{k: float(v) for k, v in totals.items()}, "min_iou": least_iou, "worst_score_error": worst_score,
               "worst_coordinate_error_px": worst_coordinate}
    names = ", ".join(block.get("outputs", {}).values())
    return OutputResult(name="detections", artifact_name=names or None, shape=(), metrics=metrics, checks=(check,),
                        nonfinite={}, problem="; ".join(failures[:5]) or None, per_sample=tuple(per_sample))
