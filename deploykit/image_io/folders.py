"""A folder of images as samples for a single rank-4 input (decoded with Pillow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deploykit.core.errors import InputError, UsageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif")


def load_images(folder: Path, specs, *, mean=None, std=None, layout: str | None = None, limit: int = 0):
    """({input name: stacked array in the input's layout}, count). ``limit`` 0 reads every image.

    ``layout`` only matters when the input's own layout is unknown: the images are arranged in the
    layout the model reads.
    """
    if len(specs) != 1 or len(specs[0].shape) != 4:
        raise InputError(f"--data {folder}: a folder of images feeds a model with one rank-4 input",
                         hint="use an .npz file with one array per input name")
    spec = specs[0]
    layout = spec.layout or layout
    if layout not in ("NCHW", "NHWC"):
        raise UsageError(f"the layout of input {spec.name!r} is unknown", hint="pass --data-layout NCHW or NHWC")
    n, a, b, c = spec.shape
    height, width, channels = (b, c, a) if layout == "NCHW" else (a, b, c)
    if channels not in (1, 3):
        raise InputError(f"--data {folder}: input {spec.name!r} has {channels} channels; images give 1 or 3")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"--data {folder} holds no images", hint=f"image types: {' '.join(IMAGE_SUFFIXES)}")
    if limit:
        files = files[: limit * n]
    mean_v = _per_channel(mean, 0.0, channels, "--mean")
    std_v = _per_channel(std, 1.0, channels, "--std")
    if np.any(std_v == 0):
        raise UsageError("--std must not contain zero")
    try:
        from PIL import Image
    except ImportError as exc:
        raise InputError("reading images needs Pillow (pip install pillow)") from exc
    arrays = []
    for path in files:
        try:
            with Image.open(path) as image:
                image = image.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
                pixels = np.asarray(image, dtype=np.float32).reshape(height, width, channels) / 255.0
        except (OSError, ValueError) as exc:
            raise InputError(f"--data: cannot decode image {path}: {exc}") from exc
        pixels = (pixels - mean_v) / std_v
        arrays.append(pixels.transpose(2, 0, 1) if layout == "NCHW" else pixels)
    usable = len(arrays) - len(arrays) % n
    if usable == 0:
        raise InputError(f"--data {folder}: {len(arrays)} image(s), fewer than the input's batch of {n}")
    return {spec.name: np.stack(arrays[:usable]).astype(spec.dtype)}, usable // n


def _per_channel(value, default: float, channels: int, flag: str) -> np.ndarray:
    if value is None:
        return np.full(channels, default, dtype=np.float32)
    array = np.atleast_1d(np.asarray(value, dtype=np.float32))
    if array.size == 1:
        return np.full(channels, float(array[0]), dtype=np.float32)
    if array.size != channels:
        raise UsageError(f"{flag} has {array.size} values; the input has {channels} channels")
    return array
