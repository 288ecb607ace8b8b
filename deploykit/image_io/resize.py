"""Bring a picture of any size to an image input's size, the way the manifest tells an app to.

This is the reference the Swift and Kotlin templates implement and ``deploykit predict`` runs:

- ``stretch``: resize to the input's width x height, aspect ratio not kept (nothing is cut off).
- ``shorter-side``: scale so the picture covers the input (the shorter side fits), then cut the centre
  out; with ``crop_fraction`` f < 1 the shorter side is first scaled to size / f (torchvision's
  ``Resize(256)`` then ``CenterCrop(224)`` is f = 0.875). What is outside the centre is not seen:
  the standing "objects at the top or bottom of the screen are not recognized" question.
- ``letterbox``: scale so the whole picture fits, centre it, pad the rest with ``fill``.
"""

from __future__ import annotations

import numpy as np

_FILTERS = {"bilinear": "BILINEAR", "nearest": "NEAREST", "bicubic": "BICUBIC"}


def fit(picture, image, height: int, width: int) -> np.ndarray:
    """``picture`` (a PIL image, already in RGB or L) as uint8 ``height x width x channels``."""
    from PIL import Image

    resample = getattr(Image.Resampling, _FILTERS[image.interpolation])
    w, h = picture.size
    if image.resize == "stretch":
        fitted = picture.resize((width, height), resample)
    elif image.resize == "shorter-side":
        scale = max(width / w, height / h) / image.crop_fraction
        scaled_w, scaled_h = max(width, round(w * scale)), max(height, round(h * scale))
        scaled = picture.resize((scaled_w, scaled_h), resample)
        left, top = (scaled_w - width) // 2, (scaled_h - height) // 2
        fitted = scaled.crop((left, top, left + width, top + height))
    else:
        scale = min(width / w, height / h)
        inner_w, inner_h = max(1, round(w * scale)), max(1, round(h * scale))
        fill = image.fill if picture.mode == "L" else (image.fill,) * 3
        fitted = Image.new(picture.mode, (width, height), fill)
        fitted.paste(picture.resize((inner_w, inner_h), resample), ((width - inner_w) // 2, (height - inner_h) // 2))
    array = np.asarray(fitted, dtype=np.uint8)
    return array[..., None] if array.ndim == 2 else array
