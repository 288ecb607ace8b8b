"""ONNX -> NCNN with pnnx, a ladder of two rungs:

1. ``pnnx``: the prepared graph (``onnx_prepare``: input shapes fixed, opset >= 13, onnxsim) through pnnx's ONNX
   frontend: the graph the other ONNX paths convert.
2. ``pnnx:original``: the file as the user gave it, shapes given to pnnx only: pnnx simplifies on its own, and
   a graph deploykit's preparation changed in a way pnnx lowers worse still converts.

``--quantize fp16`` runs pnnx with ``fp16=1`` (weights stored as fp16 in the .bin); every scheme is its own
pnnx run, on the route the fp32 artifact took.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.converters import Converted
from deploykit.converters.ladder import Rung
from deploykit.converters.ncnn_common import check_source, climb_ncnn, write_artifact

LABEL = "onnx->ncnn (pnnx)"


def rungs(source, options, workspace) -> list[Rung]:
    from deploykit.converters.onnx_prepare import prepared

    def via(graph_file):
        def run(path: Path) -> None:
            from deploykit.converters import pnnx_facade

            output = pnnx_facade.convert(graph_file(), source.inputs, fp16=options.ncnn_fp16, label=LABEL)
            write_artifact(output, source, path, LABEL)
        return run

    return [Rung("pnnx", LABEL, via(lambda: prepared(source, workspace).path),
                 "the prepared ONNX graph through pnnx's ONNX frontend"),
            Rung("pnnx:original", LABEL, via(lambda: Path(source.path)),
                 "the ONNX file as given, simplified by pnnx alone")]


def convert(source, out_path: Path, options, workspace) -> Converted:
    check_source(source, LABEL)
    return climb_ncnn(rungs(source, options, workspace), source, out_path, options, workspace, "ONNX -> NCNN")
