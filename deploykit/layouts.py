"""Which layout an artifact's tensors use, and whether a conversion path changed it."""

from __future__ import annotations

from dataclasses import replace

from deploykit.types import TensorSpec

NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)


def permute(shape: tuple, order: tuple) -> tuple:
    return tuple(shape[i] for i in order)


def match_layout(source: TensorSpec, artifact: TensorSpec) -> tuple[TensorSpec, str | None]:
    """Annotate ``artifact`` with its layout; return a human-readable change note when it differs."""
    if source.layout is None or len(artifact.shape) != 4 or tuple(artifact.shape) == tuple(source.shape):
        return replace(artifact, layout=source.layout), None
    other = "NHWC" if source.layout == "NCHW" else "NCHW"
    order = NCHW_TO_NHWC if source.layout == "NCHW" else NHWC_TO_NCHW
    if tuple(artifact.shape) == permute(source.shape, order):
        return replace(artifact, layout=other), f"{artifact.name}: {source.layout} -> {other}"
    return replace(artifact, layout=None), None


def annotate(source_specs, artifact_specs) -> tuple[tuple[TensorSpec, ...], tuple[str, ...]]:
    """Pair artifact tensors with source tensors (by name, else by position) and annotate layouts."""
    by_name = {s.name: s for s in source_specs}
    specs, notes = [], []
    for index, spec in enumerate(artifact_specs):
        source = by_name.get(spec.name) or (source_specs[index] if index < len(source_specs) else None)
        if source is None:
            specs.append(spec)
            continue
        annotated, note = match_layout(source, spec)
        specs.append(annotated)
        if note:
            notes.append(note)
    return tuple(specs), tuple(notes)
