"""Labels in a TFLite artifact's metadata at conversion time, as the bundle writes them (``formats.tflite.metadata``):
``labels.txt`` associated with the classifier output (TENSOR_AXIS_LABELS), readable by TFLite Support's
MetadataExtractor and Android Studio's ML Model Binding without any bundle. The graph is unchanged
(``runs_identically`` is checked in the tests); the output stays the source's scores, no softmax."""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import ConversionError


def embed_labels(path: Path, classifier, model) -> None:
    from deploykit.core.atomic import write_bytes_atomic
    from deploykit.formats.tflite.metadata import NotEmbeddable, TfliteMetadata, embed
    from deploykit.formats.tflite.signature import open_interpreter, signature

    data = path.read_bytes()
    inputs, outputs = signature(open_interpreter(str(path)))
    tensors_in = tuple(dict(t.to_json(), normalization=None, labels=None) for t in inputs)
    tensors_out = tuple(dict(t.to_json(), normalization=None,
                             labels={"path": "labels.txt", "count": len(classifier.labels)}
                             if t.name in (classifier.output, _safe(classifier.output)) else None) for t in outputs)
    if not any(t["labels"] for t in tensors_out):
        raise ConversionError(f"the TFLite artifact has no output {classifier.output!r} to attach labels to")
    meta = TfliteMetadata(name=model.name, version="", description=f"{model.name}, converted by deploykit", author="",
                          license="", inputs=tensors_in, outputs=tensors_out, labels=classifier.labels, extra={})
    try:
        write_bytes_atomic(path, embed(data, meta))
    except NotEmbeddable as exc:
        raise ConversionError(f"cannot embed the labels in the TFLite artifact: {exc}") from exc


def _safe(name: str) -> str:
    from deploykit.core.names import feature_names

    return feature_names([name])[0]
