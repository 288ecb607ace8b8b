"""What both NCNN paths share: pnnx's NCNN pair checked and written as deploykit's artifact folder.

pnnx names blobs ``in0``, ``in1`` ... and ``out0``, ``out1`` ... in the order of the model's inputs and
outputs. deploykit renames them to the source's tensor names (made NCNN-safe: no whitespace, at most 255
characters), so an app extracts ``logits`` rather than ``out0`` and parity binds by name; the Input layers
declare the input shape (without the batch axis, which NCNN does not have). The record keeps the mapping.
"""

from __future__ import annotations

import re
from pathlib import Path

from deploykit.core.errors import ConversionError, InputError, UsageError
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

    try:
        graph = param.parse(output.param_text, f"{label}: pnnx's .param")
    except InputError as exc:  # pnnx wrote it: a conversion failure (the ladder goes on), not the user's input
        raise ConversionError(exc.message) from None
    support = ncnn_facade.vulkan_support(sorted({layer.type for layer in graph.layers}))
    unknown = sorted(kind for kind, known in support.items() if known is None)
    left = _left_by_pnnx(output.log)
    if unknown:
        raise ConversionError(f"{label}: pnnx left op(s) NCNN has no layer for: "
                              f"{'; '.join(_described(kind, graph, left) for kind in unknown)}",
                              hint="NCNN cannot run this model as exported; try another target or rewrite those ops")
    mapping = blob_mapping(graph, source)
    shapes = {mapping[blob]: tuple(spec.shape[1:]) for blob, spec in zip(
        sorted(graph.input_blobs, key=lambda b: list(mapping).index(b)), source.inputs)}
    text = param.renamed(output.param_text, mapping, shapes)
    folder.mkdir(parents=True)
    (folder / pair.PARAM).write_text(text, encoding="ascii")
    (folder / pair.BIN).write_bytes(output.weights)
    # a layer of a known type can still be one ncnn refuses (an op pnnx left as it was, under an NCNN layer's name),
    # or one that crashes ncnn's native code: tried in a child process, a conversion failure (the ladder tries its
    # next route), never a bad-input error about a file deploykit wrote nor a crash of deploykit itself
    problem = ncnn_facade.probe(folder / pair.PARAM, folder / pair.BIN)
    if problem is not None:
        raise ConversionError(f"{label}: ncnn cannot run the pair pnnx wrote: {problem}{_which_layer(problem, graph, left)}",
                              hint="NCNN cannot run this model as exported; try another target or rewrite that op")


def _left_by_pnnx(log: str) -> dict[str, list[str]]:
    """Op name -> the parameters pnnx dropped when it left the op unconverted (its log: ``ignore TYPE NAME param K=V``)."""
    left: dict[str, list[str]] = {}
    for line in log.splitlines():
        words = line.split(maxsplit=4)
        if len(words) == 5 and words[0] == "ignore" and words[3] == "param":
            left.setdefault(words[2], []).append(words[4].strip())
    return left


def _described(kind: str, graph: param.Graph, left: dict[str, list[str]]) -> str:
    """``Tensor.slice x4 (Tensor.slice_23: dims=(2,3) steps=(2,2) ...)``: the type, how many, the first one's parameters."""
    names = [layer.name for layer in graph.layers if layer.type == kind]
    text = f"{kind} x{len(names)}" if len(names) > 1 else kind
    first = next((name for name in names if name in left), None)
    if first is not None:
        text += f" ({first}: {' '.join(left[first])})"[:200]
    return text


def _which_layer(problem: str, graph: param.Graph, left: dict[str, list[str]]) -> str:
    """ncnn's loader names a layer by its index: which one that is, with its blob counts."""
    found = re.search(r"layer (\d+)", problem)
    if found is None or int(found.group(1)) >= len(graph.layers):
        return ""
    layer = graph.layers[int(found.group(1))]
    note = f"; pnnx left it unconverted: {' '.join(left[layer.name])}" if layer.name in left else ""
    return (f" ({layer.type} {layer.name!r} with {len(layer.inputs)} input(s) and {len(layer.outputs)} output(s)"
            f"{note})")[:300]
