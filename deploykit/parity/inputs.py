"""The inputs a parity check feeds both models: seeded random samples, or real data from a file or folder.

Every sample is a ``{input name: array}`` dict in the **source model's** layout and dtype; the
comparator transposes for artifacts whose layout differs.

Seeded random inputs (the default), drawn from ``numpy.random.default_rng(seed)``, sample by
sample and input by input in the model's input order, so the same seed gives the same bytes on
every machine:

- float inputs: uniform on [-1, 1). Symmetric around zero so both sides of every activation are
  exercised, and bounded like normalized images so activations stay in a realistic range.
- quantized integer inputs of the artifact (full-int8 TFLite): the float values are drawn
  uniformly on the interval the artifact can represent, [(qmin - zp) * scale, (qmax - zp) * scale],
  intersected with [-1, 1) when they overlap; otherwise the comparison would measure input
  clipping, not the model.
- integer inputs: uniform integers in [0, 8); bool inputs: a fair coin.
- an input whose domain the model states (``loaders.input_domain``: a Keras ``Rescaling`` or
  ``Normalization`` first layer, token ids of an embedding table) is drawn uniformly on that domain
  instead, and the record says why.

Real data (``data=``):

- ``.npy``: one array for a single-input model; ``.npz``: one array per input name (a single
  array is accepted for a single-input model whatever its key). Each array is either one sample
  of the input's exact shape, a stack of samples ``(N * batch, ...)``, or one sample without the
  batch axis. Files are read with ``allow_pickle=False``.
- a folder of images (.png .jpg .jpeg .bmp .webp .gif, sorted by name) for a single rank-4 input:
  each image is decoded to RGB (grayscale for one channel), resized bilinearly to the input's
  height and width, scaled to [0, 1], normalized ``(x - mean) / std`` per channel, and arranged in
  ``data_layout``.
- ``data_layout`` ("NCHW" or "NHWC") is the layout of the data; arrays are transposed to the
  source's layout when it differs. Default: the source input's layout.
- ``samples`` caps how many samples are used (default 8; 0 means all of the data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploykit.core.errors import InputError, UsageError
from deploykit.core.layouts import NCHW_TO_NHWC, NHWC_TO_NCHW
from deploykit.core.types import TensorSpec

FLOAT_RANGE = (-1.0, 1.0)
INT_RANGE = (0, 8)
LAYOUTS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class InputSet:
    """The samples of one parity run and where they came from (for the report)."""

    samples: tuple[dict[str, np.ndarray], ...]
    origin: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.samples)


def random_inputs(specs, *, samples: int = 8, seed: int = 0, ranges: dict[str, tuple[float, float]] | None = None,
                  domains: dict | None = None) -> InputSet:
    """``samples`` seeded random samples for ``specs`` (see the module docstring for the distribution).

    ``ranges``: the float range per input (quantized inputs); ``domains``: ``loaders.input_domain.InputDomain``
    per input, where the model states one (used where ``ranges`` names none)."""
    if samples < 1:
        raise UsageError(f"--samples must be at least 1 for random inputs, got {samples}")
    domains = domains or {}
    ranges = {**{name: (d.low, d.high) for name, d in domains.items()}, **(ranges or {})}
    rng = np.random.default_rng(seed)
    drawn = []
    for _ in range(samples):
        sample = {}
        for spec in specs:
            sample[spec.name] = _draw(rng, spec, ranges.get(spec.name))
        drawn.append(sample)
    described = {s.name: _describe(s, ranges.get(s.name)) for s in specs}
    origin = {"kind": "random", "seed": seed, "samples": samples, "distribution": described}
    why = {s.name: domains[s.name].why for s in specs if s.name in domains}
    if why:
        origin["domains"] = why
    return InputSet(tuple(drawn), origin)


def _draw(rng, spec: TensorSpec, value_range) -> np.ndarray:
    dtype = np.dtype(spec.dtype)
    if dtype.kind == "f":
        low, high = value_range or FLOAT_RANGE
        return rng.uniform(low, high, spec.shape).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, spec.shape).astype(bool)
    low, high = value_range or INT_RANGE
    return rng.integers(int(low), max(int(high), int(low) + 1), spec.shape).astype(dtype)


def _describe(spec: TensorSpec, value_range) -> str:
    kind = np.dtype(spec.dtype).kind
    if kind == "f":
        low, high = value_range or FLOAT_RANGE
        return f"uniform [{low:.6g}, {high:.6g})"
    if kind == "b":
        return "fair coin"
    low, high = value_range or INT_RANGE
    return f"uniform integers [{int(low)}, {max(int(high), int(low) + 1)})"


def clip_range(low: float, high: float) -> tuple[float, float]:
    """The float range to draw from for an input the artifact represents on [low, high]."""
    lo, hi = max(FLOAT_RANGE[0], low), min(FLOAT_RANGE[1], high)
    return (lo, hi) if lo < hi else (low, high)


def load_data(path, specs, *, samples: int = 8, mean=None, std=None, layout: str | None = None) -> InputSet:
    """Samples read from a .npy / .npz file or a folder of images (see the module docstring)."""
    path = Path(path)
    if layout is not None and layout.upper() not in LAYOUTS:
        raise UsageError(f"unknown --data-layout {layout!r}", hint="NCHW or NHWC")
    layout = layout.upper() if layout else None
    if samples < 0:
        raise UsageError(f"--samples must not be negative, got {samples}")
    if not path.exists():
        raise InputError(f"--data {path} does not exist")
    if path.is_dir():
        from deploykit.image_io.folders import load_images

        arrays, _ = load_images(path, specs, mean=mean, std=std, layout=layout, limit=samples)
        kind, split_layout = "images", None  # already in the input's layout
    else:
        if mean is not None or std is not None:
            raise UsageError("--mean and --std apply to a folder of images; arrays are fed as they are")
        arrays = _read_arrays(path, specs)
        kind, split_layout = path.suffix.lower().lstrip("."), layout
    per_input = {s.name: _split(arrays[s.name], s, split_layout, path) for s in specs}
    counts = {name: len(chunks) for name, chunks in per_input.items()}
    if len(set(counts.values())) != 1:
        raise InputError(f"--data {path}: inputs hold different numbers of samples: {counts}")
    total = next(iter(counts.values()))
    used = total if samples == 0 else min(samples, total)
    chosen = tuple({name: per_input[name][i] for name in per_input} for i in range(used))
    return InputSet(chosen, {"kind": kind, "path": str(path), "samples": used, "available": total,
                             "layout": layout, "mean": _listed(mean), "std": _listed(std)})


def _listed(value):
    return None if value is None else [float(v) for v in np.atleast_1d(value)]


def _read_arrays(path: Path, specs) -> dict[str, np.ndarray]:
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
            if len(specs) != 1:
                raise InputError(f"--data {path}: a .npy file feeds a single-input model; this one has "
                                 f"{len(specs)} inputs", hint="use an .npz file with one array per input name")
            return {specs[0].name: array}
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                arrays = {key: archive[key] for key in archive.files}
        else:
            raise InputError(f"--data {path}: expected a .npy or .npz file or a folder of images")
    except ValueError as exc:  # allow_pickle=False refusing object arrays, or a corrupt file
        raise InputError(f"--data {path}: cannot read it as numpy data: {str(exc).splitlines()[0][:200]}") from exc
    return arrays_for_inputs(arrays, specs, f"--data {path}")


def arrays_for_inputs(arrays: dict, specs, label: str) -> dict:
    """Name arrays after the model's inputs: a lone array feeds a lone input, otherwise names must match."""
    if len(specs) == 1 and len(arrays) == 1:
        return {specs[0].name: next(iter(arrays.values()))}
    missing = [s.name for s in specs if s.name not in arrays]
    if missing:
        raise InputError(f"{label} has no array for input(s) {', '.join(missing)}",
                         hint=f"its arrays are: {', '.join(sorted(arrays)) or 'none'}; name them after the model's inputs")
    return arrays


def _split(array: np.ndarray, spec: TensorSpec, layout: str | None, path: Path) -> list[np.ndarray]:
    """One array into samples of the input's shape, transposed to the source layout and cast to its dtype."""
    shape = tuple(spec.shape)
    if layout and spec.layout and layout != spec.layout and array.ndim == 4 == len(shape):
        array = array.transpose(NCHW_TO_NHWC if layout == "NCHW" else NHWC_TO_NCHW)
    want = np.dtype(spec.dtype)
    if array.dtype.kind == "f" and want.kind in "iub":
        raise InputError(f"--data {path}: input {spec.name!r} is {want.name}, the data holds {array.dtype.name}")
    array = array.astype(want, copy=False)
    batch = shape[0] if shape else 1
    if array.shape == shape:
        return [array]
    if array.ndim == len(shape) and array.shape[1:] == shape[1:] and batch and array.shape[0] % batch == 0:
        return [array[i:i + batch] for i in range(0, array.shape[0], batch)]
    if batch == 1 and array.shape == shape[1:]:
        return [array[None]]
    raise InputError(f"--data {path}: input {spec.name!r} has shape {shape}, the data has {array.shape}",
                     hint="give N samples stacked on the batch axis, or check --data-layout")
