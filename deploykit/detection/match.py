"""Box-level parity: an artifact's detections against the reference's (the source's raw outputs, decoded and
suppressed in numpy with the same parameters), image by image.

Boxes pair up by class and overlap; a pair matches when its IoU and score error are within the variant's
tolerance. A box without a partner fails the check unless it is *excused*, and the report says why:
- its score lies within the score tolerance of the threshold (the variant's rounding decides whether it is in);
- it ties: it coincides with a reference candidate whose score is within the tolerance of a box that
  suppressed it or that it suppressed (two near-equal boxes, either may be kept), or it was cut by
  ``max_detections`` at a score within the tolerance of the last kept one.
A pair whose boxes differ is excused the same way when the artifact's box is a tying reference candidate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deploykit.detection.decode import Candidates
from deploykit.detection.nms import Detections, iou
from deploykit.detection.options import DetectorOptions

PAIRING_IOU = 0.5  # boxes overlapping less than this are different objects, not one object moved


@dataclass(frozen=True)
class Tolerance:
    min_iou: float  # a matched pair's boxes overlap at least this much
    score_error: float  # and its scores differ by at most this


# Measured on the corpus detectors (bench/results/detection.md): fp32 artifacts reproduce the reference's boxes to
# IoU > 0.9999 and scores to 1e-5; the bounds leave room for other inputs, not for other boxes. fp16: TFLite's
# (fp16 weights, float32 compute) kept every box at IoU >= 0.994; Core ML's computes in fp16 and moved one of
# PicoDet's layout boxes to IoU 0.9487 (its distance bins go through a softmax), YOLOX's to 0.9746, scores by < 0.02.
TOLERANCES = {"fp32": Tolerance(0.99, 2e-3), "fp16": Tolerance(0.9, 0.03)}
QUANTIZED = Tolerance(0.85, 0.08)


def tolerance_for(variant: str) -> Tolerance:
    return TOLERANCES.get(variant, QUANTIZED)


@dataclass(frozen=True)
class ImageMatch:
    matched: int
    missing: int
    extra: int
    excused: tuple[str, ...] = ()
    worst_score_error: float = 0.0
    worst_coordinate_error: float = 0.0  # input pixels
    min_iou: float = 1.0
    failures: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict:
        return {"matched": self.matched, "missing": self.missing, "extra": self.extra, "passed": self.passed,
                "worst_score_error": round(self.worst_score_error, 6),
                "worst_coordinate_error_px": round(self.worst_coordinate_error, 4), "min_iou": round(self.min_iou, 6),
                **({"excused": list(self.excused)} if self.excused else {}),
                **({"failures": list(self.failures)} if self.failures else {})}


def match(reference: Detections, found: Detections, candidates: Candidates, options: DetectorOptions,
          tolerance: Tolerance, labels=None) -> ImageMatch:
    def name(c: int) -> str:
        return labels[c] if labels and c < len(labels) else f"class {c}"

    pairs = sorted(((float(iou(reference.boxes[i], found.boxes[j:j + 1])[0]), i, j)
                    for i in range(len(reference)) for j in range(len(found))
                    if options.class_agnostic or reference.classes[i] == found.classes[j]), reverse=True)
    used_ref, used_found, matched = set(), set(), []
    for overlap, i, j in pairs:
        if overlap >= PAIRING_IOU and i not in used_ref and j not in used_found:
            used_ref.add(i)
            used_found.add(j)
            matched.append((overlap, i, j))
    excused, failures = [], []
    worst_score = worst_coord = 0.0
    lowest = 1.0
    for overlap, i, j in matched:
        score_error = abs(float(reference.scores[i] - found.scores[j]))
        coordinate_error = float(np.abs(reference.boxes[i] - found.boxes[j]).max())
        if overlap >= tolerance.min_iou and score_error <= tolerance.score_error and reference.classes[i] == found.classes[j]:
            worst_score, worst_coord, lowest = max(worst_score, score_error), max(worst_coord, coordinate_error), min(lowest, overlap)
            continue
        if _tying_candidate(found.boxes[j], found.scores[j], found.classes[j], candidates, tolerance):
            excused.append(f"{name(int(found.classes[j]))} at {found.scores[j]:.3f}: the artifact kept a tying box "
                           f"(IoU {overlap:.3f} with the reference's)")
            continue
        failures.append(f"{name(int(reference.classes[i]))} at {reference.scores[i]:.3f}: IoU {overlap:.4f} "
                        f"(min {tolerance.min_iou}), score error {score_error:.4f} (max {tolerance.score_error})")
    missing = [i for i in range(len(reference)) if i not in used_ref]
    extra = [j for j in range(len(found)) if j not in used_found]
    cut = float(reference.scores[-1]) if len(reference) == options.max_detections else None
    for i in missing:
        why = _excuse(reference.boxes[i], float(reference.scores[i]), int(reference.classes[i]), found, options,
                      tolerance, cut)
        (excused if why else failures).append(f"missing {name(int(reference.classes[i]))} at "
                                              f"{reference.scores[i]:.3f}" + (f": {why}" if why else ""))
    for j in extra:
        why = _excuse(found.boxes[j], float(found.scores[j]), int(found.classes[j]), reference, options, tolerance, cut)
        if not why and _tying_candidate(found.boxes[j], found.scores[j], found.classes[j], candidates, tolerance,
                                        reference, options):
            why = "it ties with a reference candidate that a near-equal box suppressed"
        (excused if why else failures).append(f"extra {name(int(found.classes[j]))} at {found.scores[j]:.3f}"
                                              + (f": {why}" if why else ""))
    return ImageMatch(len(matched), len(missing), len(extra), tuple(excused), worst_score, worst_coord, lowest,
                      tuple(failures))


def _excuse(box, score: float, klass: int, others: Detections, options, tolerance: Tolerance, cut) -> str | None:
    if abs(score - options.score_threshold) <= tolerance.score_error:
        return f"its score is within {tolerance.score_error} of the threshold {options.score_threshold}"
    if cut is not None and abs(score - cut) <= tolerance.score_error:
        return f"it was cut by --max-detections {options.max_detections} at a score within {tolerance.score_error}"
    same = np.ones(len(others), bool) if options.class_agnostic else others.classes == klass
    if same.any():
        overlaps = iou(np.asarray(box, np.float64), others.boxes[same])
        rivals = others.scores[same][overlaps > options.iou]
        if len(rivals) and float(np.min(np.abs(rivals - score))) <= tolerance.score_error:
            return "a near-equal overlapping box was kept instead (a tie)"
    return None


def _tying_candidate(box, score, klass, candidates: Candidates, tolerance: Tolerance, reference=None,
                     options=None) -> bool:
    """The box is one of the reference's candidates of its class, scored within the tolerance of what the
    artifact gave it, and (for an extra box) a kept reference box overlapping it scores within the tolerance."""
    if candidates is None or not len(candidates.boxes):
        return False
    overlaps = iou(np.asarray(box, np.float64), candidates.boxes)
    same = candidates.scores.argmax(-1) == klass
    close = (overlaps >= tolerance.min_iou) & same & (np.abs(candidates.scores.max(-1) - score) <= tolerance.score_error)
    if not close.any():
        return False
    if reference is None:
        return True
    kept = reference.classes == klass if not options.class_agnostic else np.ones(len(reference), bool)
    if not kept.any():
        return False
    rivals = reference.scores[kept][iou(np.asarray(box, np.float64), reference.boxes[kept]) > options.iou]
    return bool(len(rivals)) and float(np.min(np.abs(rivals - score))) <= tolerance.score_error
