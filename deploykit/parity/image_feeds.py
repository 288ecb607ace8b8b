"""Parity on pixels for image inputs (``--image-input``): the source gets the preprocessed float tensor,
the artifact the raw pixels, and their outputs must agree.

A sample holds uint8 pixels ``(batch, height, width, channels)`` for each image input (and ordinary
arrays for the others). ``source_view`` turns a sample into the source's feeds with the numpy reference
of the preprocessing (``image_io.pixels``); an ``ImageBinding`` turns pixels into what the artifact's
input takes. The pixels are the images of ``--data`` (a folder) or generated natural-looking ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploykit.core.errors import UsageError
from deploykit.image_io.pixels import read_images, to_artifact, to_source
from deploykit.image_io.sample_images import sample_images
from deploykit.image_io.spec import ImageInput, image_geometry
from deploykit.parity.inputs import InputSet, random_inputs
from deploykit.parity.layout import Binding


@dataclass(frozen=True)
class ImageBinding(Binding):
    image: ImageInput | None = None
    feed: object = None  # the target's image_io.feeds.PixelFeed
    spec: object = None  # the artifact's TensorSpec

    @property
    def note(self) -> str | None:
        return f"pixels ({self.image.color}, {self.spec.dtype})"

    def to_artifact(self, value: np.ndarray) -> np.ndarray:
        return to_artifact(value, self.image, self.spec, self.feed)


def images_of(model, recorded) -> dict[str, ImageInput]:
    """The image inputs: the loaded model's (``convert``), else the record's (``deploykit verify``)."""
    if model.images:
        return {image.name: image for image in model.images}
    if recorded is None:
        return {}
    found = {}
    for spec in recorded.inputs:
        if spec.image:
            name = spec.original_name or spec.name
            found[name] = ImageInput.from_json(name, spec.image)
    return found


def image_bindings(bindings, images: dict[str, ImageInput], artifact_specs, feed) -> tuple:
    by_name = {spec.name: spec for spec in artifact_specs}
    out = []
    for binding in bindings:
        image = images.get(binding.source)
        spec = by_name.get(binding.artifact)
        out.append(binding if image is None or spec is None else
                   ImageBinding(binding.source, binding.artifact, image=image, feed=feed, spec=spec))
    return tuple(out)


def pixel_inputs(model, images: dict[str, ImageInput], *, samples: int, data, seed: int) -> InputSet:
    """Samples whose image inputs are pixels (of ``data``, a folder, or generated) and other inputs random."""
    if data is not None and not Path(data).is_dir():
        raise UsageError(f"--data {data}: a model with --image-input is checked on images; give a folder of images")
    pixels, origin = {}, {}
    for index, spec in enumerate(s for s in model.inputs if s.name in images):
        height, width, channels, _ = image_geometry(spec)
        batch = spec.shape[0]
        if data is not None:
            frames = read_images(Path(data), samples * batch, images[spec.name], height, width)
            origin = {"kind": "images", "path": str(data)}
        else:
            frames = sample_images(max(samples, 1) * batch, height, width, channels, seed=seed + index)
            origin = {"kind": "generated images", "seed": seed, "generator": "deploykit.image_io.sample_images"}
        pixels[spec.name] = [np.stack(frames[i:i + batch]) for i in range(0, len(frames) - batch + 1, batch)]
    count = min(len(v) for v in pixels.values())
    others = [s for s in model.inputs if s.name not in images]
    drawn = random_inputs(others, samples=count, seed=seed).samples if others else None
    chosen = tuple({**(drawn[i] if drawn else {}), **{name: chunks[i] for name, chunks in pixels.items()}}
                   for i in range(count))
    return InputSet(chosen, {**origin, "samples": count, "image_inputs": sorted(images)})


def source_view(sample: dict, model, images: dict[str, ImageInput]) -> dict:
    specs = {s.name: s for s in model.inputs}
    return {name: to_source(value, images[name], specs[name]) if name in images else value
            for name, value in sample.items()}
