"""Which layout an artifact's tensors use, and whether a conversion path changed it."""

from __future__ import annotations

from dataclasses import replace

from deploykit.core.types import TensorSpec

NCHW_TO_NHWC = (0, 2, 3, 1)
NHWC_TO_NCHW = (0, 3, 1, 2)


def permute(shape: tuple, order: tuple) -> tuple:
    return tuple(shape[i] for i in order)


def match_layout(source: TensorSpec, artifact: TensorSpec) -> tuple[TensorSpec, str | None]:
    """Annotate ``artifact`` with its layout; return a human-readable change note when it differs."""
    rank = len(artifact.shape)
    if rank in (3, 5) and len(source.shape) == rank and tuple(artifact.shape) != tuple(source.shape):
        # onnx2tf moves the channel axis of 1-D and 3-D signals last too (NCW -> NWC, NCDHW -> NDHWC)
        last = (0, *range(2, rank), 1)
        if tuple(artifact.shape) == permute(source.shape, last):
            return replace(artifact, layout=None), f"{artifact.name}: channels-first -> channels-last"
    if source.layout is None or rank != 4 or tuple(artifact.shape) == tuple(source.shape):
        return replace(artifact, layout=source.layout), None
    other = "NHWC" if source.layout == "NCHW" else "NCHW"
    order = NCHW_TO_NHWC if source.layout == "NCHW" else NHWC_TO_NCHW
    if tuple(artifact.shape) == permute(source.shape, order):
        return replace(artifact, layout=other), f"{artifact.name}: {source.layout} -> {other}"
    return replace(artifact, layout=None), None


def annotate(source_specs, artifact_specs) -> tuple[tuple[TensorSpec, ...], tuple[str, ...]]:
    """Pair artifact tensors with source tensors (by name or its identifier-safe form, else by position),
    annotate layouts and original names, and list them in the source's order when every one paired by name."""
    from deploykit.core.names import renamed

    safe = renamed(source_specs)
    by_name = {s.name: s for s in source_specs}
    by_name.update({safe[s.name]: s for s in source_specs if safe[s.name] not in by_name})
    specs, notes, order = [], [], []
    for index, spec in enumerate(artifact_specs):
        named = by_name.get(spec.name)
        source = named or (source_specs[index] if index < len(source_specs) else None)
        if source is None:
            specs.append(spec)
            order.append(None)
            continue
        annotated, note = match_layout(source, spec)
        if source.name != spec.name:
            annotated = replace(annotated, original_name=source.name)
        specs.append(annotated)
        order.append(source.name if named else None)
        if note:
            notes.append(note)
    if None not in order and len(set(order)) == len(order):
        rank = {s.name: i for i, s in enumerate(source_specs)}
        specs = [spec for _, spec in sorted(zip(order, specs), key=lambda p: rank[p[0]])]
    return tuple(specs), tuple(notes)
