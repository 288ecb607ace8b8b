"""A numpy evaluator for saved Core ML ML Programs (.mlpackage), for checking numerics on Linux.

``MLModel.predict`` only works on macOS. This package reads the package itself (manifest, Model
protobuf, weight.bin), decompresses palettized / quantized / sparse weights, and runs the MIL ops
with numpy, op by op as the MIL reference specifies them:

    from deploykit.runners.coreml_eval import evaluate, CoreMLEvaluatorRunner
    outputs = evaluate("model.mlpackage", {"x": x})                  # {output name: array}
    ev = evaluate("model.mlpackage", {"x": x}, keep_intermediates=True)
    ev.outputs, ev.intermediates                                     # every op result by MIL name

A package may also hold a pipeline (``pipeline``): its models run in order, ML Programs as above and Core ML's
NonMaximumSuppression model (``suppression``) as NonMaximumSuppression.proto documents it; a detector
(``detection.coreml_postprocess``) is such a pipeline.

Design rules: an op type or argument value without an implementation raises
``UnsupportedOperatorError`` naming the op, its output and the argument (nothing is skipped
silently); every result is checked against the shape the program declares and rounded to the
declared dtype (fp16 programs are emulated this way; device accumulation order is not modelled);
a corrupt weight file raises ``InputError``. Importing this package needs numpy only: the protobuf
schema is loaded from coremltools' generated modules without importing coremltools itself.
"""

from __future__ import annotations

from .api import Evaluation, evaluate, load_package, load_program, supported_ops
from .runner import CoreMLEvaluatorRunner

__all__ = ["CoreMLEvaluatorRunner", "Evaluation", "evaluate", "load_package", "load_program", "supported_ops"]
