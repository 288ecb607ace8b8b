"""Which walker reads a source: by ``loaders.detect_format`` for a file, by framework for a loaded model."""

from __future__ import annotations

from deploykit.core.errors import InputError
from deploykit.inspection.model import Inspection


def inspect_source_file(path, inputs: list[str] | None = None, *, allow_h5: bool = False) -> Inspection:
    """Inspect a source model file (Keras, PyTorch, ONNX); an artifact's walker is its target's
    (``deploykit.pipeline.inspect.inspect_model`` takes either).

    ``inputs`` are ``--input`` strings (``name=1x3x224x224``) for sources whose input sizes are not fixed;
    mult-adds depend on them.
    """
    from deploykit.loaders.detect import detect_format

    text = str(path)
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
