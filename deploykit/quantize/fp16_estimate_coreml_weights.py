"""Estimating the fp16-weights, float32-compute Core ML program (``coreml_fp16_weights``) from its fp32 package.

The fp32 program runs in deploykit's evaluator with the layer weights rounded to fp16 and every result
in float32: exactly the rewritten program's arithmetic (its casts widen fp16 exactly). A unit is one
weight constant, named as the rewrite's ``keep`` names it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import numpy as np

from deploykit.quantize.coreml_fp16_weights import LAYERS, WEIGHT_ARGUMENTS
from deploykit.quantize.fp16_mixed import SampledEstimate


class CoreMLWeightsEstimate(SampledEstimate):
    unit = "weight"
    plain_is_new = True  # the all-fp16-weights program is another artifact than the failed FLOAT16 one
    label = "fp16 weights, float32 compute"

    def __init__(self, package: Path, feeds: list[dict], floors: dict[str, float]):
        from deploykit.runners.coreml_eval import load_program

        self.program = load_program(package)
        names = []
        for step in self.program.steps:
            if step.type not in LAYERS:
                continue
            for argument in WEIGHT_ARGUMENTS:
                for binding in step.inputs.get(argument, ()):
                    value = self.program.constants.get(getattr(binding, "name", None))
                    if isinstance(value, np.ndarray) and value.dtype == np.float32:
                        names.append(binding.name)
        self.layers = tuple(dict.fromkeys(names))
        self.unit_bytes = {name: self.program.constants[name].nbytes for name in self.layers}
        self._start(feeds, floors)

    def selector_keys(self, kept) -> tuple[str, ...]:
        return tuple(kept)

    def _outputs(self, kept, feeds) -> list[dict]:
        from deploykit.runners.coreml_eval.program import run

        program = self.program
        if kept is not None:
            constants = dict(self.program.constants)
            for name in self.layers:
                if name not in kept:
                    rounded = constants[name].astype(np.float16).astype(np.float32)
                    rounded.flags.writeable = False
                    constants[name] = rounded
            program = dataclasses.replace(self.program, constants=MappingProxyType(constants))
        return [run(program, feed)[0] for feed in feeds]
