"""An artifact's outputs paired with the source's when labels changed them (a Core ML classifier's features)."""

from __future__ import annotations

from dataclasses import replace

from deploykit.core.layouts import annotate
from deploykit.labels.spec import PREDICTED_FEATURE, PROBABILITIES_FEATURE


def annotate_outputs(model, outputs, carried: dict | None, classifier_features: bool):
    """``layouts.annotate`` for an artifact's outputs. When the target made the labelled output a classifier of
    its own (``classifier_features``: Core ML's ``classLabel`` and ``classLabel_probs``), its two features are
    paired with the source's class-score output by meaning, not by position."""
    if carried is None or not classifier_features or carried.get("axis") is not None:
        return annotate(model.outputs, outputs)
    features = {PREDICTED_FEATURE, PROBABILITIES_FEATURE}
    others, notes = annotate(tuple(o for o in model.outputs if o.name != carried["output"]),
                             tuple(o for o in outputs if o.name not in features))
    mine = tuple(replace(o, dtype={"stringType": "str", "dictionaryType": "dict"}.get(o.dtype, o.dtype),
                         original_name=carried["output"] if o.name == PROBABILITIES_FEATURE else None)
                 for o in outputs if o.name in features)
    return mine + others, notes
