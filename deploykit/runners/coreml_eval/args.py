"""What an op implementation sees: its arguments, read by name, with every read recorded.

The evaluator's main safety rule lives here. After an implementation returns, every argument the
program gave the op must have been read (or explicitly ignored with a reason); an argument the
implementation never looked at means the program asks for something the evaluator does not
compute, and that raises ``UnsupportedOperatorError`` instead of silently giving wrong numbers.
String options are checked against the values the implementation handles in the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from deploykit.core.errors import InputError, UnsupportedOperatorError

_REQUIRED = object()


@dataclass(frozen=True)
class Binding:
    """One argument: the name of a value computed at run time, or a constant decoded at load."""

    name: str | None = None
    value: Any = None


@dataclass(frozen=True)
class TensorDecl:
    """A named tensor with its declared type; ``shape`` has None for unknown dims, or is None."""

    name: str
    dtype: Any  # values.DType
    shape: tuple[int | None, ...] | None


@dataclass(frozen=True)
class OpNode:
    """One operation of the program, ready to run; ``blocks`` are its nested blocks (control flow)."""

    type: str
    name: str
    inputs: Mapping[str, tuple[Binding, ...]]
    outputs: tuple[TensorDecl, ...]
    blocks: tuple[Any, ...] = ()  # program.Block


class Args:
    """The arguments of one op invocation. ``opset`` is the iOS version of the program (15..18)."""

    def __init__(self, op: OpNode, env: Mapping[str, Any], opset: int, run_block=None):
        self.op = op
        self.opset = opset
        self._env = env
        self._run_block = run_block
        self._read: set[str] = set()

    # -- reading ------------------------------------------------------------------------------
    def has(self, key: str) -> bool:
        return key in self.op.inputs

    def values(self, key: str) -> list:
        """All values bound to a (possibly variadic) argument, e.g. concat's ``values``."""
        if key not in self.op.inputs:
            raise InputError(f"Core ML program: {self.where} lacks its required argument '{key}'")
        self._read.add(key)
        return [self._resolve(b) for b in self.op.inputs[key]]

    def tensor(self, key: str) -> np.ndarray:
        vals = self.values(key)
        if len(vals) != 1:
            raise self.unsupported(key, f"{len(vals)} values", "a single tensor is expected")
        return np.asarray(vals[0])

    def optional(self, key: str) -> np.ndarray | None:
        return self.tensor(key) if self.has(key) else None

    def scalar(self, key: str, default: Any = _REQUIRED):
        if not self.has(key):
            return self._default(key, default)
        arr = self.tensor(key)
        if arr.size != 1:
            raise self.unsupported(key, arr.tolist(), "a scalar is expected")
        return arr.reshape(()).item()

    def ints(self, key: str, default: Any = _REQUIRED) -> tuple[int, ...]:
        if not self.has(key):
            return self._default(key, default)
        return tuple(int(v) for v in np.asarray(self.tensor(key)).reshape(-1))

    def bools(self, key: str, default: Any = _REQUIRED) -> tuple[bool, ...]:
        if not self.has(key):
            return self._default(key, default)
        return tuple(bool(v) for v in np.asarray(self.tensor(key)).reshape(-1))

    def string(self, key: str, default: Any = _REQUIRED, choices: tuple[str, ...] | None = None) -> str:
        value = self._default(key, default) if not self.has(key) else self.values(key)[0]
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value.item()
        if not isinstance(value, str):
            raise self.unsupported(key, value, "a string is expected")
        if choices is not None and value not in choices:
            raise self.unsupported(key, value, f"the evaluator handles {', '.join(choices)}")
        return value

    def run_block(self, index: int, values: list) -> list:
        """Run nested block ``index`` with its inputs bound to ``values``: its outputs, in order."""
        if index >= len(self.op.blocks):
            raise UnsupportedOperatorError(f"Core ML evaluator: {self.where} has {len(self.op.blocks)} nested blocks, "
                                           f"the implementation needs block {index}")
        return self._run_block(self.op.blocks[index], values)

    def ignore(self, *keys: str) -> None:
        """Mark arguments as deliberately unused (the caller's comment must say why)."""
        self._read.update(keys)

    # -- outputs and errors ---------------------------------------------------------------------
    @property
    def where(self) -> str:
        outs = ", ".join(repr(o.name) for o in self.op.outputs)
        return f"op '{self.op.type}' (output {outs})"

    def output(self, index: int = 0) -> TensorDecl:
        return self.op.outputs[index]

    def unsupported(self, key: str, value: Any, detail: str) -> UnsupportedOperatorError:
        return UnsupportedOperatorError(
            f"Core ML evaluator: {self.where} has {key}={_short(value)}, which it does not handle: {detail}",
            hint="the numpy evaluator refuses what it cannot compute exactly; check numerics on a Mac instead",
        )

    def finish(self) -> None:
        """Raise if the program gave an argument the implementation never read."""
        unread = sorted(set(self.op.inputs) - self._read)
        if unread:
            key = unread[0]
            value = self.op.inputs[key][0].value if self.op.inputs[key][0].name is None else self.op.inputs[key][0].name
            raise self.unsupported(key, value, "the implementation does not know this argument")

    def _resolve(self, binding: Binding):
        if binding.name is None:
            return binding.value
        try:
            return self._env[binding.name]
        except KeyError:
            raise InputError(f"Core ML program: {self.where} reads '{binding.name}', which no earlier op produced") from None

    def _default(self, key: str, default: Any):
        if default is _REQUIRED:
            raise InputError(f"Core ML program: {self.where} lacks its required argument '{key}'")
        return default


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, tuple):
        value = list(value)
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
