"""Lowerings that replace onnx2coreml's own for an op, because its lowering is not what ONNX computes.

- ``Reciprocal``: onnx2coreml lowers it as MIL ``inverse`` with MIL's default epsilon (1e-4), which
  computes ``1 / (x + 1e-4)``. ONNX's Reciprocal is exact. The difference is largest where the
  reciprocal is of a small number: tf2onnx writes Keras' LayerNormalization as ``Reciprocal(Sqrt(variance
  + epsilon))``, and on a small Keras model (grouped convolutions, LayerNormalization, GELU) the artifact
  drifted by 1.1e-3 of the output's scale, ten times the fp32 bound, on every input
  (tests/converters/test_routes.py). ``inverse`` with epsilon 0 is exact and stays one op.
"""

from __future__ import annotations

from deploykit.converters.onnx_lowerings._args import inputs
from deploykit.formats import coremltools_facade


def _reciprocal(ctx, node):
    mb = coremltools_facade.mil_builder()
    (x,) = inputs(ctx, node)[:1]
    return mb.inverse(x=x, epsilon=0.0, name=node.output[0])


LOWERINGS = {"Reciprocal": _reciprocal}
