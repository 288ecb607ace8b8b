"""Parity of a Core ML classifier: its probability dictionary against the source's class scores.

The artifact's ``classLabel_probs`` (label -> probability) is laid out as an array in label order, the
source's output gets the softmax the classifier added (if it did), and the two are compared like any
output, as probabilities (range 0-1). The predicted label must be the label of the highest probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deploykit.labels.spec import PREDICTED_FEATURE, PROBABILITIES_FEATURE, Classifier
from deploykit.parity.layout import Binding

RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class ClassifierBinding(Binding):
    classifier: Classifier | None = None
    shape: tuple = ()

    @property
    def note(self) -> str | None:
        return "probability dictionary in label order" + (" vs softmax of the source" if self.classifier.softmax_added else "")

    def to_source(self, value) -> np.ndarray:
        table = value.item() if isinstance(value, np.ndarray) else value
        missing = [label for label in self.classifier.labels if label not in table]
        if missing:
            raise ValueError(f"the classifier's probabilities lack labels {missing[:3]}")
        return np.asarray([table[label] for label in self.classifier.labels], np.float32).reshape(self.shape)

    def reference(self, value: np.ndarray) -> np.ndarray:
        if not self.classifier.softmax_added:
            return value
        shifted = np.exp(value - value.max(axis=-1, keepdims=True))
        return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)


def classifier_of(model, recorded) -> Classifier | None:
    if getattr(model, "classifier", None) is not None:
        return model.classifier
    if recorded is not None and recorded.classifier:
        return Classifier.from_json(recorded.classifier)
    return None


def classifier_bindings(bindings, classifier: Classifier | None, model, artifact_specs) -> tuple:
    names = {spec.name for spec in artifact_specs}
    if classifier is None or PROBABILITIES_FEATURE not in names:
        return bindings
    shape = next(tuple(1 if d is None else d for d in o.shape) for o in model.outputs if o.name == classifier.output)
    return tuple(ClassifierBinding(b.source, PROBABILITIES_FEATURE, classifier=classifier, shape=shape)
                 if b.source == classifier.output else b for b in bindings)


def label_problems(outputs: list[dict], classifier: Classifier | None) -> list[str]:
    """Samples whose predicted label is not the label of the highest probability."""
    if classifier is None or not outputs or PREDICTED_FEATURE not in outputs[0]:
        return []
    wrong = []
    for index, out in enumerate(outputs):
        table = out[PROBABILITIES_FEATURE]
        table = table.item() if isinstance(table, np.ndarray) else table
        label = out[PREDICTED_FEATURE]
        label = label.item() if isinstance(label, np.ndarray) else label
        best = max(classifier.labels, key=lambda key: table[key])
        if str(label) != str(best) and table[str(label)] < table[best]:
            wrong.append(f"sample {index}: classLabel {label!r}, highest probability {best!r}")
    return wrong
