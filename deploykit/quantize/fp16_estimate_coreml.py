"""Estimating a Core ML fp16 program from its fp32 package, with deploykit's evaluator.

The FLOAT16 conversion stores every float constant in fp16 and computes every op in fp16; the
evaluator emulates a declared-fp16 program by rounding each op's result (``coreml_eval``). Here the
fp32 program is run the same way: its float constants rounded to fp16 and its main block's results
rounded, except the constants of the layers kept in float32. Layers are
conv / conv_transpose / linear / matmul ops named by their first output; the fp16 conversion finds
them by their weight's fingerprint (``selector_keys``, ``coreml_common.fp16_compute_precision``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import numpy as np

from deploykit.converters.coreml_common import weight_fingerprint
from deploykit.quantize.fp16_mixed import max_rel_error

LAYERS = ("conv", "conv_transpose", "linear", "matmul")


class CoreMLFp16Estimate:
    def __init__(self, package: Path, feeds: list[dict], floors: dict[str, float]):
        from deploykit.runners.coreml_eval import load_program

        self.program = load_program(package)
        self.feeds = feeds
        self.floors = floors
        self._constants: dict[str, tuple[str, ...]] = {}
        self._fingerprints: dict[str, tuple] = {}
        for node in self.program.steps:
            if node.type not in LAYERS or not node.outputs:
                continue
            names = tuple(b.name for binds in node.inputs.values() for b in binds
                          if getattr(b, "name", None) in self.program.constants)
            weights = [self.program.constants[b.name] for arg in ("weight", "y", "x") for b in node.inputs.get(arg, ())
                       if getattr(b, "name", None) in self.program.constants
                       and np.ndim(self.program.constants[b.name]) >= 2]
            if weights:
                self._constants[node.outputs[0].name] = names
                self._fingerprints[node.outputs[0].name] = weight_fingerprint(weights[0])
        self.layers = tuple(self._constants)
        self._rounded = {name: _fp16(value) for name, value in self.program.constants.items()}
        self._reference = self._run(self.program, None)

    def selector_keys(self, kept) -> tuple:
        """What the fp16 conversion's op selector recognizes the kept layers by."""
        return tuple(self._fingerprints[name] for name in kept)

    def error(self, kept: frozenset[str]) -> float:
        exact = {c for layer in kept for c in self._constants.get(layer, ())}
        constants = {name: self.program.constants[name] if name in exact else value for name, value in self._rounded.items()}
        program = dataclasses.replace(self.program, constants=MappingProxyType(constants))
        # Every result is rounded, the kept layers' too: the fp16 op that reads a float32 layer casts its
        # result to fp16 first. Keeping a layer saves the rounding of its weights and of its own arithmetic.
        return max_rel_error(self._reference, self._run(program, _always), self.floors)

    def _run(self, program, rounding) -> list[dict]:
        from deploykit.runners.coreml_eval.program import run

        return [run(program, feed, fp16_results=rounding)[0] for feed in self.feeds]


def _always(node) -> bool:
    return True


def _fp16(value):
    if isinstance(value, np.ndarray) and value.dtype == np.float32:
        rounded = value.astype(np.float16).astype(np.float32)
        rounded.flags.writeable = False
        return rounded
    return value
