"""Estimating a Core ML fp16 program from its fp32 package, with deploykit's evaluator.

The FLOAT16 conversion stores every float constant in fp16 and computes every op in fp16; the
evaluator emulates a declared-fp16 program by rounding each op's result (``coreml_eval``). Here the
fp32 program is run the same way: its float constants and its main block's results rounded to fp16,
except inside the segments kept in float32.

The unit kept is a *segment*, a run of consecutive ops of the main block (the program cut into
``SEGMENTS`` equal runs), not a single layer: on Core ML the error of fp16 is mostly the rounding of
every intermediate result, not of the weights. Measured on PP-OCRv6's recogniser: all-fp16 0.0154 of
the range, the best single conv kept in float32 0.0118 and no second one lowering it further, while
TFLite (fp16 weights, float32 arithmetic) is at 0.0113 with no layer kept. A segment in float32 keeps
its results and its weights exact, and its ops leave the Neural Engine (which computes fp16 only),
so the search keeps as few as it can (``fp16_mixed``). The fp16 conversion finds the kept ops by
name (``selector_keys``; ``coreml_common.fp16_compute_precision``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import numpy as np

from deploykit.quantize.fp16_mixed import max_rel_error

SEGMENTS = 16


class CoreMLFp16Estimate:
    max_kept = SEGMENTS // 4  # a quarter of the program in float32 at most
    unit = "segment"

    def __init__(self, package: Path, feeds: list[dict], floors: dict[str, float]):
        from deploykit.runners.coreml_eval import load_program

        self.program = load_program(package)
        self.feeds = feeds
        self.floors = floors
        steps = [s for s in self.program.steps if s.outputs]
        count = min(SEGMENTS, len(steps))
        bounds = np.linspace(0, len(steps), count + 1).astype(int)
        self._ops: dict[str, tuple[str, ...]] = {}  # segment label -> its ops' first outputs
        self._constants: dict[str, set[str]] = {}  # segment label -> constants its ops read
        for start, stop in zip(bounds[:-1], bounds[1:]):
            if stop <= start:
                continue
            chunk = steps[start:stop]
            label = f"ops {start + 1}-{stop} of {len(steps)} ({chunk[0].outputs[0].name} .. {chunk[-1].outputs[0].name})"
            self._ops[label] = tuple(s.outputs[0].name for s in chunk)
            self._constants[label] = {b.name for s in chunk for binds in s.inputs.values() for b in binds
                                      if getattr(b, "name", None) in self.program.constants}
        self.layers = tuple(self._ops)
        self._rounded = {name: _fp16(value) for name, value in self.program.constants.items()}
        self._reference = self._run(self.program, None)

    def selector_keys(self, kept) -> tuple[str, ...]:
        """The saved names of the kept segments' ops (first output), which the op selector matches."""
        return tuple(name for label in kept for name in self._ops[label])

    def error(self, kept: frozenset[str]) -> float:
        exact = set().union(*(self._constants[label] for label in kept)) if kept else set()
        constants = {name: self.program.constants[name] if name in exact else value for name, value in self._rounded.items()}
        program = dataclasses.replace(self.program, constants=MappingProxyType(constants))
        in_fp32 = frozenset(self.selector_keys(kept))
        return max_rel_error(self._reference, self._run(program, lambda node: node.outputs[0].name not in in_fp32),
                             self.floors)

    def _run(self, program, rounding) -> list[dict]:
        from deploykit.runners.coreml_eval.program import run

        return [run(program, feed, fp16_results=rounding)[0] for feed in self.feeds]


def _fp16(value):
    if isinstance(value, np.ndarray) and value.dtype == np.float32:
        rounded = value.astype(np.float16).astype(np.float32)
        rounded.flags.writeable = False
        return rounded
    return value
