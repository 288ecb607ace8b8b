"""``Classifier``: which output holds the class scores, its labels, and whether a softmax is added."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from deploykit.core.errors import InputError, UsageError

MAX_LABEL = 256  # characters; a label is shown to users, not a document
PREDICTED_FEATURE = "classLabel"
PROBABILITIES_FEATURE = "classLabel_probs"  # coremltools' name for the dictionary


@dataclass(frozen=True)
class Classifier:
    """The labels of one output. ``axis`` None: a classifier output (one score per class, N or 1xN), which
    Core ML makes a classifier. ``axis`` k: the class axis of a detector's score tensor (e.g. 1 x boxes x
    classes), whose labels travel as metadata only: Core ML's classifier is one label per prediction."""

    output: str
    labels: tuple[str, ...]
    softmax_added: bool  # the output is logits: Core ML's classifier gets a softmax first
    axis: int | None = None

    @property
    def is_classifier(self) -> bool:
        return self.axis is None

    def to_json(self) -> dict:
        if not self.is_classifier:
            return {"output": self.output, "labels": list(self.labels), "softmax_added": False, "axis": self.axis,
                    "kind": "class scores"}
        return {"output": self.output, "labels": list(self.labels), "softmax_added": self.softmax_added,
                "predicted_feature": PREDICTED_FEATURE, "probabilities_feature": PROBABILITIES_FEATURE,
                "kind": "classifier"}

    @classmethod
    def from_json(cls, data: dict) -> "Classifier":
        return cls(data["output"], tuple(data["labels"]), bool(data["softmax_added"]), data.get("axis"))


@dataclass(frozen=True)
class ClassifierOptions:
    labels: Path
    output: str | None = None  # default: the model's only output


def parse_classifier(options: ClassifierOptions | None, model) -> Classifier | None:
    """The classifier ``options`` describe, checked against ``model``'s outputs."""
    if options is None:
        return None
    labels = read_labels(Path(options.labels))
    names = [o.name for o in model.outputs]
    name = options.output
    if name is None:
        if len(names) != 1:
            raise UsageError(f"the model has {len(names)} outputs; --classifier-output names the one with the class scores",
                             hint=f"its outputs are: {', '.join(names)}")
        name = names[0]
    if name not in names:
        raise UsageError(f"--classifier-output {name!r}: the model has no such output", hint=f"its outputs are: {', '.join(names)}")
    spec = next(o for o in model.outputs if o.name == name)
    classes = spec.shape[-1] if spec.shape else None
    if len(spec.shape) not in (1, 2) or (len(spec.shape) == 2 and spec.shape[0] not in (1, None)):
        return _class_scores(spec, labels, options.labels)
    if classes != len(labels):
        raise InputError(f"{options.labels} has {len(labels)} labels; output {name!r} has {classes} classes")
    return Classifier(name, labels, softmax_added=not _is_probability(model, name))


def _class_scores(spec, labels: tuple[str, ...], path) -> Classifier:
    """A detector's score output (e.g. 1 x 2100 x 10): its class axis is the one as long as the labels
    (the last, if several are). YOLO-style outputs that pack box coordinates with the scores on one axis
    (1 x 84 x 8400) have none, and are refused rather than guessed."""
    shape = "x".join("?" if d is None else str(d) for d in spec.shape)
    axes = [axis for axis, size in enumerate(spec.shape) if size == len(labels)]
    if not axes:
        raise InputError(f"{path} has {len(labels)} labels; no axis of output {spec.name!r} (shape {shape}) has "
                         f"{len(labels)} entries", hint="name the output that holds one score per class (N or 1xN, or a "
                         "detector's boxes x classes scores) with --classifier-output")
    return Classifier(spec.name, labels, softmax_added=False, axis=axes[-1])


def read_labels(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        raise InputError(f"labels file {path} not found")
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"labels file {path} is not UTF-8 text: {exc}") from None
    labels = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not labels:
        raise InputError(f"labels file {path} is empty")
    if len(set(labels)) != len(labels):
        twice = sorted({label for label in labels if labels.count(label) > 1})[:3]
        raise InputError(f"labels file {path} repeats labels ({', '.join(twice)}): a classifier's labels are its keys")
    long = next((label for label in labels if len(label) > MAX_LABEL), None)
    if long is not None:
        raise InputError(f"labels file {path}: a label is longer than {MAX_LABEL} characters")
    return labels


def _is_probability(model, name: str) -> bool:
    """Decision: an output the source bounds to [0, 1] (a Softmax or Sigmoid at the end, ``parity.ranges``) is
    already probabilities; anything else is logits and gets a softmax."""
    from deploykit.loaders.output_ranges import bounded_outputs

    bounds = bounded_outputs(model).get(name)
    return bounds is not None and bounds[0] >= 0.0 and bounds[1] <= 1.0
