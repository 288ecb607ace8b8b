"""``ImageInput``: what one image input's preprocessing is, parsed and checked against the model."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from deploykit.core.errors import UsageError
from deploykit.image_io.consistency import check_statistics

COLORS = ("RGB", "BGR", "GRAY")
RESIZES = ("stretch", "shorter-side", "letterbox")
INTERPOLATIONS = ("bilinear", "nearest", "bicubic")
PIXEL_RANGES = {"0-255": 1.0, "0-1": 255.0}  # range -> what raw 0-255 pixels are divided by first
PIXEL_DTYPES = ("uint8", "float32")


@dataclass(frozen=True)
class ImageInput:
    """The source input ``name`` receives ``(pixels / divisor - mean) / std``, channels in ``color`` order.

    ``dtype`` is the TFLite artifact's input: uint8 pixels with the normalization in the graph, or
    the source's float tensor (normalization left to the app, carried as metadata)."""

    name: str
    color: str = "RGB"
    pixel_range: str = "0-1"
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    dtype: str = "uint8"
    # How an app brings a picture of any size to the input's size (``image_io.resize``); the artifact
    # itself takes pixels of that size, so these describe the app's side: the manifest, predict, templates.
    resize: str = "stretch"
    crop_fraction: float = 1.0  # shorter-side: the centre crop's share of the resized shorter side (0.875 = 256 -> 224)
    interpolation: str = "bilinear"
    fill: int = 0  # letterbox: the value of the padding, 0-255 in every channel

    @property
    def crop(self) -> str:
        return "center" if self.resize == "shorter-side" else "none"

    @property
    def channels(self) -> int:
        return 1 if self.color == "GRAY" else 3

    @property
    def divisor(self) -> float:
        return PIXEL_RANGES[self.pixel_range]

    def per_channel(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) as float32 arrays of one value per channel."""
        return (np.broadcast_to(np.asarray(self.mean, np.float32), (self.channels,)).copy(),
                np.broadcast_to(np.asarray(self.std, np.float32), (self.channels,)).copy())

    def scale_and_offset(self) -> tuple[np.ndarray, np.ndarray]:
        """Per channel, ``source = pixels * scale + offset``: the preamble's two constants."""
        mean, std = self.per_channel()
        return (1.0 / (self.divisor * std)).astype(np.float32), (-mean / std).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {"color": self.color, "pixel_range": self.pixel_range, "mean": list(self.mean), "std": list(self.std),
                "dtype": self.dtype, "resize": self.resize, "crop": self.crop, "crop_fraction": self.crop_fraction,
                "interpolation": self.interpolation, "fill": self.fill}

    @classmethod
    def from_json(cls, name: str, data: dict[str, Any]) -> "ImageInput":
        return cls(name, data.get("color", "RGB"), data.get("pixel_range", "0-1"), tuple(data.get("mean", (0.0,))),
                   tuple(data.get("std", (1.0,))), data.get("dtype", "uint8"), data.get("resize", "stretch"),
                   float(data.get("crop_fraction", 1.0)), data.get("interpolation", "bilinear"), int(data.get("fill", 0)))


@dataclass(frozen=True)
class ImageInputOptions:
    """The ``--image-input`` flags as given, before the model is loaded; every named input gets the same
    preprocessing (one image input is the common case; a model whose image inputs differ is converted
    from the Python API with one ``ImageInput`` each)."""

    names: tuple[str, ...] = ()
    color: str = "RGB"
    pixel_range: str = "0-1"
    mean: object = None  # a float or one per channel
    std: object = None
    dtype: str = "uint8"
    resize: str = "stretch"
    crop_fraction: float = 1.0
    interpolation: str = "bilinear"
    fill: int = 0


def parse_image_inputs(options: ImageInputOptions | None, specs) -> tuple[ImageInput, ...]:
    """``options``' names checked against the model's inputs ``specs``; the other fields apply to each."""
    if options is None or not options.names:
        return ()
    names, color, pixel_range, mean, std = options.names, options.color, options.pixel_range, options.mean, options.std
    color, dtype = color.upper(), options.dtype.lower()
    if color not in COLORS:
        raise UsageError(f"unknown --color {color!r}", hint=f"one of {', '.join(COLORS)}")
    if pixel_range not in PIXEL_RANGES:
        raise UsageError(f"unknown --pixel-range {pixel_range!r}", hint="0-255 (the model divides nothing) or 0-1 (pixels / 255)")
    if dtype not in PIXEL_DTYPES:
        raise UsageError(f"unknown --image-input-dtype {dtype!r}", hint="uint8 or float32")
    if options.resize not in RESIZES:
        raise UsageError(f"unknown --resize {options.resize!r}", hint=f"one of {', '.join(RESIZES)}")
    if options.interpolation not in INTERPOLATIONS:
        raise UsageError(f"unknown --interpolation {options.interpolation!r}", hint=f"one of {', '.join(INTERPOLATIONS)}")
    if not 0.0 < options.crop_fraction <= 1.0:
        raise UsageError(f"--crop-fraction must be in (0, 1], got {options.crop_fraction}")
    if options.crop_fraction != 1.0 and options.resize != "shorter-side":
        raise UsageError("--crop-fraction applies to --resize shorter-side only")
    if not 0 <= options.fill <= 255:
        raise UsageError(f"--letterbox-fill must be 0-255, got {options.fill}")
    channels = 1 if color == "GRAY" else 3
    mean_v, std_v = _values(mean, 0.0, channels, "--mean"), _values(std, 1.0, channels, "--std")
    if any(v == 0 for v in std_v):
        raise UsageError("--std must not contain zero")
    check_statistics(pixel_range, mean_v, std_v)
    by_name = {s.name: s for s in specs}
    chosen = []
    for name in dict.fromkeys(names):
        spec = by_name.get(name)
        if spec is None:
            raise UsageError(f"--image-input {name!r}: the model has no such input",
                             hint=f"its inputs are: {', '.join(by_name)}")
        _check_shape(spec, channels)
        chosen.append(ImageInput(name, color, pixel_range, mean_v, std_v, dtype, options.resize, options.crop_fraction,
                                 options.interpolation, options.fill))
    return tuple(chosen)


def image_geometry(spec) -> tuple[int, int, int, str]:
    """(height, width, channels, layout) of a rank-4 image tensor spec."""
    _, a, b, c = spec.shape
    layout = spec.layout or ("NCHW" if a in (1, 3) else "NHWC")
    return (b, c, a, layout) if layout == "NCHW" else (a, b, c, layout)


def _check_shape(spec, channels: int) -> None:
    if len(spec.shape) != 4 or not spec.is_static:
        raise UsageError(f"--image-input {spec.name!r}: an image input is a rank-4 tensor of fixed size; this one is "
                         f"{'x'.join(map(str, spec.shape))}", hint="fix its size with --input NAME=1x3xHxW")
    if np.dtype(spec.dtype).kind != "f":
        raise UsageError(f"--image-input {spec.name!r} is {spec.dtype}: the source must take a float tensor")
    height, width, have, layout = image_geometry(spec)
    if have != channels:
        raise UsageError(f"--image-input {spec.name!r} has {have} channels ({layout}); --color "
                         f"{'GRAY' if channels == 1 else 'RGB/BGR'} needs {channels}",
                         hint="use --color GRAY for one channel, RGB or BGR for three")


def _values(value, default: float, channels: int, flag: str) -> tuple[float, ...]:
    if value is None:
        return (default,) * channels
    values = tuple(float(v) for v in np.atleast_1d(value))
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise UsageError(f"{flag} has {len(values)} values; the image has {channels} channel(s)")
    return values
