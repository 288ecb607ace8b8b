"""Put the pixel preamble in front of a source model: the model each conversion path receives.

The preamble takes pixels as the target's ``PixelFeed`` hands them over (``pixel_spec``) and computes what the source
expects. One module per framework, each a plain function ``wrap(model, images, pixel_specs) -> handle``;
the converters then see an ordinary source model whose image inputs are pixels.
"""

from __future__ import annotations

import dataclasses
import importlib

from deploykit.core.types import SourceModel, TensorSpec
from deploykit.image_io.spec import ImageInput, image_geometry

_WRAPPERS = {"torch": "deploykit.image_io.wrap_torch", "keras": "deploykit.image_io.wrap_keras",
             "onnx": "deploykit.image_io.wrap_onnx"}


def pixel_spec(spec: TensorSpec, image: ImageInput, framework: str, feed) -> TensorSpec:
    """The artifact's input for ``image``: pixels as ``feed`` (the target's ``PixelFeed``) takes them."""
    height, width, channels, source_layout = image_geometry(spec)
    layout = feed.layout(framework, source_layout)
    shape = (spec.shape[0], channels, height, width) if layout == "NCHW" else (spec.shape[0], height, width, channels)
    return TensorSpec(spec.name, shape, feed.dtype, layout)


def with_pixel_inputs(model: SourceModel, images: tuple[ImageInput, ...], feed) -> SourceModel:
    """``model`` with its image inputs taking pixels as ``feed`` (the target's ``PixelFeed``) hands them over
    (unchanged when none do)."""
    wrapped = tuple(i for i in images if feed.takes_pixels(i))
    if not wrapped:
        return model
    by_name = {i.name: i for i in wrapped}
    specs = tuple(pixel_spec(s, by_name[s.name], model.framework, feed) if s.name in by_name else s
                  for s in model.inputs)
    handle = importlib.import_module(_WRAPPERS[model.framework]).wrap(model, by_name, specs)
    # A distinct path: conversion paths cache intermediate products by the source's path.
    return dataclasses.replace(model, inputs=specs, handle=handle, path=f"{model.path}#pixels-{feed.target}")
