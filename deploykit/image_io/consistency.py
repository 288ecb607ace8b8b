"""Contradictions between ``--image-input`` flags and each other or the model, caught before converting.

An app-ready input computes ``(pixels / divisor - mean) / std``. Flags that contradict each other do
not fail anywhere downstream: the artifact converts, parity compares it with the same wrong
preprocessing applied to the source, and the app then feeds a model inputs near -127 or 1000. So
these are usage errors (exit 2), each naming the fix:

- a ``--mean`` outside ``--pixel-range`` (``--mean 127.5`` with ``0-1``: the pixels are in [0, 1], the
  mean is in 0-255 units): the usual slip when copying ``(x - 127.5) / 127.5`` or ImageNet's
  ``123.675``;
- ImageNet's 0-1 statistics with ``--pixel-range 0-255`` (every mean in [0, 1] and every std below 1:
  ``0.485 / 0.229`` applied to 0-255 pixels gives inputs up to ~1000);
- a ``--color`` that the model contradicts: an input named for its channel order (``image_rgb``,
  ``bgr_input``: "rgb" / "bgr" as a word of the name) or ONNX metadata that states it
  (``metadata_props`` whose key names the colour or channel order and whose value is RGB or BGR).
  A name is the model author's statement of what the tensor holds; rather than guess which side is
  wrong, deploykit stops and says both. GRAY is never contradicted by a name (one channel is checked
  by shape already).

A ``--std`` above 1 with ``0-1`` is legal (it shrinks the range) and not refused.
"""

from __future__ import annotations

import re

from deploykit.core.errors import UsageError

_COLOR_WORD = re.compile(r"(?:^|[^a-z])(rgb|bgr)(?:$|[^a-z])")
_METADATA_KEYS = ("color", "colour", "channel_order", "image_format", "pixel_format")


def check_statistics(pixel_range: str, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
    """Refuse a mean/std pair that cannot be meant with ``pixel_range``."""
    listed = ",".join(f"{v:g}" for v in dict.fromkeys(mean))
    if pixel_range == "0-1" and any(abs(m) > 1 for m in mean):
        scaled = ",".join(f"{v / 255:.4g}" for v in dict.fromkeys(mean))
        stds = ",".join(f"{v / 255:.4g}" for v in dict.fromkeys(std))
        raise UsageError(f"--mean {listed} is outside --pixel-range 0-1: the model would receive pixels / 255 minus "
                         f"{listed}, values near -{max(abs(m) for m in mean):g}",
                         hint=f"pass --pixel-range 0-255 to keep these statistics in pixel units, or "
                              f"--mean {scaled} --std {stds} for the same preprocessing in 0-1 units")
    if pixel_range == "0-255" and all(0 <= m <= 1 for m in mean) and any(m > 0 for m in mean) \
            and all(s < 1 for s in std):
        worst = max((255 - m) / s for m, s in zip(mean, std))
        raise UsageError(f"--mean {listed} --std {','.join(f'{v:g}' for v in dict.fromkeys(std))} are 0-1 statistics "
                         f"but --pixel-range is 0-255: the model would receive values up to {worst:.0f}",
                         hint="pass --pixel-range 0-1 (the default), or give --mean and --std in pixel units "
                              "(multiplied by 255)")


def check_color(model, name: str, color: str) -> None:
    """Refuse ``--color`` when the model's input name or ONNX metadata says the other channel order."""
    if color == "GRAY":
        return
    for stated, why in _stated_colors(model, name):
        if stated != color:
            raise UsageError(f"--color {color} contradicts the model: {why}",
                             hint=f"pass --color {stated}; if the model really takes {color} pictures, its "
                                  f"{'name' if 'named' in why else 'metadata'} is wrong: fix it in the model file")


def _stated_colors(model, name: str) -> list[tuple[str, str]]:
    stated = []
    word = _COLOR_WORD.search(name.lower())
    if word:
        stated.append((word.group(1).upper(), f"its input is named {name!r}"))
    if model.framework == "onnx" and model.handle is not None:
        for prop in getattr(model.handle, "metadata_props", ()):
            value = prop.value.strip().upper()
            if any(key in prop.key.lower() for key in _METADATA_KEYS) and value in ("RGB", "BGR"):
                stated.append((value, f"its ONNX metadata says {prop.key}={prop.value}"))
    return stated
