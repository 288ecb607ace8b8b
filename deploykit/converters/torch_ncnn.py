"""PyTorch -> NCNN with pnnx, a ladder of two routes:

1. ``jit.trace``: the module traced with ``torch.jit.trace`` (a TorchScript source as it is), saved, and given to
   pnnx's TorchScript frontend: the route pnnx documents (``pnnx.export``), which sees torch's own ops.
2. ``onnx``: the module exported to ONNX (``converters.onnx_export``), then the ONNX -> NCNN ladder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from deploykit.converters import Converted
from deploykit.converters.ladder import Rung
from deploykit.converters.ncnn_common import check_source, climb_ncnn, write_artifact

LABEL = "torch->ncnn (torch.jit.trace + pnnx)"


def rungs(source, options, workspace) -> list[Rung]:
    from deploykit.converters.onnx_export import onnx_route

    return [Rung("jit.trace", LABEL, lambda path: _via_trace(source, path, options),
                 "torch.jit.trace, pnnx's TorchScript frontend"),
            onnx_route(source, "ncnn", options, workspace)]


def convert(source, out_path: Path, options, workspace) -> Converted:
    check_source(source, LABEL)
    return climb_ncnn(rungs(source, options, workspace), source, out_path, options, workspace, "PyTorch -> NCNN")


def _via_trace(source, path: Path, options) -> None:
    import torch

    from deploykit.converters import pnnx_facade
    from deploykit.loaders.torch_loader import traced_module

    module = traced_module(source, LABEL, "the onnx route exports with torch.export instead")
    with tempfile.TemporaryDirectory(prefix="deploykit-trace-") as scratch:
        traced = Path(scratch) / "model.pt"
        torch.jit.save(module, str(traced))
        output = pnnx_facade.convert(traced, source.inputs, fp16=options.ncnn_fp16, label=LABEL)
    write_artifact(output, source, path, LABEL)
