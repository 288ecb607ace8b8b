"""How far a compressed model is from its reference: the budget ``--quantize auto`` and repair keep to.

Three measures, one per flag:

- ``--max-accuracy-drop P`` with labels (``--validation`` holding a ``labels`` array): one class per sample
  gives points of top-1 lost against the reference artifact's top-1 on the same samples; a class *sequence*
  per sample (a 2-D integer array, rows padded with -1: a text line's character indices for a CTC recogniser)
  gives points of sequence accuracy (1 - edit distance / length of the CTC-decoded output against the
  label, a class the reference reads in a line's margins trimmed: ``margin_classes``), which for PP-OCR is its
  character accuracy.
- ``--max-accuracy-drop P`` without labels: points of *decision agreement* lost. A decision is the arg
  max over the last axis of every output with two axes or more (a classifier's class, a segmenter's class
  per pixel). Positions where the reference and the candidate both choose the reference's most frequent
  class (a background) are not decisions: counted, they would hide errors behind it. An output of
  (batch, steps, classes) is a **sequence**: its decisions are read as CTC does (repeats collapsed, the most
  frequent class, the blank, dropped) and compared by edit distance, 1 - distance / length. Per step, a
  character whose span moves by one frame would count as an error although the text is the same: measured on
  PP-OCRv4's recogniser with int8 weights, per-step agreement lost 8.6 points where the decoded text of 99.3 %
  of 300 held-out lines was unchanged and character accuracy lost 0.00.
- ``--max-error E``: the largest error of any output, as a fraction of that output's peak magnitude
  (``max_rel_error`` of the parity metrics) on any sample.

``noise`` is the search's continuous proxy: output noise power over signal power, summed over outputs;
errors of different layers add roughly in power, which is what lets ``search`` price a whole
assignment from layers measured one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deploykit.core.errors import UsageError

MARGIN_SHARE = 0.05  # margin_classes: of the samples, at least


@dataclass(frozen=True)
class Budget:
    max_accuracy_drop: float | None = None  # points (of 100)
    max_error: float | None = None  # max_rel_error
    objective: str = "size"

    def __post_init__(self):
        if (self.max_accuracy_drop is None) == (self.max_error is None):
            raise UsageError("--quantize auto needs exactly one budget: --max-accuracy-drop POINTS or --max-error E",
                             hint="e.g. --quantize auto --max-accuracy-drop 1")
        if self.max_accuracy_drop is not None and not 0 <= self.max_accuracy_drop < 100:
            raise UsageError(f"--max-accuracy-drop must be between 0 and 100 points, got {self.max_accuracy_drop}")
        if self.max_error is not None and not self.max_error > 0:
            raise UsageError(f"--max-error must be positive, got {self.max_error}")
        if self.objective != "size":
            raise UsageError(f"--objective {self.objective!r}: only 'size' is implemented",
                             hint="the per-layer choices are weight storage, which the host kernels dequantize at load; "
                                  "latency does not separate them")

    @property
    def limit(self) -> float:
        return self.max_accuracy_drop if self.max_accuracy_drop is not None else self.max_error

    @property
    def measure(self) -> str:
        return "accuracy drop (points)" if self.max_accuracy_drop is not None else "max_rel_error"

    def to_json(self) -> dict:
        return {"max_accuracy_drop": self.max_accuracy_drop, "max_error": self.max_error, "objective": self.objective}


@dataclass(frozen=True)
class Validation:
    """The samples a budget is judged on, in the artifact's names and layout, with the reference's outputs."""

    feeds: tuple[dict, ...]
    reference: tuple[dict, ...]
    labels: np.ndarray | None = None
    source: str = "parity inputs"

    def describe(self) -> dict:
        return {"source": self.source, "samples": len(self.feeds), "labels": self.labels is not None}


def cost(budget: Budget, validation: Validation, outputs: list[dict]) -> float:
    """The figure the budget limits (lower is better; the reference itself scores 0)."""
    if budget.max_error is not None:
        return max_rel_error(validation.reference, outputs)
    if validation.labels is not None and validation.labels.ndim == 2:
        margins = margin_classes(validation.reference, validation.labels)
        return (sequence_accuracy(validation.reference, validation.labels, margins)
                - sequence_accuracy(outputs, validation.labels, margins))
    if validation.labels is not None:
        return top1(validation.reference, validation.labels) - top1(outputs, validation.labels)
    return 100.0 - agreement(validation.reference, outputs)


def within(budget: Budget, value: float) -> bool:
    return value <= budget.limit + 1e-9


def max_rel_error(reference, outputs) -> float:
    worst = 0.0
    for ref, out in zip(reference, outputs):
        for name, value in ref.items():
            peak = float(np.max(np.abs(value))) or 1.0
            worst = max(worst, float(np.max(np.abs(out[name] - value))) / peak)
    return worst


def top1(outputs, labels: np.ndarray) -> float:
    """Per cent of samples whose class-score output (the first output, arg max over its last axis) is the label."""
    name = next(iter(outputs[0]))
    chosen = np.array([int(np.argmax(o[name].reshape(-1))) for o in outputs])
    return 100.0 * float(np.mean(chosen == labels[:len(chosen)]))


def sequence_accuracy(outputs, labels: np.ndarray, margins: frozenset = frozenset()) -> float:
    """Per cent: 1 - edit distance / label length, summed over samples, of the first output read as CTC (arg max
    per step, repeats collapsed, the blank dropped: the most frequent class over all steps of ``outputs``), with
    ``margins`` classes (``margin_classes``) trimmed from both ends of each decoded sequence."""
    errors = length = 0
    for decided, row in zip(_decoded(outputs), labels):
        wanted = [int(v) for v in row if v >= 0]
        errors += _edit_distance(_trimmed(decided, margins), wanted)
        length += len(wanted)
    return 100.0 * (1 - errors / max(length, 1))


def margin_classes(reference, labels: np.ndarray) -> frozenset:
    """Classes the reference reads at a sequence's ends that no label starts or ends with, in at least
    ``MARGIN_SHARE`` of the samples: what a recogniser reads in a line's empty margins.

    PP-OCR's recogniser reads the margins of a line as its space class, which an app strips (rapidocr passes it
    on; the labels have none). Counted, those spaces come and go with any change to the weights: on PP-OCRv4's
    100 calibration lines, int8-weights lost 0.92 points of sequence accuracy against the labels, all of them
    margin spaces (18 in the reference, 25 in the variant), and 0.00 points with them trimmed."""
    decoded = _decoded(reference)
    label_edges = {int(v) for row in labels for kept in [[v for v in row if v >= 0]] if kept for v in (kept[0], kept[-1])}
    counts: dict[int, int] = {}
    for symbols in decoded:
        for symbol in {*symbols[:1], *symbols[-1:]}:
            counts[symbol] = counts.get(symbol, 0) + 1
    return frozenset(s for s, n in counts.items() if s not in label_edges and n >= MARGIN_SHARE * len(decoded))


def _decoded(outputs) -> list[list[int]]:
    name = next(iter(outputs[0]))
    steps = [o[name].reshape(-1, o[name].shape[-1]).argmax(-1) for o in outputs]
    blank = int(np.bincount(np.concatenate(steps)).argmax())
    return [_collapsed(s, blank) for s in steps]


def _trimmed(symbols: list[int], margins: frozenset) -> list[int]:
    start, end = 0, len(symbols)
    while start < end and symbols[start] in margins:
        start += 1
    while end > start and symbols[end - 1] in margins:
        end -= 1
    return symbols[start:end]


def agreement(reference, outputs) -> float:
    """Per cent of decisions (arg max over the last axis) the candidate shares with the reference; sequences by
    edit distance of their collapsed symbols."""
    matched = total = 0.0
    for name in reference[0]:
        shape = reference[0][name].shape
        if len(shape) < 2 or shape[-1] < 2:
            continue
        ref = [r[name].reshape(-1, shape[-1]).argmax(-1) for r in reference]
        out = [o[name].reshape(-1, shape[-1]).argmax(-1) for o in outputs]
        background = int(np.bincount(np.concatenate(ref)).argmax())
        if len(shape) == 3 and shape[1] > 1:  # (batch, steps, classes): a sequence
            for a, b in zip(ref, out):
                symbols = _collapsed(a, background)
                matched += len(symbols) - min(len(symbols), _edit_distance(symbols, _collapsed(b, background)))
                total += len(symbols)
            continue
        a, b = np.concatenate(ref), np.concatenate(out)
        counted = ~((a == background) & (b == background)) if a.size > len(ref) else np.ones(a.shape, bool)
        matched += float(np.sum((a == b) & counted))
        total += float(np.sum(counted))
    return 100.0 if total == 0 else 100.0 * matched / total


def _collapsed(steps: np.ndarray, blank: int) -> list[int]:
    kept, previous = [], None
    for symbol in steps.tolist():
        if symbol != previous and symbol != blank:
            kept.append(symbol)
        previous = symbol
    return kept


def _edit_distance(a: list[int], b: list[int]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        diagonal, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (x != y))
    return row[-1]


def noise(reference, outputs) -> float:
    """Output noise power over signal power (variance about the mean), summed over outputs, all samples."""
    total = 0.0
    for name in reference[0]:
        ref = np.concatenate([r[name].ravel() for r in reference]).astype(np.float64)
        out = np.concatenate([o[name].ravel() for o in outputs]).astype(np.float64)
        signal = float(np.sum((ref - ref.mean()) ** 2)) or 1.0
        total += float(np.sum((out - ref) ** 2)) / signal
    return total


def read_labels(path) -> np.ndarray | None:
    """The ``labels`` array of a validation ``.npz`` (one integer class per sample), if it has one."""
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() != ".npz":
        return None
    with np.load(path, allow_pickle=False) as archive:
        if "labels" not in archive.files:
            return None
        labels = np.asarray(archive["labels"])
    if labels.ndim not in (1, 2) or labels.dtype.kind not in "iu":
        raise UsageError(f"--validation {path}: 'labels' must be one integer class per sample, or one row of class "
                         f"indices per sample padded with -1 (a sequence), got {labels.dtype.name} {labels.shape}")
    return labels.astype(np.int64)
