"""ONNX -> Core ML through the SavedModel onnx2tf writes (coremltools has no ONNX frontend since 6.0)."""

from __future__ import annotations

from pathlib import Path

from deploykit.converters import Converted
from deploykit.converters.coreml_common import deployment_target, output_types, rename_and_save, run_ct_convert
from deploykit.converters.onnx2tf_run import onnx2tf_output, private_copy

LABEL = "onnx->coreml (onnx2tf SavedModel -> coremltools)"


def convert(source, out_path: Path, options, workspace) -> Converted:
    folder = onnx2tf_output(str(private_copy(source, workspace)), source.inputs, workspace)
    mlmodel = run_ct_convert(str(folder), label=LABEL, options=options, outputs=output_types(source.outputs, named=False), source="tensorflow",
                             minimum_deployment_target=deployment_target(options.coreml_target))
    rename_and_save(mlmodel, out_path, [t.name for t in source.inputs], [t.name for t in source.outputs])
    return Converted(out_path, LABEL)
