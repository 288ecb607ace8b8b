"""Where each layer's look-up tables go: a size-budgeted choice per layer for the lut schemes.

One 16-entry table per weight tensor (coremltools' default) loses 1 to 3 points of top-1 on the
trained digits model at lut4, varying with the training run (docs/quantization.md): batch norm folded
into the weights leaves output channels whose scales differ by orders of magnitude, and one shared
table spends its entries on the large channels. Measured per layer, a per-tensor table leaves every
channel ~20 dB above its error; the small layers (first conv, depthwise) then cost the most accuracy
while holding the fewest bytes.

So each conv / linear weight gets one of: one table for the tensor; one per group of 16, 4 or 1
output channels (iOS18 / macOS15: ``per_grouped_channel``); or fp16 (a 3x3 depthwise channel has 9
weights: 18 bytes in fp16 against 4.5 bytes of indices plus a 32-byte table). Starting from one
table per tensor, a greedy pass repeatedly takes the step that removes the most error per extra
byte until the extra bytes reach ``budget`` (a fraction of the bytes of the n-bit indices; default
8 %, which keeps MobileNetV2 lut4 under the 1.15x size goal), and at least ``floor_bytes`` (4 KB by
default): on a 33k-parameter model 8 % is 1.3 KB, which left lut4 3 points down on one training run of
five, while 4 KB kept all five within 0.7 points; no app notices 4 KB, and on MobileNetV2 8 % is 140 KB. The error of a layer is the mean over
its output channels of |W_c - W_c'|^2 / |W_c|^2: relative per channel, because folded scales make
absolute errors incomparable between channels. Clustering is a deterministic 1-D k-means (Lloyd's
algorithm from quantile starts), the same function that then writes the tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TABLE_ENTRY_BYTES = 2  # fp16 table entries
FLOAT = 0  # the "group size" meaning: left in fp16
FLOOR_BYTES = 4096  # the least a non-zero budget may spend (see the module docstring)
GROUPS = (16, 4, 1)


@dataclass(frozen=True)
class LayerWeight:
    name: str  # the conv / linear op's name (what coremltools' op_name_configs takes)
    values: np.ndarray  # output channels first


@dataclass(frozen=True)
class TablePlan:
    groups: dict  # op name -> output channels per table (all of them: one table for the tensor), or FLOAT
    channels: dict  # op name -> output channels
    extra_bytes: int  # beyond one table per tensor
    budget_bytes: int

    def describe(self) -> dict:
        counts: dict[str, int] = {}
        for name, group in self.groups.items():
            key = "fp16" if group == FLOAT else "one per tensor" if group == self.channels[name] else f"one per {group} channels"
            counts[key] = counts.get(key, 0) + 1
        return {"tables": counts, "extra_bytes": self.extra_bytes, "budget_bytes": self.budget_bytes,
                "kept_fp16": sorted(n for n, g in self.groups.items() if g == FLOAT)}


def kmeans_1d(values: np.ndarray, clusters: int, iterations: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """(table of ``clusters`` sorted values, index of each value) for the rows of ``values`` (2-D:
    one clustering per row, all rows at once). Rows with fewer distinct values repeat their last entry."""
    rows = np.asarray(values, np.float64).reshape(values.shape[0], -1)
    ordered = np.sort(rows, axis=1)
    low, high = ordered[:, :1], ordered[:, -1:]
    span = np.maximum(high - low, 1e-30)
    row_offset = np.arange(rows.shape[0])[:, None] * 4.0  # rows as disjoint ranges [4r, 4r + 1] of one line

    def assign(points, table):
        middles = (table[:, 1:] + table[:, :-1]) / 2
        line = ((middles - low) / span + row_offset).ravel()
        where = np.searchsorted(line, ((points - low) / span + row_offset).ravel(), side="left")
        return where.reshape(points.shape) - (np.arange(rows.shape[0]) * (clusters - 1))[:, None]

    centers = _companded_starts(ordered, clusters, row_offset)

    for _ in range(iterations):
        index = assign(ordered, centers)
        flat = index + np.arange(rows.shape[0])[:, None] * clusters
        counts = np.bincount(flat.ravel(), minlength=rows.shape[0] * clusters).reshape(-1, clusters)
        sums = np.bincount(flat.ravel(), ordered.ravel(), minlength=rows.shape[0] * clusters).reshape(-1, clusters)
        updated = np.sort(np.where(counts > 0, sums / np.maximum(counts, 1), centers), axis=1)
        if np.array_equal(updated, centers):
            break
        centers = updated
    return centers, assign(rows, centers)


def _companded_starts(ordered: np.ndarray, clusters: int, row_offset: np.ndarray) -> np.ndarray:
    """Start values at quantiles of density^(1/3), where optimal quantizer levels lie (Panter-Dite).
    Equal-count quantiles crowd the dense middle and Lloyd's algorithm stalls there: measured on
    Gaussian rows of 320 values, 19.6 dB against 21.0 dB from these starts."""
    n = ordered.shape[1]
    half = max(1, n // 32)
    positions = np.arange(n)
    spacing = ordered[:, np.minimum(positions + half, n - 1)] - ordered[:, np.maximum(positions - half, 0)]
    mass = np.maximum(spacing, 1e-30) ** (2 / 3)  # per value: density^(1/3) / density, density ~ 1 / spacing
    cumulative = np.cumsum(mass, axis=1)
    cumulative /= cumulative[:, -1:]
    targets = (np.arange(clusters) + 0.5) / clusters
    where = np.searchsorted((cumulative + row_offset).ravel(), (targets[None, :] + row_offset).ravel())
    where = where.reshape(-1, clusters) - np.arange(ordered.shape[0])[:, None] * n
    return np.take_along_axis(ordered, np.clip(where, 0, n - 1), axis=1)


def palettized(values: np.ndarray, clusters: int, group: int) -> np.ndarray:
    """``values`` (output channels first) as the tables of ``group`` channels each would rebuild them."""
    channels = values.shape[0]
    grouped = np.asarray(values, np.float64).reshape(channels // group, -1)
    table, index = kmeans_1d(grouped, clusters)
    return np.take_along_axis(table, index, axis=1).reshape(values.shape)


def relative_error(values: np.ndarray, rebuilt: np.ndarray) -> float:
    rows = np.asarray(values, np.float64).reshape(values.shape[0], -1)
    diff = rows - np.asarray(rebuilt, np.float64).reshape(rows.shape)
    return float(np.mean((diff ** 2).sum(1) / np.maximum((rows ** 2).sum(1), 1e-30)))


def plan_tables(layers: list[LayerWeight], bits: int, budget: float, grouped: bool,
                floor_bytes: int = FLOOR_BYTES) -> TablePlan:
    """Choose per layer: one table, tables per channel group (``grouped``: iOS18), or fp16."""
    clusters = 1 << bits
    table_bytes = clusters * TABLE_ENTRY_BYTES
    index_bytes = sum(layer.values.size for layer in layers) * bits / 8
    budget_bytes = max(int(budget * index_bytes), floor_bytes) if budget > 0 else 0

    def size(layer: LayerWeight, group: int) -> float:
        if group == FLOAT:
            return layer.values.size * TABLE_ENTRY_BYTES
        return layer.values.size * bits / 8 + table_bytes * (layer.values.shape[0] // group)

    options: dict[str, dict[int, float]] = {}
    for layer in layers:
        channels = layer.values.shape[0]
        candidates = [channels] + [g for g in (GROUPS if grouped else ()) if g < channels and channels % g == 0]
        options[layer.name] = {g: relative_error(layer.values, palettized(layer.values, clusters, g)) for g in candidates}
        options[layer.name][FLOAT] = 0.0
    chosen = {layer.name: layer.values.shape[0] for layer in layers}
    by_name = {layer.name: layer for layer in layers}
    spent = 0.0
    while True:
        best = None
        for name, errors in options.items():
            current = chosen[name]
            for group, error in errors.items():
                gain = errors[current] - error
                cost = size(by_name[name], group) - size(by_name[name], current)
                if gain <= 0 or spent + cost > budget_bytes:
                    continue
                value = gain / max(cost, 1e-9)
                if best is None or value > best[0]:
                    best = (value, name, group, cost)
        if best is None:
            break
        _, name, group, cost = best
        chosen[name], spent = group, spent + cost
    return TablePlan(chosen, {layer.name: layer.values.shape[0] for layer in layers}, int(spent), budget_bytes)


def lut_function(bits: int):
    """coremltools' ``mode="custom"`` callback: the same k-means, for one tensor or one channel group."""

    def tables(values: np.ndarray):
        table, index = kmeans_1d(values.reshape(1, -1), 1 << bits)
        return table[0].astype(values.dtype), index[0].astype(np.uint8)

    return tables
