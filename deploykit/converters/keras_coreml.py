"""Keras -> Core ML ML Program: a ladder of two routes, the first whose artifact converts and passes parity kept.

1. ``coremltools``: coremltools' TensorFlow frontend on the model (a SavedModel through its serving signature).
2. ``onnx``: the model exported with tf2onnx (``converters.keras_onnx``), then the ONNX -> Core ML ladder. It
   takes what the first cannot, such as the XLA-compiled grouped convolutions of Keras 3's ConvNeXt.

Inputs with flexible sizes take the first route only.
"""

from __future__ import annotations

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
from deploykit.core.flexible import has_flexible, refuse

LABEL = "keras->coreml (coremltools)"


def rungs(source, options, workspace) -> list[Rung]:
    from deploykit.converters.onnx_export import onnx_route

    ladder = [Rung("coremltools", LABEL, lambda path: _direct(source, path, options),
                   "coremltools' TensorFlow frontend on the model")]
    if not has_flexible(source.inputs):
        ladder.append(onnx_route(source, "coreml", options, workspace))
    return ladder


def convert(source, out_path: Path, options, workspace) -> Converted:
    # coremltools cannot take a Keras 3 SavedModel directory ("Only a single concrete function is
    # supported"); its serving signature, a single concrete function, converts.
    if source.format == "savedmodel" and has_flexible(source.inputs):
        raise refuse(source, LABEL, "a SavedModel converts through its serving signature, whose shapes are fixed")
    return climb_coreml(rungs(source, options, workspace), source, out_path, options, workspace, "Keras -> Core ML")


def _direct(source, out_path: Path, options) -> None:
    model = [source.handle["signature"]] if source.format == "savedmodel" else source.handle
    mlmodel = run_ct_convert(
        model,
        label=LABEL, options=options, outputs=output_types(source.outputs, named=False),
        source="tensorflow",
        inputs=tensor_types(source.inputs),
        minimum_deployment_target=deployment_target(options.coreml_target),
    )
    rename_and_save(mlmodel, out_path, [t.name for t in source.inputs], [t.name for t in source.outputs])
