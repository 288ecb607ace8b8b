"""Which walker reads a file: artifacts by their suffix, sources by ``loaders.detect_format``."""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import InputError
from deploykit.inspection.model import Inspection

ARTIFACT_SUFFIXES = (".tflite", ".mlpackage", ".pte")


def inspect_model(path, inputs: list[str] | None = None, *, allow_h5: bool = False) -> Inspection:
    """Inspect a source model (Keras, PyTorch, ONNX) or an artifact (.tflite, .mlpackage).

    ``inputs`` are ``--input`` strings (``name=1x3x224x224``) for sources whose input sizes are not fixed;
    mult-adds depend on them.
    """
    text = str(path)
    suffix = Path(text.rstrip("/")).suffix.lower()
    if suffix in ARTIFACT_SUFFIXES and not Path(text).exists():
        raise InputError(f"model not found: {text}")
    if suffix == ".tflite":
        from deploykit.inspection import tflite_graph

        return tflite_graph.inspect(Path(text))
    if suffix == ".pte":
        from deploykit.inspection import executorch_graph

        return executorch_graph.inspect(Path(text))
    if suffix == ".mlpackage":
        from deploykit.inspection import coreml_graph

        return coreml_graph.inspect(Path(text))
    from deploykit.loaders.detect import detect_format

    fmt = detect_format(text)
    if fmt in ("keras", "h5"):
        from deploykit.inspection import keras_graph

        return keras_graph.inspect(text, fmt, inputs, allow_h5=allow_h5)
    if fmt == "savedmodel":
        raise InputError(f"{text} is a SavedModel: its TensorFlow graph has no layers to count",
                         hint="inspect the .keras file it came from, or the .tflite artifact deploykit converts it to")
    if fmt == "onnx":
        from deploykit.inspection import onnx_graph

        return onnx_graph.inspect(text, inputs)
    from deploykit.inspection import torch_graph

    return torch_graph.inspect(text, fmt, inputs)


def inspect_source(model) -> Inspection:
    """Inspect a source already loaded by ``deploykit.loaders.load_source`` (convert and build do), without
    loading it again. Flexible inputs are counted at their default shape."""
    if model.framework == "keras":
        if model.format == "savedmodel":
            raise InputError(f"{model.path} is a SavedModel: its TensorFlow graph has no layers to count",
                             hint="inspect the .keras file it came from, or the .tflite artifact")
        from deploykit.inspection import keras_graph

        return keras_graph.walk_model(model.handle, model.path)
    if model.framework == "onnx":
        from deploykit.inspection import onnx_graph

        return onnx_graph.walk_model(model)
    from deploykit.inspection import torch_graph

    return torch_graph.walk_model(model)
