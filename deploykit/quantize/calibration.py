"""Calibration data for int8: ``--calibration`` as a ``.npy``, a ``.npz`` or a folder of images.

Samples are in the *source model's* input layout and preprocessing (what the Keras / PyTorch /
ONNX model itself takes); deploykit transposes them where an artifact's layout differs. An image
folder is read with Pillow, resized to the input's height and width, converted to RGB (or grey
for one channel) and scaled to 0..1; a model that expects other preprocessing needs a ``.npy``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploykit.core.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclass(frozen=True)
class Calibration:
    feeds: tuple[dict, ...]  # one {input name: array with the input's full shape} per sample
    source: str
    available: int

    def to_json(self) -> dict:
        return {"source": self.source, "samples": len(self.feeds), "available": self.available}


def load_calibration(path: str | Path, inputs, samples: int) -> Calibration:
    path = Path(path)
    if not path.exists():
        raise InputError(f"--calibration {path} does not exist")
    if path.is_dir():
        arrays = {_single(inputs, "an image folder").name: _images(path, _single(inputs, "an image folder"))}
    elif path.suffix == ".npy":
        arrays = {_single(inputs, "a .npy file").name: _load_npy(path)}
    elif path.suffix == ".npz":
        arrays = _load_npz(path, inputs)
    else:
        raise InputError(f"--calibration {path}: expected a .npy or .npz file or an image folder")
    per_input = {spec.name: _as_samples(arrays[spec.name], spec, path) for spec in inputs}
    counts = {len(v) for v in per_input.values()}
    if len(counts) != 1:
        raise InputError(f"--calibration {path}: inputs have different sample counts {sorted(counts)}")
    available = counts.pop()
    if available == 0:
        raise InputError(f"--calibration {path} holds no samples")
    picked = np.unique(np.linspace(0, available - 1, min(samples, available)).round().astype(int))
    feeds = tuple({name: values[i] for name, values in per_input.items()} for i in picked)
    return Calibration(feeds, str(path), available)


def _single(inputs, what: str):
    if len(inputs) != 1:
        raise InputError(f"the model has {len(inputs)} inputs; {what} holds one",
                         hint="use a .npz with one array per input name")
    return inputs[0]


def _load_npy(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"cannot read --calibration {path}: {str(exc).splitlines()[0][:200]}") from exc


def _load_npz(path: Path, inputs) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:
        raise InputError(f"cannot read --calibration {path}: {str(exc).splitlines()[0][:200]}") from exc
    from deploykit.parity.inputs import arrays_for_inputs

    return arrays_for_inputs(arrays, inputs, f"--calibration {path}")


def _as_samples(array: np.ndarray, spec, path: Path) -> np.ndarray:
    """(N, *spec.shape) from (N, *shape[1:]) (batch 1), (N, *shape) or a single (*shape) sample."""
    shape = tuple(spec.shape)
    if not np.issubdtype(array.dtype, np.number):
        raise InputError(f"--calibration {path}: {spec.name} has non-numeric dtype {array.dtype}")
    if array.shape == shape:
        array = array[None]
    elif array.shape[1:] == shape[1:] and shape[0] == 1:
        array = array[:, None]
    elif array.shape[1:] != shape:
        hint = "samples must be in the source model's layout and shape"
        if len(shape) == 4 and array.ndim in (4, 5) and sorted(array.shape[-3:]) == sorted(shape[1:]):
            hint += " (this looks transposed: NCHW vs NHWC)"
        raise InputError(f"--calibration {path}: {spec.name} samples have shape {array.shape[1:]}, "
                         f"expected {shape[1:]} (or N x {'x'.join(map(str, shape))})", hint=hint)
    array = array.astype(spec.dtype if spec.dtype.startswith(("float", "int", "uint")) else "float32")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise InputError(f"--calibration {path}: {spec.name} contains NaN or infinite values")
    return array


def _images(folder: Path, spec) -> np.ndarray:
    from PIL import Image

    shape = tuple(spec.shape)
    if len(shape) != 4:
        raise InputError(f"--calibration {folder}: an image folder needs a 4-d image input, {spec.name} is {shape}")
    channels_first = spec.layout == "NCHW" or (spec.layout is None and shape[1] in (1, 3) and shape[3] not in (1, 3))
    height, width, channels = (shape[2], shape[3], shape[1]) if channels_first else (shape[1], shape[2], shape[3])
    if channels not in (1, 3):
        raise InputError(f"--calibration {folder}: images need 1 or 3 channels, {spec.name} has {channels}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"--calibration {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    samples = []
    for file in files:
        try:
            with Image.open(file) as image:
                image = image.convert("RGB" if channels == 3 else "L").resize((width, height), Image.BILINEAR)
                pixels = np.asarray(image, dtype=np.float32) / 255.0
        except Exception as exc:
            raise InputError(f"cannot read calibration image {file}: {str(exc).splitlines()[0][:200]}") from exc
        pixels = pixels.reshape(height, width, channels)
        samples.append(pixels.transpose(2, 0, 1) if channels_first else pixels)
    return np.stack(samples)
