"""Keras -> Core ML ML Program with coremltools (from the model object; a SavedModel via its signature)."""

from __future__ import annotations

from pathlib import Path

from deploykit.converters import Converted
from deploykit.converters.coreml_common import (
    deployment_target,
    output_types,
    rename_and_save,
    run_ct_convert,
    tensor_types,
)
from deploykit.core.flexible import has_flexible, refuse

LABEL = "keras->coreml (coremltools)"


def convert(source, out_path: Path, options, workspace) -> Converted:
    # coremltools cannot take a Keras 3 SavedModel directory ("Only a single concrete function is
    # supported"); its serving signature, a single concrete function, converts.
    if source.format == "savedmodel" and has_flexible(source.inputs):
        raise refuse(source, LABEL, "a SavedModel converts through its serving signature, whose shapes are fixed")
    model = [source.handle["signature"]] if source.format == "savedmodel" else source.handle
    mlmodel = run_ct_convert(
        model,
        label=LABEL, options=options, outputs=output_types(source.outputs, named=False),
        source="tensorflow",
        inputs=tensor_types(source.inputs),
        minimum_deployment_target=deployment_target(options.coreml_target),
    )
    rename_and_save(mlmodel, out_path, [t.name for t in source.inputs], [t.name for t in source.outputs])
    return Converted(out_path, LABEL)
