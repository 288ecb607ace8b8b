"""``load_program`` / ``load_package`` / ``evaluate`` / ``supported_ops`` and the small cache of loaded packages.

A package holds an ML Program (``program.Program``) or a pipeline of models (``pipeline.Pipeline``: a detector's ML
Program and NonMaximumSuppression model). ``load_program`` is for callers that work on the program's ops (they take
ML Programs only); ``load_package``, ``evaluate`` and the runner take either.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping, overload

import numpy as np

from deploykit.formats.coreml.package import BlobStore, load_model, locate

from . import ops
from .pipeline import Pipeline, compile_pipeline, is_pipeline, run_pipeline
from .program import Program, compile_model, run

_CACHE_SIZE = 4
_cache: OrderedDict[tuple, Program | Pipeline] = OrderedDict()
_lock = threading.Lock()


@dataclass(frozen=True)
class Evaluation:
    """What ``evaluate(..., keep_intermediates=True)`` returns.

    ``outputs``: by the model's output names. ``intermediates``: the result of every non-constant
    op, keyed by MIL value name in program order (constants and decompressed weights are left
    out), in the declared dtype, for finding where two runs start to diverge. ``op_types``: MIL
    value name -> type of the op that produced it.
    """

    outputs: Mapping[str, np.ndarray]
    intermediates: Mapping[str, np.ndarray]
    op_types: Mapping[str, str]


def load_program(path) -> Program:
    """Read and compile an ML Program package (no caching): weights are decoded and decompressed here."""
    files = locate(path)
    return compile_model(load_model(files), BlobStore(files))


def load_package(path) -> Program | Pipeline:
    """Read and compile a package, an ML Program or a pipeline (no caching)."""
    files = locate(path)
    model = load_model(files)
    return compile_pipeline(model, BlobStore(files)) if is_pipeline(model) else compile_model(model, BlobStore(files))


def run_package(loaded: Program | Pipeline, feeds, keep_intermediates: bool = False, threads: int | None = 1):
    """``program.run`` or ``pipeline.run_pipeline``, whichever ``loaded`` is."""
    if isinstance(loaded, Pipeline):
        return run_pipeline(loaded, feeds, keep_intermediates, threads)
    return run(loaded, feeds, keep_intermediates, threads)


def cached_program(path) -> Program | Pipeline:
    """``load_package`` through a small LRU cache keyed by the package's files and their mtimes."""
    key = _fingerprint(Path(path))
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    program = load_package(path)
    with _lock:
        _cache[key] = program
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return program


def _fingerprint(root: Path) -> tuple:
    if not root.is_dir():
        return (str(root),)  # load_program raises the proper error
    stats = []
    for f in sorted(root.rglob("*")):
        if f.is_file():
            st = f.stat()
            stats.append((str(f.relative_to(root)), st.st_mtime_ns, st.st_size))
    return (str(root.resolve()), tuple(stats))


@overload
def evaluate(path, feeds: Mapping[str, Any], *, keep_intermediates: Literal[False] = ...,
             threads: int | None = ...) -> dict[str, np.ndarray]: ...
@overload
def evaluate(path, feeds: Mapping[str, Any], *, keep_intermediates: Literal[True],
             threads: int | None = ...) -> Evaluation: ...


def evaluate(path, feeds, *, keep_intermediates=False, threads=1):
    """Run the ML Program (or pipeline) saved at ``path`` (an .mlpackage) on ``feeds`` with numpy.

    Returns the outputs by the model's output names, in their declared dtypes. With
    ``keep_intermediates=True`` returns an ``Evaluation`` that also holds every op's result.

    fp16 programs are emulated by rounding each op's result to its declared type; each op is
    computed in float32 and rounded once, so the accumulation order and intermediate rounding of
    the GPU / Neural Engine (and of Core ML's CPU fp16 kernels) are not modelled: expect fp16
    results to differ from a device by a few fp16 ulps per layer, not bit-exactly.

    ``threads`` caps BLAS threads during the run (default 1, see ``program.run``; None leaves
    BLAS alone).

    Raises ``UnsupportedOperatorError`` for an op or argument value the evaluator does not
    implement, ``InputError`` for a missing or corrupt package, ``UsageError`` for bad feeds.
    """
    program = cached_program(path)
    outputs, intermediates = run_package(program, feeds, keep_intermediates, threads)
    if not keep_intermediates:
        return outputs
    return Evaluation(outputs=outputs, intermediates=intermediates, op_types=dict(program.op_types))


def supported_ops() -> list[str]:
    """Every MIL op type the evaluator implements, sorted."""
    return sorted(ops.registered())
