"""``deploykit inspect``: a source model or an artifact, whichever the path is."""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import InputError


def inspect_model(path, inputs: list[str] | None = None, *, allow_h5: bool = False):
    """Inspect a source model (Keras, PyTorch, ONNX) or an artifact (.tflite, .mlpackage, .pte): an
    ``inspection.Inspection``, an artifact's with its accelerator compatibility (``Target.compatibility``).
    ``inputs`` are ``--input`` strings for sources whose sizes are not fixed."""
    from deploykit.inspection import inspect_source_file
    from deploykit.targets import for_path

    try:
        target = for_path(path)
    except InputError:
        target = None
    if target is None or Path(str(path).rstrip("/")).suffix.lower() != target.suffix:
        return inspect_source_file(path, inputs, allow_h5=allow_h5)  # a source model, or a file nothing reads
    if not Path(str(path)).exists():
        raise InputError(f"model not found: {path}")
    from dataclasses import replace

    from deploykit.pipeline.artifact import compatibility_of

    found = target.inspect(Path(str(path)))
    return replace(found, compatibility=compatibility_of(target, Path(str(path)), None, verbose=False))
