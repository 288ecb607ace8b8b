"""Pair source tensors with artifact tensors and say how to move arrays between their layouts.

Uses the NCHW/NHWC permutations of ``deploykit.core.layouts``; adds the general channels-first <->
channels-last permutation for ranks 3 and 5, which onnx2tf also applies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from deploykit.core.layouts import NCHW_TO_NHWC, NHWC_TO_NCHW, permute
from deploykit.core.types import TensorSpec

# What a comparison's layout note ends with when the comparison, not the shape, chose the reading.
SETTLED = "; the shape reads the same in both layouts, and this reading matched the source"


@dataclass(frozen=True)
class Binding:
    """Source tensor ``source`` is artifact tensor ``artifact``; ``order`` permutes a source array into the
    artifact's layout (None: same layout). ``problem`` says why they cannot be compared, if so.

    ``alternatives``: the channel moves under which the artifact's shape is the source's too (2x4x4x4, or a
    2x3x3 signal): the shape cannot tell whether the converter moved the channel axis (onnx2tf moves it last
    for every rank-3 to rank-5 tensor it can). The same-layout reading is tried first; ``pipeline.verify``
    compares these readings when it does not match, and ``settled`` marks the one that did."""

    source: str
    artifact: str | None
    order: tuple[int, ...] | None = None
    problem: str | None = None
    alternatives: tuple[tuple[int, ...], ...] = ()
    settled: bool = False

    @property
    def note(self) -> str | None:
        if self.order is None:
            return None
        return f"transposed {self.order} (channels-first <-> channels-last)" + (SETTLED if self.settled else "")

    def reading(self, order: tuple[int, ...]) -> "Binding":
        """This binding read with the channel move ``order`` (one of ``alternatives``)."""
        return replace(self, order=order, alternatives=(), settled=True)

    def to_artifact(self, value: np.ndarray) -> np.ndarray:
        return value if self.order is None else np.ascontiguousarray(value.transpose(self.order))

    def to_source(self, value: np.ndarray) -> np.ndarray:
        return value if self.order is None else np.ascontiguousarray(value.transpose(np.argsort(self.order)))

    def reference(self, value: np.ndarray) -> np.ndarray:
        """The source's output as the artifact's counterpart computes it (a classifier's added softmax)."""
        return value


def channel_orders(rank: int) -> list[tuple[int, ...]]:
    """Permutations that move the channel axis between position 1 and last, for rank >= 3."""
    if rank == 4:
        return [NCHW_TO_NHWC, NHWC_TO_NCHW]
    if rank < 3:
        return []
    last = (0, *range(2, rank), 1)
    first = (0, rank - 1, *range(1, rank - 1))
    return [last, first]


def bind(source_specs, artifact_specs, recorded_layouts: dict[str, str | None] | None = None) -> tuple[Binding, ...]:
    """One Binding per source tensor: by name, else by position; then by shape, allowing a layout change.

    ``recorded_layouts`` (artifact tensor name -> layout, from deploykit-report.json) settles the
    case where both layouts give the same shape (e.g. 1x3x3x3).
    """
    from deploykit.core.names import renamed

    recorded = recorded_layouts or {}
    safe = renamed(source_specs)  # the names an artifact gives tensors the source named otherwise
    by_name = {t.name: t for t in artifact_specs}
    found = {s.name: by_name.get(s.name) or by_name.get(safe[s.name]) for s in source_specs}
    claimed = {t.name for t in found.values() if t is not None}
    # Artifact tensors not named after any source tensor, for pairing by position.
    unnamed = [t for t in artifact_specs if t.name not in claimed]
    bindings = []
    for index, src in enumerate(source_specs):
        art = found[src.name]
        if art is None:
            position = index - sum(1 for s in source_specs[:index] if found[s.name] is not None)
            art = unnamed[position] if position < len(unnamed) else None
        if art is None:
            bindings.append(Binding(src.name, None, problem=f"the artifact has no tensor for {src.name!r}"))
            continue
        bindings.append(_bind_one(src, art, recorded.get(art.name)))
    return tuple(bindings)


def _bind_one(src: TensorSpec, art: TensorSpec, recorded_layout: str | None) -> Binding:
    src_shape, art_shape = tuple(src.shape), tuple(art.shape)
    moved = src.layout and recorded_layout and src.layout != recorded_layout and len(src_shape) == 4
    if moved:
        order = NCHW_TO_NHWC if src.layout == "NCHW" else NHWC_TO_NCHW
        if permute(src_shape, order) == art_shape:
            return Binding(src.name, art.name, order)
    if _same(src_shape, art_shape):
        identity, static = tuple(range(len(src_shape))), None not in src_shape + art_shape
        readings = dict.fromkeys(o for o in channel_orders(len(src_shape))
                                 if static and o != identity and permute(src_shape, o) == art_shape)
        return Binding(src.name, art.name, alternatives=tuple(readings))
    for order in channel_orders(len(src_shape)):
        if _same(permute(src_shape, order), art_shape):
            return Binding(src.name, art.name, order)
    return Binding(src.name, art.name, problem=f"shape {_fmt(src_shape)} in the source, {_fmt(art_shape)} in the artifact")


def _same(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _fmt(shape: tuple) -> str:
    return "x".join("?" if d is None else str(d) for d in shape) or "scalar"
