"""Bring a picture of any size to an image input's size, the way the manifest tells an app to.

This is the reference the Swift and Kotlin templates implement and ``deploykit predict`` runs:

- ``stretch``: resize to the input's width x height, aspect ratio not kept (nothing is cut off).
- ``shorter-side``: scale so the picture covers the input (the shorter side fits), then cut the centre
  out; with ``crop_fraction`` f < 1 the shorter side is first scaled to size / f (torchvision's
  ``Resize(256)`` then ``CenterCrop(224)`` is f = 0.875). What is outside the centre is not seen:
  the standing "objects at the top or bottom of the screen are not recognized" question.
- ``letterbox``: scale so the whole picture fits, centre it, pad the rest with ``fill``.

``placement`` is the geometry alone (the rounded scaled size and where it lands): ``fit`` draws with it and
``detection.frame`` undoes it, so a detector's boxes map back with the very numbers the pixels were made with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_FILTERS = {"bilinear": "BILINEAR", "nearest": "NEAREST", "bicubic": "BICUBIC"}


@dataclass(frozen=True)
class Placement:
    """The picture resized to ``scaled`` (width, height), its top-left corner at ``offset`` (x, y) in the input's
    pixels: negative where the centre crop cut the picture's edges off, positive where letterbox padding begins."""

    scaled: tuple[int, int]
    offset: tuple[int, int]


def placement(image, picture_size: tuple[int, int], height: int, width: int) -> Placement:
    """Where a picture of ``picture_size`` (width, height) lands in a ``height x width`` input under ``image``'s
    resize mode."""
    w, h = picture_size
    if image.resize == "stretch":
        return Placement((width, height), (0, 0))
    if image.resize == "shorter-side":
        scale = max(width / w, height / h) / image.crop_fraction
        scaled_w, scaled_h = max(width, round(w * scale)), max(height, round(h * scale))
        return Placement((scaled_w, scaled_h), (-((scaled_w - width) // 2), -((scaled_h - height) // 2)))
    scale = min(width / w, height / h)
    inner_w, inner_h = max(1, round(w * scale)), max(1, round(h * scale))
    return Placement((inner_w, inner_h), ((width - inner_w) // 2, (height - inner_h) // 2))


def fit(picture, image, height: int, width: int) -> np.ndarray:
    """``picture`` (a PIL image, already in RGB or L) as uint8 ``height x width x channels``."""
    from PIL import Image

    resample = getattr(Image.Resampling, _FILTERS[image.interpolation])
    where = placement(image, picture.size, height, width)
    scaled = picture.resize(where.scaled, resample)
    if image.resize == "stretch":
        fitted = scaled
    elif image.resize == "shorter-side":
        left, top = -where.offset[0], -where.offset[1]
        fitted = scaled.crop((left, top, left + width, top + height))
    else:
        fill = image.fill if picture.mode == "L" else (image.fill,) * 3
        fitted = Image.new(picture.mode, (width, height), fill)
        fitted.paste(scaled, where.offset)
    array = np.asarray(fitted, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array
