"""Runners: one per framework and artifact type, each a context manager with ``infer(feeds)``.

    runner_for_source(model)          # Keras, PyTorch or ONNX Runtime, on the already loaded model
    runner_for_artifact(path, target) # LiteRT for .tflite, Core ML (MLModel or numpy evaluator) for .mlpackage,
                                      # the ExecuTorch runtime (child process) for .pte

Frameworks are imported when a runner activates, not when this package is imported.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import InputError, UsageError
from deploykit.runners.base import Intermediate, Runner

__all__ = ["Intermediate", "Runner", "runner_for_artifact", "runner_for_source", "target_of"]


def runner_for_source(model) -> Runner:
    """The runner for a loaded ``SourceModel``; it reuses ``model.handle`` (the model is never loaded twice)."""
    if model.handle is None:
        raise UsageError(f"source {model.path} is not loaded (SourceModel.handle is None)",
                         hint="load it with deploykit.load_source")
    if model.framework == "keras":
        from deploykit.runners.keras_runner import KerasRunner

        return KerasRunner(model)
    if model.framework == "torch":
        from deploykit.runners.torch_runner import TorchRunner

        return TorchRunner(model)
    if model.framework == "onnx":
        from deploykit.runners.onnxrt_runner import OnnxRuntimeRunner

        return OnnxRuntimeRunner(model)
    raise UsageError(f"no runner for source framework {model.framework!r}")


def target_of(path) -> str:
    """"tflite", "coreml" or "executorch" from an artifact's suffix."""
    suffix = Path(str(path).rstrip("/")).suffix.lower()
    if suffix == ".tflite":
        return "tflite"
    if suffix == ".pte":
        return "executorch"
    if suffix in (".mlpackage", ".mlmodel"):
        return "coreml"
    raise InputError(f"cannot tell the artifact type of {path}", hint="deploykit verifies .tflite files, .mlpackage directories and .pte programs")


def runner_for_artifact(path, target: str | None = None, **options) -> Runner:
    """The runner for a converted artifact: LiteRT for TFLite, Core ML for an ML Program package."""
    target = target or target_of(path)
    if not Path(path).exists():
        raise InputError(f"artifact not found: {path}")
    if target == "tflite":
        from deploykit.runners.litert_runner import LiteRTRunner

        return LiteRTRunner(path, **options)
    if target == "coreml":
        from deploykit.runners.coreml_runner import CoreMLRunner

        return CoreMLRunner(path, **options)
    if target == "executorch":
        # A .pte names no tensors: parity binds them to the source's by position (parity.layout.bind).
        from deploykit.runners.executorch_runner import runner_for_pte

        return runner_for_pte(path, **options)
    raise UsageError(f"unknown target {target!r}", hint="tflite, coreml or executorch")
