"""ONNX -> TFLite with onnx2tf (onnx-tf no longer imports with current onnx).

onnx2tf turns NCHW inputs into NHWC: the artifact's layout is recorded and the parity checks transpose.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.converters import Converted
from deploykit.converters.onnx2tf_run import named_tflite, onnx2tf_output, private_copy

LABEL = "onnx->tflite (onnx2tf)"


def convert(source, out_path: Path, options, workspace) -> Converted:
    folder = onnx2tf_output(str(private_copy(source, workspace)), source.inputs, workspace)
    out_path.write_bytes(named_tflite(folder, source))
    return Converted(out_path, LABEL)
