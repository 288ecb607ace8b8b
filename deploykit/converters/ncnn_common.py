"""What both NCNN paths share: pnnx's NCNN pair checked and written as deploykit's artifact folder.

pnnx names blobs ``in0``, ``in1`` ... and ``out0``, ``out1`` ... in the order of the model's inputs and
outputs. deploykit renames them to the source's tensor names (made NCNN-safe: no whitespace, at most 255
characters), so an app extracts ``logits`` rather than ``out0`` and parity binds by name; the Input layers
declare the input shape (without the batch axis, which NCNN does not have). The record keeps the mapping.
"""

from __future__ import annotations

import re
from pathlib import Path

from deploykit.core.errors import ConversionError, UsageError
from deploykit.formats.ncnn import pair, param

_NUMBERED = re.compile(r"^(in|out)(\d+)$")


def check_source(source, label: str) -> None:
    """NCNN tensors have no batch axis: every input must have batch 1 and a static shape."""
    for spec in source.inputs:
        if not spec.shape or not all(isinstance(d, int) and d > 0 for d in spec.shape):
            raise UsageError(f"{label} needs a static shape for input {spec.name!r} (got {tuple(spec.shape)})",
                             hint=f"give it with --input {spec.name}=1,3,224,224")
        if spec.shape[0] != 1 or len(spec.shape) > 5:
            raise UsageError(f"{label}: input {spec.name!r} has shape {tuple(spec.shape)}; NCNN blobs hold one sample "
                             "of up to 4 dimensions (c, d, h, w) after a batch axis of 1",
                             hint=f"convert with --input {spec.name}=1,...")


def blob_mapping(graph: param.Graph, source) -> dict[str, str]:
    """pnnx's blob names -> the source's names (NCNN-safe), matched by pnnx's numbering, else by position."""
    def ordered(blobs: tuple[str, ...], kind: str) -> list[str]:
        numbered = [(int(m.group(2)), b) for b in blobs if (m := _NUMBERED.match(b)) and m.group(1) == kind]
        return [b for _, b in sorted(numbered)] if len(numbered) == len(blobs) else list(blobs)

    inputs, outputs = ordered(graph.input_blobs, "in"), ordered(graph.output_blobs, "out")
    if len(inputs) != len(source.inputs) or len(outputs) != len(source.outputs):
        raise ConversionError(f"pnnx wrote {len(inputs)} inputs and {len(outputs)} outputs; the source has "
                              f"{len(source.inputs)} and {len(source.outputs)}")
    wanted = [param.blob_name(t.name) for t in (*source.inputs, *source.outputs)]
    if len(set(wanted)) != len(wanted):
        raise ConversionError("two of the source's tensor names become the same NCNN blob name")
    return dict(zip(inputs + outputs, wanted))


def climb_ncnn(rungs, source, out_path: Path, options, workspace, path_label: str):
    """The ladder of an NCNN path: every scheme on the route the first one took, checked with its own profile."""
    from deploykit.converters import Converted, route_for
    from deploykit.converters.ladder import climb, select

    variant = "fp16" if options.ncnn_fp16 else "fp32"
    ladder = select(rungs, route_for(options, "ncnn"), path_label)
    climbed = climb(ladder, out_path, "ncnn", workspace, variant=variant, remember=("ncnn-route", source.path))
    return Converted(climbed.path, climbed.converter, attempts=climbed.attempts, parity=climbed.parity)


def recorded_blobs(source) -> dict[str, str]:
    """pnnx's blob name -> the artifact's (the source's tensor names), for the record."""
    return {**{f"in{i}": param.blob_name(t.name) for i, t in enumerate(source.inputs)},
            **{f"out{i}": param.blob_name(t.name) for i, t in enumerate(source.outputs)}}


def write_artifact(output, source, folder: Path, label: str) -> None:
    """pnnx's pair as the artifact folder ``folder`` (model.ncnn.param, model.ncnn.bin)."""
    from deploykit.formats import ncnn_facade

    graph = param.parse(output.param_text, f"{label}: pnnx's .param")
    support = ncnn_facade.vulkan_support(sorted({layer.type for layer in graph.layers}))
    unknown = sorted(kind for kind, known in support.items() if known is None)
    if unknown:
        raise ConversionError(f"{label}: pnnx left op(s) NCNN has no layer for: {', '.join(unknown)}",
                              hint="NCNN cannot run this model as exported; try another target or rewrite those ops")
    mapping = blob_mapping(graph, source)
    shapes = {mapping[blob]: tuple(spec.shape[1:]) for blob, spec in zip(
        sorted(graph.input_blobs, key=lambda b: list(mapping).index(b)), source.inputs)}
    text = param.renamed(output.param_text, mapping, shapes)
    folder.mkdir(parents=True)
    (folder / pair.PARAM).write_text(text, encoding="ascii")
    (folder / pair.BIN).write_bytes(output.weights)
