"""PyTorch -> Core ML: a ladder of three routes, the first whose artifact converts and passes parity kept.

1. ``jit.trace``: the module traced with ``torch.jit.trace`` (a TorchScript source as it is) through
   coremltools' TorchScript frontend: the route coremltools documents and the one most models take.
2. ``torch.export``: the module exported with ``torch.export`` and decomposed to the ATen core set
   (``run_decompositions({})``, the form coremltools' ExportedProgram frontend takes on this torch; the
   raw training dialect and ExecuTorch's edge dialect are refused) through that frontend. Its op
   coverage differs from the TorchScript frontend's (e.g. ops that only appear after tracing).
3. ``onnx``: the module exported to ONNX (``converters.onnx_export``), then the ONNX -> Core ML ladder
   (onnx2coreml, then onnx2tf's SavedModel): a different lowering of every op.

Inputs with flexible sizes take the first route only: the other routes export at fixed sizes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from deploykit.converters import Converted
from deploykit.converters.coreml_common import (
    climb_coreml,
    deployment_target,
    output_types,
    rename_and_save,
    run_ct_convert,
    tensor_types,
)
from deploykit.converters.ladder import Rung
from deploykit.core.errors import ConversionError
from deploykit.core.flexible import has_flexible

LABEL = "torch->coreml (torch.jit.trace + coremltools)"
LABEL_EXPORT = "torch->coreml (torch.export + coremltools)"


def rungs(source, options, workspace) -> list[Rung]:
    from deploykit.converters.onnx_export import onnx_route

    ladder = [Rung("jit.trace", LABEL, lambda path: _via_trace(source, path, options),
                   "torch.jit.trace, coremltools' TorchScript frontend")]
    if has_flexible(source.inputs):
        return ladder
    if not source.handle["torchscript"]:
        ladder.append(Rung("torch.export", LABEL_EXPORT, lambda path: _via_export(source, path, options),
                           "torch.export decomposed to core ATen, coremltools' ExportedProgram frontend"))
    ladder.append(onnx_route(source, "coreml", options, workspace))
    return ladder


def convert(source, out_path: Path, options, workspace) -> Converted:
    return climb_coreml(rungs(source, options, workspace), source, out_path, options, workspace, "PyTorch -> Core ML")


def _via_trace(source, out_path: Path, options) -> None:
    from deploykit.converters import coreml_torch_fixes
    from deploykit.loaders.torch_loader import traced_module

    coreml_torch_fixes.install()
    module = traced_module(source, LABEL, "models with data-dependent control flow need torch.jit.script before saving")
    mlmodel = run_ct_convert(
        module,
        label=LABEL, options=options,
        source="pytorch",
        inputs=tensor_types(source.inputs),
        outputs=output_types(source.outputs, named=True),
        minimum_deployment_target=deployment_target(options.coreml_target),
    )
    rename_and_save(mlmodel, out_path, [t.name for t in source.inputs], [t.name for t in source.outputs])


def _via_export(source, out_path: Path, options) -> None:
    import torch

    from deploykit.loaders.torch_loader import example_tensors

    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            program = torch.export.export(source.handle["module"], example_tensors(source.inputs))
            program = program.run_decompositions({})
    except Exception as exc:
        raise ConversionError(f"{LABEL_EXPORT}: torch.export failed: {str(exc).strip().splitlines()[0][:300]}",
                              hint="the model has data-dependent control flow; the jit.trace route takes it") from exc
    mlmodel = run_ct_convert(program, label=LABEL_EXPORT, options=options, inputs=tensor_types(source.inputs),
                             outputs=output_types(source.outputs, named=True),
                             minimum_deployment_target=deployment_target(options.coreml_target))
    rename_and_save(mlmodel, out_path, [t.name for t in source.inputs], [t.name for t in source.outputs])
