"""Put the pixel preamble in front of a source model: the model each conversion path receives.

The preamble takes pixels in the target's image form (``pixel_spec``) and computes what the source
expects. One module per framework, each a plain function ``wrap(model, images, pixel_specs) -> handle``;
the converters then see an ordinary source model whose image inputs are pixels.
"""

from __future__ import annotations

import dataclasses
import importlib

from deploykit.image_io.spec import ImageInput, image_geometry
from deploykit.core.types import SourceModel, TensorSpec

_WRAPPERS = {"torch": "deploykit.image_io.wrap_torch", "keras": "deploykit.image_io.wrap_keras",
             "onnx": "deploykit.image_io.wrap_onnx"}


def pixel_layout(framework: str, target: str, source_layout: str) -> str:
    """Where the artifact's image input keeps its channels. Core ML's ``imageType`` needs a channels-first
    program input. TFLite apps hand over channels-last bytes (an Android Bitmap's layout): torch and
    Keras preambles take NHWC; ONNX keeps the source's layout because onnx2tf turns a channels-first
    rank-4 input into NHWC itself (a NHWC preamble would be transposed once more)."""
    if target == "coreml":
        return "NCHW"
    return source_layout if framework == "onnx" else "NHWC"


def pixel_spec(spec: TensorSpec, image: ImageInput, framework: str, target: str) -> TensorSpec:
    height, width, channels, source_layout = image_geometry(spec)
    layout = pixel_layout(framework, target, source_layout)
    shape = (spec.shape[0], channels, height, width) if layout == "NCHW" else (spec.shape[0], height, width, channels)
    return TensorSpec(spec.name, shape, "float32" if target == "coreml" else "uint8", layout)


def for_target(model: SourceModel, images: tuple[ImageInput, ...], target: str) -> SourceModel:
    """``model`` with its image inputs taking pixels as ``target`` receives them (unchanged when none do)."""
    wrapped = tuple(i for i in images if not (target == "tflite" and i.dtype == "float32"))
    if not wrapped:
        return model
    by_name = {i.name: i for i in wrapped}
    specs = tuple(pixel_spec(s, by_name[s.name], model.framework, target) if s.name in by_name else s
                  for s in model.inputs)
    handle = importlib.import_module(_WRAPPERS[model.framework]).wrap(model, by_name, specs)
    # A distinct path: conversion paths cache intermediate products by the source's path.
    return dataclasses.replace(model, inputs=specs, handle=handle, path=f"{model.path}#pixels-{target}")
