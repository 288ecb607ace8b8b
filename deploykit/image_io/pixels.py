"""Pixels to tensors: the source's float tensor after the declared preprocessing, and each artifact's feed.

Pixels are uint8 arrays ``(batch, height, width, channels)``, RGB (or luminance), as Pillow decodes
them. These functions are the numpy reference of the preprocessing: the parity check computes the
source's input with them, independently of the preamble ``wrap`` puts into the artifact.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deploykit.core.errors import InputError
from deploykit.image_io.spec import ImageInput, image_geometry


def to_source(pixels: np.ndarray, image: ImageInput, spec) -> np.ndarray:
    """The float tensor the source receives: channel order, ``(p / divisor - mean) / std``, the source's layout."""
    return _arrange(_normalized(pixels, image), image_geometry(spec)[3]).astype(np.dtype(spec.dtype))


def _normalized(pixels: np.ndarray, image: ImageInput) -> np.ndarray:
    values = pixels[..., ::-1] if image.color == "BGR" else pixels
    scale, offset = image.scale_and_offset()
    return values.astype(np.float32) * scale + offset


def to_artifact(pixels: np.ndarray, image: ImageInput, spec, feed) -> np.ndarray:
    """What the artifact's input ``spec`` receives for ``pixels``, ``feed`` being the target's ``PixelFeed``.

    An image input: the pixels as float values in the declared colour order, channels first (what Core ML
    makes of a ``CVPixelBuffer`` for an ``imageType`` input). A tensor input: the RGB pixels as they are,
    uint8, in the artifact's layout; or the normalized tensor when the input is float32 (the app normalizes)."""
    if not feed.takes_pixels(image):
        return _arrange(_normalized(pixels, image), artifact_layout(spec, pixels.shape[1:3]))
    if feed.kind == "image":
        values = pixels[..., ::-1] if image.color == "BGR" else pixels
        return _arrange(values.astype(np.float32), "NCHW")
    return _arrange(pixels, artifact_layout(spec, pixels.shape[1:3])).astype(np.dtype(spec.dtype))


def artifact_layout(spec, size: tuple[int, int]) -> str:
    """"NHWC" or "NCHW": where the artifact's image input keeps height and width."""
    shape = tuple(spec.shape)
    return "NCHW" if len(shape) == 4 and tuple(shape[2:]) == tuple(size) and shape[1] in (1, 3) else "NHWC"


def _arrange(values: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(values.transpose(0, 3, 1, 2) if layout == "NCHW" else values)


def read_images(folder: Path, count: int, image: ImageInput, height: int, width: int) -> list[np.ndarray]:
    """Up to ``count`` images of ``folder`` (sorted by name; 0 = all), decoded to RGB or luminance and
    brought to ``height`` x ``width`` by ``image``'s resize mode (``image_io.resize``)."""
    from deploykit.image_io.folders import IMAGE_SUFFIXES

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"--data {folder} holds no images", hint=f"image types: {' '.join(IMAGE_SUFFIXES)}")
    return [read_image(path, image, height, width) for path in files[:count or None]]


def read_image(path: Path, image: ImageInput, height: int, width: int) -> np.ndarray:
    """One picture file as the uint8 pixels ``height x width x channels`` an app would feed."""
    from PIL import Image, UnidentifiedImageError

    from deploykit.image_io.resize import fit

    try:
        with Image.open(path) as opened:
            return fit(opened.convert("L" if image.channels == 1 else "RGB"), image, height, width)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: not a readable image ({str(exc)[:200]})") from exc
