"""Labels in a TFLite artifact's metadata at conversion time, as the bundle writes them (``formats.tflite.metadata``):
``labels.txt`` associated with the classifier output (TENSOR_AXIS_LABELS), readable by TFLite Support's
MetadataExtractor and Android Studio's ML Model Binding without any bundle. The graph is unchanged
(``runs_identically`` is checked in the tests); the output stays the source's scores, no softmax. A detector
with its post-process appended (``--detector``) gets its labels on the class ids instead."""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import ConversionError


def embed_labels(path: Path, classifier, model) -> None:
    def output(t) -> dict:
        named = t.name in (classifier.output, _safe(classifier.output))
        return dict(t.to_json(), normalization=None,
                    labels={"path": "labels.txt", "count": len(classifier.labels)} if named else None)

    _embed(path, model.name, classifier.labels, output, f"no output {classifier.output!r} to attach labels to")


def embed_detector_labels(path: Path, labels, name: str, boxes: str, classes: str) -> None:
    """A detector's outputs (``detection.outputs.TFLITE_OUTPUTS``, ``boxes`` and ``classes`` among them) described
    as Task Library's ObjectDetector reads them: the boxes as BoundingBoxProperties (ymin, xmin, ymax, xmax as
    ratios), ``labels.txt`` on the class ids as TENSOR_VALUE_LABELS (each value names a line of the file)."""

    def output(t) -> dict:
        return dict(t.to_json(), normalization=None, content="boxes" if t.name == boxes else None,
                    labels={"path": "labels.txt", "count": len(labels), "of": "values"} if t.name == classes else None)

    _embed(path, name, tuple(labels), output, f"no output {classes!r} to attach labels to")


def _embed(path: Path, name: str, labels: tuple, output, missing: str) -> None:
    from deploykit.core.atomic import write_bytes_atomic
    from deploykit.formats.tflite.metadata import NotEmbeddable, TfliteMetadata, embed
    from deploykit.formats.tflite.signature import open_interpreter, signature

    data = path.read_bytes()
    inputs, outputs = signature(open_interpreter(str(path)))
    tensors_in = tuple(dict(t.to_json(), normalization=None, labels=None) for t in inputs)
    tensors_out = tuple(output(t) for t in outputs)
    if not any(t["labels"] for t in tensors_out):
        raise ConversionError(f"the TFLite artifact has {missing}")
    meta = TfliteMetadata(name=name, version="", description=f"{name}, converted by deploykit", author="",
                          license="", inputs=tensors_in, outputs=tensors_out, labels=labels, extra={})
    try:
        write_bytes_atomic(path, embed(data, meta))
    except NotEmbeddable as exc:
        raise ConversionError(f"cannot embed the labels in the TFLite artifact: {exc}") from exc


def _safe(name: str) -> str:
    from deploykit.core.names import feature_names

    return feature_names([name])[0]
