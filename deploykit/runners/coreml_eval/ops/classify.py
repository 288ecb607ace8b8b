"""classify (MIL classify.py): a classifier's outputs, the predicted label and the label -> probability dict.

Core ML returns the probabilities as a dictionary keyed by label (fp64 values) and the label of the
highest probability (the first such label on a tie: the runtime's rule is not documented; this is the
evaluator's, as for argmax).
"""

from __future__ import annotations

import numpy as np

from .registry import register


@register("classify")
def classify(args):
    probabilities = np.asarray(args.tensor("probabilities"), dtype=np.float64).reshape(-1)
    (classes,) = args.values("classes")
    labels = [c.item() if isinstance(c, np.ndarray) else c for c in classes]
    labels = [str(c) if isinstance(c, (str, np.str_)) else int(c) for c in labels]
    if len(labels) != probabilities.size:
        raise args.unsupported("classes", len(labels), f"{probabilities.size} probabilities for {len(labels)} classes")
    best = int(np.argmax(probabilities))
    return np.array(labels[best]), {label: float(p) for label, p in zip(labels, probabilities)}
