"""Flexible input sizes: ``--input x=1x3x[224,320]x[224,320]`` (enumerated) and ``x=(1..8)x3x(160..640)x(160..640)`` (ranges).

A ``FlexibleShape`` is what one input accepts. The rest of deploykit keeps working on static
shapes: the source input's ``TensorSpec.shape`` is the default shape (the first enumerated size, the
low end of each range) and ``TensorSpec.flexible`` carries this record, which the converters read
(Core ML ``EnumeratedShapes`` / ``RangeDim``, TFLite dynamic dimensions) and parity walks
(``check_shapes``).

Decisions, and why:
- Brackets on several dimensions mean every combination (``[224,320]x[224,320]`` is four sizes):
  that is what the notation says per dimension. Exactly the listed shapes are written with ``|``:
  ``x=1x3x224x224|1x3x320x320``.
- One input takes enumerated sizes or ranges, not both: Core ML cannot express the mix.
- A range needs both ends: parity checks the low end, the middle and the high end, and an
  unbounded end cannot be checked. At most ``MAX_SHAPES`` enumerated shapes, each checked.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

from deploykit.core.errors import UsageError

MAX_SHAPES = 32
_RANGE = re.compile(r"^\((\d+)\.\.(\d+)\)$")
_LIST = re.compile(r"^\[(\d+(?:,\d+)*)\]$")


@dataclass(frozen=True)
class FlexibleShape:
    """Either ``shapes`` (enumerated, the default first) or ``bounds`` (one ``(low, high)`` per dimension)."""

    kind: str  # "enumerated" | "range"
    shapes: tuple[tuple[int, ...], ...] = ()
    bounds: tuple[tuple[int, int], ...] = ()

    @property
    def default(self) -> tuple[int, ...]:
        return self.shapes[0] if self.kind == "enumerated" else tuple(low for low, _ in self.bounds)

    @property
    def dim_bounds(self) -> tuple[tuple[int, int], ...]:
        """(least, greatest) per dimension: what a runtime with dynamic dimensions must allow."""
        if self.kind == "range":
            return self.bounds
        return tuple((min(column), max(column)) for column in zip(*self.shapes))

    def check_shapes(self) -> tuple[tuple[int, ...], ...]:
        """The sizes parity runs at: every enumerated shape; a range's low end, middle and high end."""
        if self.kind == "enumerated":
            return self.shapes
        points = [tuple(low for low, _ in self.bounds), tuple((low + high) // 2 for low, high in self.bounds),
                  tuple(high for _, high in self.bounds)]
        return tuple(dict.fromkeys(points))

    def accepts(self, shape) -> bool:
        shape = tuple(int(d) for d in shape)
        if self.kind == "enumerated":
            return shape in self.shapes
        return len(shape) == len(self.bounds) and all(low <= d <= high for d, (low, high) in zip(shape, self.bounds))

    def describe(self) -> str:
        if self.kind == "enumerated":
            return " | ".join("x".join(map(str, s)) for s in self.shapes)
        return "x".join(str(low) if low == high else f"({low}..{high})" for low, high in self.bounds)

    def compact(self) -> str:
        """Short text for a table cell: ``1x3x[224,320]x[224,320]`` when the sizes are every combination of
        per-dimension choices, else ``4 sizes (default 1x3x224x224)``."""
        if self.kind == "range":
            return self.describe()
        columns = [tuple(dict.fromkeys(column)) for column in zip(*self.shapes)]
        if len(self.shapes) == len(set(itertools.product(*columns))):
            return "x".join(str(c[0]) if len(c) == 1 else "[" + ",".join(map(str, c)) + "]" for c in columns)
        return f"{len(self.shapes)} sizes (default {'x'.join(map(str, self.default))})"

    def to_json(self) -> dict[str, Any]:
        if self.kind == "enumerated":
            return {"kind": "enumerated", "shapes": [list(s) for s in self.shapes]}
        return {"kind": "range", "bounds": [list(b) for b in self.bounds]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "FlexibleShape":
        if data.get("kind") == "enumerated":
            return cls("enumerated", shapes=tuple(tuple(int(d) for d in s) for s in data["shapes"]))
        return cls("range", bounds=tuple((int(lo), int(hi)) for lo, hi in data["bounds"]))


def flexible_of(spec) -> FlexibleShape | None:
    """The ``FlexibleShape`` a ``TensorSpec`` carries, or None for a fixed-size input."""
    data = getattr(spec, "flexible", None)
    return FlexibleShape.from_json(data) if data else None


def has_flexible(specs) -> bool:
    return any(getattr(s, "flexible", None) for s in specs)


def parse_dims(raw: str, text: str):
    """``"1x3x[224,320]x(16..64)"`` -> a static tuple, or a FlexibleShape. ``raw`` is the whole --input for errors."""
    if "|" in text:
        shapes = tuple(dict.fromkeys(_static(raw, part) for part in text.split("|")))
        if len({len(s) for s in shapes}) != 1:
            raise UsageError(f"--input {raw!r}: every shape listed with | must have the same rank")
        return _enumerated(raw, shapes)
    tokens = _tokens(text)
    if not any(t.startswith(("[", "(")) for t in tokens):
        return _static(raw, text)
    kinds = {"list" if t.startswith("[") else "range" for t in tokens if t.startswith(("[", "("))}
    if len(kinds) > 1:
        raise UsageError(f"--input {raw!r}: one input takes enumerated sizes [a,b] or ranges (lo..hi), not both",
                         hint="Core ML cannot express both in one input")
    if kinds == {"range"}:
        bounds = tuple(_range(raw, t) for t in tokens)
        return FlexibleShape("range", bounds=bounds)
    choices = [_choices(raw, t) for t in tokens]
    shapes = tuple(itertools.islice(itertools.product(*choices), MAX_SHAPES + 1))
    return _enumerated(raw, shapes)


def _enumerated(raw: str, shapes: tuple) -> FlexibleShape | tuple:
    if len(shapes) > MAX_SHAPES:
        raise UsageError(f"--input {raw!r}: more than {MAX_SHAPES} sizes", hint="parity checks every enumerated size; "
                         "list fewer, or give a range (lo..hi)")
    if len(shapes) == 1:
        return shapes[0]
    return FlexibleShape("enumerated", shapes=tuple(shapes))


def _tokens(text: str) -> list[str]:
    """Dimensions split on ``x`` (or ``,`` outside brackets)."""
    tokens, depth, current = [], 0, ""
    for char in text:
        if char in "[(":
            depth += 1
        elif char in "])":
            depth -= 1
        if depth == 0 and char in "x,":
            tokens.append(current)
            current = ""
        else:
            current += char
    tokens.append(current)
    return [t.strip() for t in tokens]


def _static(raw: str, text: str) -> tuple[int, ...]:
    dims = []
    for token in _tokens(text):
        if not token.isdigit() or int(token) <= 0:
            raise UsageError(f"bad --input {raw!r}: {token!r} is not a positive size",
                             hint="write NAME=1x3x224x224, [224,320] for enumerated sizes or (160..640) for a range")
        dims.append(int(token))
    return tuple(dims)


def _range(raw: str, token: str) -> tuple[int, int]:
    if token.isdigit():
        return int(token), int(token)
    match = _RANGE.match(token)
    if not match:
        raise UsageError(f"bad --input {raw!r}: {token!r} is not a size or a range (lo..hi)",
                         hint="both ends are needed, e.g. (160..640): parity checks the ends and the middle")
    low, high = int(match[1]), int(match[2])
    if not 0 < low < high:
        raise UsageError(f"bad --input {raw!r}: the range {token} must have 0 < low < high")
    return low, high


def _choices(raw: str, token: str) -> tuple[int, ...]:
    if token.isdigit():
        return (int(token),)
    match = _LIST.match(token)
    if not match:
        raise UsageError(f"bad --input {raw!r}: {token!r} is not a size or a list [a,b,...]")
    values = tuple(dict.fromkeys(int(v) for v in match[1].split(",")))
    if any(v <= 0 for v in values):
        raise UsageError(f"bad --input {raw!r}: every size must be positive")
    return values


def refuse(source, label: str, why: str):
    """The error of a conversion path that cannot keep flexible sizes."""
    from deploykit.core.errors import ConversionError

    names = ", ".join(t.name for t in source.inputs if getattr(t, "flexible", None))
    return ConversionError(f"{label} cannot make flexible input sizes ({names}): {why}",
                           hint="give one size per input for this target (and convert once per size), or convert "
                                "a PyTorch or Keras source, whose paths keep flexible sizes")


def carry(artifact_inputs, source_inputs):
    """An artifact's inputs with the sizes the source declared, for a runtime that resizes any dimension left
    unknown (LiteRT): the sizes deploykit verified are the ones to promise. (A Core ML package states its own.)"""
    if not has_flexible(source_inputs):
        return tuple(artifact_inputs)
    from dataclasses import replace

    by_name = {s.name: s for s in source_inputs}
    carried = []
    for index, spec in enumerate(artifact_inputs):
        source = by_name.get(spec.original_name or spec.name)
        if source is None and len(artifact_inputs) == len(source_inputs):
            source = source_inputs[index]
        if source is not None and source.flexible and len(spec.shape) == len(source.shape):
            spec = replace(spec, shape=tuple(source.shape),
                           flexible={**source.flexible, "runtime": "resize_tensor_input (any size within the bounds)"})
        carried.append(spec)
    return tuple(carried)


def sizes_to_check(inputs) -> list[tuple]:
    """The input shapes parity runs at beyond the default, one tuple of shapes (in input order) per run.

    Several flexible inputs advance together (the i-th size of each, the shorter lists repeating):
    a full product would multiply the runs, and inputs that share a size (an image and its mask)
    must not be paired with each other's other sizes."""
    flexible = [flexible_of(s) for s in inputs]
    counts = [len(f.check_shapes()) for f in flexible if f is not None]
    if not counts:
        return []
    runs = []
    for i in range(max(counts)):
        runs.append(tuple(f.check_shapes()[i % len(f.check_shapes())] if f else tuple(s.shape)
                          for f, s in zip(flexible, inputs)))
    default = tuple(tuple(s.shape) for s in inputs)
    return [run for run in dict.fromkeys(runs) if run != default]
