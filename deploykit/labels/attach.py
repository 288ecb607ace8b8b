"""Put the labels into a finished artifact: a Core ML classifier, or TFLite metadata."""

from __future__ import annotations

from pathlib import Path


def attach_labels(path: Path, target: str, model) -> dict | None:
    """The record's ``classifier`` entry for the artifact at ``path`` (changed in place), or None without labels."""
    classifier = model.classifier
    if classifier is None:
        return None
    if target == "coreml" and not classifier.is_classifier:
        from deploykit.labels.coreml_classifier import label_metadata

        label_metadata(path, classifier)
        return {**classifier.to_json(), "carried_as": "Core ML metadata: com.deploykit.labels and "
                                                      "com.deploykit.labels_output (axis of the class scores)"}
    if target == "coreml":
        from deploykit.labels.coreml_classifier import make_classifier

        make_classifier(path, classifier, model.images)
        return {**classifier.to_json(), "carried_as": "Core ML classifier (classLabel, classLabel_probs)"}
    from deploykit.labels.tflite_labels import embed_labels

    embed_labels(path, classifier, model)
    return {**classifier.to_json(), "softmax_added": False,
            "carried_as": "TFLite metadata: labels.txt associated with the output (TENSOR_AXIS_LABELS)"}


def annotate_outputs(model, outputs, target: str, carried: dict | None):
    """``layouts.annotate`` for an artifact's outputs; a Core ML classifier's two features are paired with the
    source's class-score output by meaning, not by position."""
    from dataclasses import replace

    from deploykit.labels.spec import PREDICTED_FEATURE, PROBABILITIES_FEATURE
    from deploykit.core.layouts import annotate

    if carried is None or target != "coreml" or carried.get("axis") is not None:
        return annotate(model.outputs, outputs)
    features = {PREDICTED_FEATURE, PROBABILITIES_FEATURE}
    others, notes = annotate(tuple(o for o in model.outputs if o.name != carried["output"]),
                             tuple(o for o in outputs if o.name not in features))
    mine = tuple(replace(o, dtype={"stringType": "str", "dictionaryType": "dict"}.get(o.dtype, o.dtype),
                         original_name=carried["output"] if o.name == PROBABILITIES_FEATURE else None)
                 for o in outputs if o.name in features)
    return mine + others, notes
