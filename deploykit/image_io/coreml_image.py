"""Declare a converted Core ML package's pixel inputs as images (``imageType``), as ``ct.ImageType`` does.

coremltools' own ImageType conversion leaves the ML Program's input a float32 tensor (1, C, H, W) and
declares the *model description's* input an image of that size and colour space; Core ML turns the
app's ``CVPixelBuffer`` into that tensor (pixel values 0-255, channels in the declared order). This does
the same on the package any converter wrote, so every Core ML path (coremltools, onnx2coreml, the
onnx2tf fallback) gets the same declaration.
"""

from __future__ import annotations

from pathlib import Path

from deploykit.core.errors import ConversionError

_COLOR_SPACES = {"GRAY": 10, "RGB": 20, "BGR": 30}  # ImageFeatureType.ColorSpace: GRAYSCALE, RGB, BGR


def declare_image_inputs(package: Path, images) -> None:
    from deploykit.formats.coreml.metadata import read_spec, spec_path

    spec = read_spec(package)
    by_name = {image.name: image for image in images}
    for feature in spec.description.input:
        image = by_name.get(feature.name)
        if image is None:
            continue
        shape = tuple(int(d) for d in feature.type.multiArrayType.shape)
        if feature.type.WhichOneof("Type") != "multiArrayType" or len(shape) != 4 or shape[1] != image.channels:
            raise ConversionError(f"Core ML input {feature.name!r} is {shape or feature.type.WhichOneof('Type')}, not a "
                                  f"channels-first tensor with {image.channels} channel(s): it cannot be declared an image",
                                  hint="the conversion path changed the input's layout; convert with --image-input-dtype "
                                       "float32 for TFLite only, or report the model")
        feature.type.imageType.width = shape[3]
        feature.type.imageType.height = shape[2]
        feature.type.imageType.colorSpace = _COLOR_SPACES[image.color]
    staged = spec_path(package).with_suffix(".image.tmp")
    staged.write_bytes(spec.SerializeToString(deterministic=True))
    staged.replace(spec_path(package))
