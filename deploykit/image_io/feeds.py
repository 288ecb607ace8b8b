"""``PixelFeed``: how one target's artifacts take pixels, as data the target declares (``deploykit.targets``).

Two kinds exist. ``image``: the platform's own image type (Core ML's ``imageType``: Vision or a
``CVPixelBuffer`` feeds it); the program receives float pixel values, channels first, in the declared colour
order, and normalizes them itself. ``tensor``: a plain uint8 tensor the app fills with RGB bytes, channels
last (an Android Bitmap's layout), the normalization in the graph; or, when the image input's dtype is
float32, the source's normalized tensor, which the app computes from the manifest's preprocessing block.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("image", "tensor")


@dataclass(frozen=True)
class PixelFeed:
    target: str  # whose artifacts take pixels this way (names the wrapped model: conversion caches key on it)
    kind: str  # "image" | "tensor"

    def takes_pixels(self, image) -> bool:
        """Whether the artifact's input is pixels: a float32 tensor input is the normalized tensor instead."""
        return self.kind == "image" or image.dtype != "float32"

    def layout(self, framework: str, source_layout: str) -> str:
        """Where the artifact's image input keeps its channels. Core ML's ``imageType`` needs a channels-first
        program input. Tensor inputs are channels last (an Android Bitmap's layout) for torch and Keras
        preambles; ONNX keeps the source's layout because onnx2tf turns a channels-first rank-4 input into
        NHWC itself (a NHWC preamble would be transposed once more)."""
        if self.kind == "image":
            return "NCHW"
        return source_layout if framework == "onnx" else "NHWC"

    @property
    def dtype(self) -> str:
        """The preamble's input dtype: an image type hands over float pixel values, a tensor uint8 bytes."""
        return "float32" if self.kind == "image" else "uint8"

    def describe(self, image) -> str:
        """What the app hands over, for the record."""
        color = "grayscale" if image.color == "GRAY" else image.color
        if self.kind == "image":
            return f"Core ML image ({color}); the program normalizes"
        if image.dtype == "float32":
            return "float32 tensor: the app normalizes (x / divisor - mean) / std"
        return f"uint8 {'grayscale' if image.color == 'GRAY' else 'RGB'}, channels last; the graph normalizes"

    def preprocessing(self, image_dtype: str | None) -> tuple[str, str]:
        """(the manifest's ``feed``, who normalizes: "model" or "app")."""
        if self.kind == "image":
            return "coreml-image", "model"
        if image_dtype == "float32":
            return "float32-normalized", "app"
        return "uint8-pixels", "model"
