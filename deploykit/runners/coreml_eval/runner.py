"""``CoreMLEvaluatorRunner``: the numpy evaluator behind deploykit's runner contract
(``deploykit.runners.base.Runner``, Polygraphy-style).

    with CoreMLEvaluatorRunner("model.mlpackage") as runner:
        outputs = runner.infer({"x": x})

``activate`` loads the program once (through the evaluator's cache, so weight.bin is read once);
the base class's ``infer`` checks the feeds' names, static dims and dtype kind, then calls
``infer_impl``. ``trace`` returns every floating intermediate for divergence localization.

A pipeline (a detector: ML Program + NonMaximumSuppression) runs the same way. Its optional inputs (the NMS
thresholds) are not in ``input_specs``, which list what a caller must feed; ``infer`` accepts them besides.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from deploykit.core.types import TensorSpec
from deploykit.runners.base import Intermediate, Runner

from .api import cached_program, run_package
from .pipeline import Pipeline
from .program import Program


class CoreMLEvaluatorRunner(Runner):
    name = "coreml-numpy"
    notes = (
        "Core ML ML Program evaluated with numpy (deploykit.runners.coreml_eval)",
        "fp16 programs: each op computed in float32 and rounded to fp16; device GPU / Neural Engine "
        "accumulation order is not modelled",
    )

    def __init__(self, path, *, threads: int | None = 1):
        super().__init__()
        self.path = path
        self.threads = threads  # BLAS threads during inference (see program.run)
        self._program: Program | Pipeline | None = None
        self._optional: tuple[TensorSpec, ...] = ()

    def activate_impl(self):
        self._program = cached_program(self.path)
        inputs = tuple(TensorSpec(d.name, _shape(d.shape), _dtype_name(d.dtype)) for d in self._program.inputs)
        self._optional = tuple(TensorSpec(d.name, _shape(d.shape), _dtype_name(d.dtype))
                               for d in getattr(self._program, "optional", ()))
        outputs = tuple(TensorSpec(name, _shape(d.shape), _dtype_name(d.dtype))
                        for name, d in zip(self._program.output_names, self._program.outputs))
        return inputs, outputs

    def deactivate_impl(self) -> None:
        self._program = None

    @property
    def program(self) -> Program | Pipeline:
        """The loaded program or pipeline (the runner must be active)."""
        self._require_active()
        return self._program

    @property
    def optional_specs(self) -> tuple[TensorSpec, ...]:
        """Inputs a caller may add to the feeds (a detector's ``iouThreshold`` and ``confidenceThreshold``)."""
        self._require_active()
        return self._optional

    def check_feeds(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        optional = {spec.name for spec in self._optional}
        ready = super().check_feeds({k: v for k, v in feeds.items() if k not in optional})
        ready.update((k, np.asarray(v, np.float64)) for k, v in feeds.items() if k in optional)
        return ready

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, Any]:
        outputs, _ = run_package(self._program, feeds, threads=self.threads)
        return outputs

    def trace(self, feeds: Mapping[str, Any]) -> list[Intermediate]:
        """Every floating op result in execution order, as float32 (fp16 values widen exactly).
        ``inputs`` lists the traced values each op consumed (constants and model inputs left out)."""
        ready = self.check_feeds(feeds)
        _, values = run_package(self._program, ready, keep_intermediates=True, threads=self.threads)
        records: list[Intermediate] = []
        traced: set[str] = set()
        stages = self._program.stages if isinstance(self._program, Pipeline) else (self._program,)
        for stage in stages:
            if not isinstance(stage, Program):  # a pipeline's NMS model: its outputs, read from the stage before
                consumed = tuple(name for name in stage.input_names if name in traced)
                records.extend(Intermediate(name, name, "NonMaximumSuppression", values[name].astype(np.float32),
                                            consumed) for name in stage.output_names)
                traced.update(stage.output_names)
                continue
            for node in stage.steps:
                consumed = tuple(b.name for bindings in node.inputs.values() for b in bindings if b.name in traced)
                for out in node.outputs:
                    value = values[out.name]
                    if np.issubdtype(value.dtype, np.floating):
                        records.append(Intermediate(out.name, out.name, node.type, value.astype(np.float32), consumed))
                        traced.add(out.name)
        return records


def _dtype_name(dtype) -> str:
    """numpy's name of a tensor's dtype; "str" and "dict" for a classifier's label and probabilities."""
    return dtype.public.name if dtype.public is not None else dtype.name


def _shape(shape) -> tuple:
    return tuple(shape) if shape is not None else ()
