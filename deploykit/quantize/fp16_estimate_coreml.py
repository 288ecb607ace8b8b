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

from deploykit.quantize.fp16_mixed import SampledEstimate

SEGMENTS = 16
FP16_MAX = 65504.0


class CoreMLFp16Estimate(SampledEstimate):
    max_kept = SEGMENTS // 4  # the first (greedy) search: a quarter of the program at most, besides ``required``
    unit = "segment"
    required: tuple[str, ...] = ()  # the ops beyond fp16's range, kept whatever the search finds

    def __init__(self, package: Path, feeds: list[dict], floors: dict[str, float]):
        from deploykit.runners.coreml_eval import load_program

        self.program = load_program(package)
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
        self._rounded = {name: _fp16(value) for name, value in self.program.constants.items()}
        beyond = self._beyond_fp16(steps, feeds)
        if beyond:
            label = f"{len(beyond)} op(s) with values beyond fp16's range ({beyond[0]} ..)"
            self._ops = {label: beyond, **self._ops}
            self._constants[label] = {b.name for s in steps if s.outputs[0].name in set(beyond)
                                      for binds in s.inputs.values() for b in binds
                                      if getattr(b, "name", None) in self.program.constants}
            self.required = (label,)
        self.layers = tuple(self._ops)
        self.unit_bytes = {label: sum(_float_bytes(self.program.constants[name]) for name in names)
                           for label, names in self._constants.items()}
        self._start(feeds, floors)

    def _beyond_fp16(self, steps, feeds) -> tuple[str, ...]:
        """Ops whose float32 result exceeds fp16's largest value (65504) on a parity input, and the ops that
        read such a result: in fp16 the first is inf and the second reads inf, whatever else is kept.
        openWakeWord's melspectrogram takes int16-valued audio (up to 32767): its STFT and power spectrum
        reach 1e12 before the log brings them back to about 100."""
        from deploykit.runners.coreml_eval.program import run

        large = set()
        for feed in feeds:
            _, intermediates = run(self.program, feed, keep_intermediates=True)
            large |= {name for name, value in intermediates.items()
                      if np.issubdtype(np.asarray(value).dtype, np.floating) and np.nanmax(np.abs(value), initial=0.0) > FP16_MAX}
        readers = {s.outputs[0].name for s in steps
                   if any(getattr(b, "name", None) in large for binds in s.inputs.values() for b in binds)}
        return tuple(s.outputs[0].name for s in steps if s.outputs[0].name in large | readers)

    def selector_keys(self, kept) -> tuple[str, ...]:
        """The saved names of the kept segments' ops (first output), which the op selector matches."""
        return tuple(name for label in kept for name in self._ops[label])

    def _outputs(self, kept, feeds) -> list[dict]:
        if kept is None:
            return self._run(self.program, None, feeds)
        exact = set().union(*(self._constants[label] for label in kept)) if kept else set()
        constants = {name: self.program.constants[name] if name in exact else value for name, value in self._rounded.items()}
        program = dataclasses.replace(self.program, constants=MappingProxyType(constants))
        in_fp32 = frozenset(self.selector_keys(kept))
        return self._run(program, lambda node: node.outputs[0].name not in in_fp32, feeds)

    @staticmethod
    def _run(program, rounding, feeds) -> list[dict]:
        from deploykit.runners.coreml_eval.program import run

        return [run(program, feed, fp16_results=rounding)[0] for feed in feeds]


def _float_bytes(value) -> int:
    return value.nbytes if isinstance(value, np.ndarray) and value.dtype == np.float32 else 0


def _fp16(value):
    if isinstance(value, np.ndarray) and value.dtype == np.float32:
        rounded = value.astype(np.float16).astype(np.float32)
        rounded.flags.writeable = False
        return rounded
    return value
