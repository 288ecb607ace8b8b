"""What one layer's weights become under each per-layer choice, as float32 values.

Each ``Choice`` rebuilds the values the target stores (int8 / int4 symmetric scales, k-means tables,
fp16 rounding, zeros of magnitude pruning), so running the fp32 artifact with them reproduces the
variant's arithmetic for that layer. ``bits`` prices a choice: stored bytes = elements x bits / 8 plus its
scales or table (``stored_bytes``). Weights are laid out output channels first except TFLite's depthwise
kernels (``axis`` 3), which is why every function takes the output-channel axis.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from deploykit.quantize.lut_plan import palettized

LUT_GROUP = 16  # output channels per table on iOS18: BN folding leaves channels of very different scales


@dataclass(frozen=True)
class Choice:
    name: str
    bits: int
    emulate: Callable[[np.ndarray, int], np.ndarray]  # (weight, output-channel axis) -> stored values as float32
    overhead: Callable[[int, int], int]  # (elements, channels) -> bytes besides the n-bit values

    def stored_bytes(self, elements: int, channels: int) -> int:
        return elements * self.bits // 8 + self.overhead(elements, channels)


def _float32(weight, axis):
    return np.asarray(weight, np.float32)


def _fp16(weight, axis):
    return np.asarray(weight, np.float32).astype(np.float16).astype(np.float32)


def _symmetric(levels: int):
    """Per-channel symmetric integers: scale = max |w| / levels, values rounded half to even and clipped."""

    def emulate(weight, axis):
        moved = np.moveaxis(np.asarray(weight, np.float32), axis, 0)
        flat = moved.reshape(moved.shape[0], -1)
        scale = np.abs(flat).max(axis=1, keepdims=True) / levels
        scale = np.where(scale > 0, scale, 1.0).astype(np.float32)
        rebuilt = np.clip(np.round(flat / scale), -levels - 1, levels) * scale
        return np.moveaxis(rebuilt.reshape(moved.shape), 0, axis).astype(np.float32)

    return emulate


def _blockwise_int4(weight, axis):
    """Core ML int4: a scale per block of 32 input values of each output channel (iOS18 ops)."""
    moved = np.moveaxis(np.asarray(weight, np.float32), axis, 0)
    rows = moved.reshape(moved.shape[0], -1)
    inputs = rows.shape[1]
    if inputs % 32:
        return _fp16(weight, axis)  # coremltools leaves such a weight uncompressed (fp16)
    blocks = rows.reshape(rows.shape[0], inputs // 32, 32)
    scale = np.abs(blocks).max(axis=2, keepdims=True) / 7
    scale = np.where(scale > 0, scale, 1.0)
    rebuilt = (np.clip(np.round(blocks / scale), -8, 7) * scale).reshape(rows.shape)
    return np.moveaxis(rebuilt.reshape(moved.shape), 0, axis).astype(np.float32)


def _lut(bits: int, group: int | None = None):
    """k-means tables (deploykit's own clustering, the one the lut schemes use): one per tensor, or one per
    ``group`` output channels (iOS18's per-grouped-channel tables; a layer whose channels do not divide gets one
    per tensor, as ``group_of`` prices it)."""

    def emulate(weight, axis):
        moved = np.moveaxis(np.asarray(weight, np.float32), axis, 0)
        size = group_of(moved.shape[0], group)
        rebuilt = palettized(moved.reshape(moved.shape[0] // size, -1), 1 << bits, 1).reshape(moved.shape)
        return np.moveaxis(rebuilt, 0, axis).astype(np.float16).astype(np.float32)  # fp16 tables

    return emulate


def group_of(channels: int, group: int | None) -> int:
    return group if group and channels % group == 0 else channels


def _tables(bits: int, group: int | None):
    return lambda elements, channels: (channels // group_of(channels, group)) * (1 << bits) * 2


def _per_channel(scale_bytes: int):
    return lambda elements, channels: channels * scale_bytes


CHOICES: dict[str, Choice] = {c.name: c for c in (
    Choice("fp32", 32, _float32, lambda e, c: 0),
    Choice("fp16", 16, _fp16, lambda e, c: 0),
    Choice("int8", 8, _symmetric(127), _per_channel(4)),
    Choice("int4", 4, _symmetric(7), _per_channel(4)),
    Choice("int4-block", 4, _blockwise_int4, lambda e, c: (e // 32) * 2),
    *(Choice(f"lut{n}", n, _lut(n), _tables(n, None)) for n in (8, 6, 4, 3, 2)),
    *(Choice(f"lut{n}-g{LUT_GROUP}", n, _lut(n, LUT_GROUP), _tables(n, LUT_GROUP)) for n in (8, 6, 4, 3, 2)),
)}

# What each target can store per layer, largest first (bytes per weight; ties in any order). TFLite:
# ai-edge-quantizer recipes per op (float32 kept, float16 casting, weight-only int8 / int4 per channel behind a
# DEQUANTIZE: what the search emulates exactly, in float32 arithmetic). Core ML: op configs of coremltools'
# compression on the fp16 program.
TARGET_CHOICES = {
    "tflite": ("fp32", "fp16", "int8", "int4"),
    "coreml": ("fp16", "lut8", "int8", "lut6", "lut4", "lut3", "lut2"),
}
# iOS18 / macOS15 Core ML: tables per group of channels and int4 per block. Measured on PP-OCRv4's
# recogniser (200 rendered text lines): one lut8 table per tensor costs 30.8 points of agreement, int8 per
# channel 8.2: per-tensor tables spend their entries on the channels with the largest scale.
COREML_IOS18 = ("fp16", f"lut8-g{LUT_GROUP}", "int8", f"lut6-g{LUT_GROUP}", "int4-block", f"lut4-g{LUT_GROUP}",
                f"lut3-g{LUT_GROUP}", f"lut2-g{LUT_GROUP}")


def for_target(target: str, *, ios18: bool = False, allowed: tuple[str, ...] | None = None) -> tuple[Choice, ...]:
    names = list(COREML_IOS18 if (target == "coreml" and ios18) else TARGET_CHOICES[target])
    if allowed:
        names = [n for n in names if n in allowed or n == names[0]]
    return tuple(CHOICES[n] for n in names)
