"""The runner contract every framework and artifact implements (Polygraphy-style).

A runner is a context manager: ``activate`` loads what it needs, ``infer(feeds)`` checks the
feeds against ``input_specs`` (names, static dimensions, dtype kind) and calls ``infer_impl``,
``deactivate`` lets go of sessions and interpreters. ``trace(feeds)`` optionally returns every
intermediate tensor the backend can expose, in execution order, for localization.

Runners take and return arrays in their own layout (an NHWC artifact wants NHWC); the parity
comparator transposes. Quantized artifact tensors are exposed as float (the runner quantizes and
dequantizes with the tensor's scale and zero point), so every runner of a pair speaks floats.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from deploykit.core.errors import UsageError
from deploykit.core.types import TensorSpec


@dataclass(frozen=True)
class Intermediate:
    """One tensor computed inside a model.

    ``name`` is unique within a trace; ``scope`` is the human name of what produced it (a Keras
    layer, a PyTorch module path, an ONNX node, a TFLite tensor name); ``op`` its operator type.
    ``inputs`` names the intermediates it consumes, or is None when the backend does not expose the
    graph (then execution order stands in for it).
    """

    name: str
    scope: str
    op: str
    value: np.ndarray
    inputs: tuple[str, ...] | None = None


class Runner:
    """Base class. Subclasses set ``name`` and implement ``activate_impl``, ``specs`` and ``infer_impl``."""

    name = "runner"
    # Lines a report prints about this runner (what ran, what it does not model).
    notes: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.is_active = False
        self.last_inference_time: float | None = None
        self._inputs: tuple[TensorSpec, ...] = ()
        self._outputs: tuple[TensorSpec, ...] = ()

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self):
        self.activate()
        return self

    def __exit__(self, *exc) -> None:
        self.deactivate()

    def activate(self) -> None:
        if not self.is_active:
            self._inputs, self._outputs = self.activate_impl()
            self.is_active = True

    def deactivate(self) -> None:
        if self.is_active:
            self.deactivate_impl()
            self.is_active = False

    def activate_impl(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        raise NotImplementedError

    def deactivate_impl(self) -> None:
        pass

    # -- metadata ----------------------------------------------------------------------------
    @property
    def input_specs(self) -> tuple[TensorSpec, ...]:
        self._require_active()
        return self._inputs

    @property
    def output_specs(self) -> tuple[TensorSpec, ...]:
        self._require_active()
        return self._outputs

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.input_specs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.output_specs]

    # -- inference ---------------------------------------------------------------------------
    def infer(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Outputs by name for one set of feeds (arrays in this runner's layout and dtype kind)."""
        ready = self.check_feeds(feeds)
        started = time.perf_counter()
        outputs = self.infer_impl(ready)
        self.last_inference_time = time.perf_counter() - started
        missing = [n for n in self.output_names if n not in outputs]
        if missing:
            raise UsageError(f"{self.name}: the backend returned no value for output(s) {', '.join(missing)}")
        return {n: np.asarray(outputs[n]) for n in self.output_names}

    def infer_impl(self, feeds: dict[str, np.ndarray]) -> Mapping[str, Any]:
        raise NotImplementedError

    def trace(self, feeds: Mapping[str, Any]) -> list[Intermediate]:
        """Every intermediate tensor the backend exposes for ``feeds``, in execution order."""
        raise UsageError(f"{self.name} cannot expose intermediate tensors", hint="run without --localize")

    def check_feeds(self, feeds: Mapping[str, Any]) -> dict[str, np.ndarray]:
        self._require_active()
        expected = {t.name: t for t in self._inputs}
        missing = [n for n in expected if n not in feeds]
        extra = [n for n in feeds if n not in expected]
        if missing or extra:
            raise UsageError(
                f"{self.name}: feeds {sorted(feeds)} do not match the inputs {list(expected)}"
                + (f" (missing {', '.join(missing)})" if missing else "")
                + (f" (unknown {', '.join(extra)})" if extra else "")
            )
        return {name: _check_one(self.name, spec, np.asarray(feeds[name])) for name, spec in expected.items()}

    def _require_active(self) -> None:
        if not self.is_active:
            raise UsageError(f"runner {self.name} is not active; use it as a context manager (with runner: ...)")


def _check_one(runner: str, spec: TensorSpec, value: np.ndarray) -> np.ndarray:
    if spec.flexible:
        from deploykit.core.flexible import FlexibleShape

        accepted = FlexibleShape.from_json(spec.flexible)
        if not accepted.accepts(value.shape):
            raise UsageError(f"{runner}: input {spec.name!r} accepts {accepted.describe()}, got {value.shape}")
    elif len(spec.shape) != value.ndim or any(
        isinstance(want, int) and want > 0 and want != got for want, got in zip(spec.shape, value.shape)
    ):
        raise UsageError(f"{runner}: input {spec.name!r} expects shape {tuple(spec.shape)}, got {value.shape}")
    want = np.dtype(spec.dtype)
    if value.dtype == want:
        return value
    # Same kind only (float64 -> float32 is fine; float -> int would silently truncate).
    kind = {"f": "float", "i": "int", "u": "int", "b": "bool"}
    if kind.get(value.dtype.kind) != kind.get(want.kind):
        raise UsageError(f"{runner}: input {spec.name!r} expects {want.name}, got {value.dtype.name}")
    return value.astype(want)

