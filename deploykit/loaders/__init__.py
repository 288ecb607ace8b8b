"""Load a source model (file, directory or Python entry point) into a SourceModel.

Every loader refuses what could run code or read outside the model's directory; see each module.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import InputError
from deploykit.core.types import SourceModel
from deploykit.loaders.detect import detect_format
from deploykit.loaders.shapes import parse_input_specs


def load_source(
    source: str | Path,
    *,
    inputs: dict[str | None, tuple] | list[str] | None = None,
    weights: str | Path | None = None,
    allow_h5: bool = False,
) -> SourceModel:
    """Load ``source`` and resolve its input shapes.

    ``inputs`` fixes dynamic dimensions: either ``{"name": (1, 3, 224, 224)}`` (``None`` as the
    key for a single-input model) or CLI strings like ``["image=1x3x224x224"]``.
    """
    if isinstance(inputs, (list, tuple)):
        inputs = parse_input_specs(inputs)
    inputs = inputs or {}
    fmt = detect_format(source)
    if weights is not None and fmt != "entrypoint":
        raise InputError(
            "--weights only applies to a Python entry point (path/to/file.py:factory or package.module:factory)",
            hint="a .pt2 or TorchScript file already holds its weights",
        )
    if fmt in ("keras", "savedmodel", "h5"):
        from deploykit.loaders import keras_loader

        return keras_loader.load(str(source), fmt, inputs, allow_h5=allow_h5)
    if fmt in ("pt2", "torchscript", "entrypoint"):
        from deploykit.loaders import torch_loader

        return torch_loader.load(str(source), fmt, inputs, weights=weights)
    if fmt == "onnx":
        from deploykit.loaders import onnx_loader

        return onnx_loader.load(str(source), inputs)
    raise InputError(f"unknown model format: {source}")  # detect_format already refuses; kept for safety
