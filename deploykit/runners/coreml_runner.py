"""Core ML artifacts: ``MLModel.predict`` where Core ML exists (macOS), deploykit's numpy evaluator elsewhere.

``backend="auto"`` uses coremltools' ``MLModel.predict`` on macOS when the model loads there, on
``CPU_ONLY`` compute units (the reference numerics; GPU and Neural Engine run fp16 and are not
what a parity check can pin down), and the numpy evaluator of the saved ML Program
(``deploykit.runners.coreml_eval``) everywhere else. ``backend_used`` and ``notes`` say which ran
and what neither models, and reports print them.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping

import numpy as np

from deploykit.core.errors import UsageError
from deploykit.formats import coremltools_facade
from deploykit.runners.base import Intermediate, Runner

BACKENDS = ("auto", "mlmodel", "numpy")
NOT_MODELLED = "device GPU / Neural Engine fp16 accumulation is not modelled"


class CoreMLRunner(Runner):
    name = "coreml"

    def __init__(self, path, *, backend: str = "auto"):
        super().__init__()
        if backend not in BACKENDS:
            raise UsageError(f"unknown Core ML backend {backend!r}", hint=f"one of {', '.join(BACKENDS)}")
        self.path = str(path)
        self.backend = backend
        self.backend_used: str | None = None
        self._mlmodel = None
        self._evaluator = None
        self.notes = ()

    def activate_impl(self):
        why_not = None
        if self.backend in ("auto", "mlmodel"):
            self._mlmodel, why_not = _load_mlmodel(self.path)
            if self._mlmodel is None and self.backend == "mlmodel":
                raise UsageError(f"MLModel.predict is not available: {why_not}", hint="use the numpy evaluator (backend='numpy')")
        if self._mlmodel is not None:
            self.backend_used = "Core ML MLModel.predict (CPU_ONLY)"
            self.notes = (f"Core ML run by {self.backend_used}", NOT_MODELLED)
            from deploykit.formats.coreml.spec import signature

            return signature(self._mlmodel.get_spec())
        from deploykit.runners.coreml_eval import CoreMLEvaluatorRunner

        self._evaluator = CoreMLEvaluatorRunner(self.path).__enter__()
        self.backend_used = "Core ML numpy evaluator"
        self.notes = ("Core ML run by deploykit's numpy evaluator of the saved ML Program"
                      + (f" ({why_not})" if why_not else ""), NOT_MODELLED)
        return _with_accepted_shapes(self.path, self._evaluator.input_specs), self._evaluator.output_specs

    def deactivate_impl(self) -> None:
        if self._evaluator is not None:
            self._evaluator.__exit__(None, None, None)
        self._evaluator = self._mlmodel = None

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, Any]:
        if self._mlmodel is not None:
            return {k: np.asarray(v) for k, v in self._mlmodel.predict(feeds).items()}
        return self._evaluator.infer(feeds)

    def trace(self, feeds: Mapping[str, Any]) -> list[Intermediate]:
        from deploykit.runners.coreml_eval import evaluate

        ready = self.check_feeds(feeds)
        # MLModel.predict exposes no intermediates; the evaluator does, on every platform.
        evaluation = evaluate(self.path, ready, keep_intermediates=True)
        records = []
        for name, value in evaluation.intermediates.items():
            array = np.asarray(value)
            if np.issubdtype(array.dtype, np.floating):
                op = evaluation.op_types.get(name, "?")
                records.append(Intermediate(name, name, op, array.astype(np.float32)))
        return records


def _with_accepted_shapes(path: str, specs):
    """The evaluator's inputs with the sizes the package accepts: Core ML refuses any other size, so must this."""
    from dataclasses import replace

    from deploykit.formats.coreml.spec import flexible_inputs

    accepted = flexible_inputs(path)
    return tuple(replace(s, flexible=accepted[s.name]) if s.name in accepted else s for s in specs)


def _load_mlmodel(path: str):
    """(MLModel, None) when Core ML can predict here, else (None, the reason)."""
    if sys.platform != "darwin":
        return None, "MLModel.predict needs macOS"
    try:
        ct = coremltools_facade.package()
        model = ct.models.MLModel(path, compute_units=ct.ComputeUnit.CPU_ONLY)
    except Exception as exc:  # a broken Core ML install must not stop verification
        return None, f"coremltools could not load the model: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
    if getattr(model, "__proxy__", None) is None:
        return None, "coremltools loaded the model without a Core ML runtime"
    return model, None
