"""Pruning schemes: which layers lose which weights, how many, and the record of what the artifact holds.

``sparse50`` / ``sparse75`` / ``sparse90``: magnitude pruning without retraining, so that 50 / 75 / 90 % of
each pruned layer's weights are zero. ``sparse2of4`` (also spelled ``sparse2:4``, Core ML only): the two
smallest of every four weights along the input axis. ``sparseNN+lut4`` / ``sparseNN+int8``: the pruned
layers' non-zero weights then palettized (4-bit k-means tables, Core ML) or stored as int8.

The rule (one for both targets, applied to the artifact's own layers):

- Candidates are the weights of conv / dense layers (TFLite ``CONV_2D``, ``DEPTHWISE_CONV_2D``,
  ``FULLY_CONNECTED``; Core ML ``conv``, ``conv_transpose``, ``linear`` and ``matmul`` with a constant
  operand). Biases, normalization and embedding tables are never pruned.
- Spared: the first conv / dense layer (its few input channels carry the whole input: "the first layer
  is sensitive and cannot be pruned too much"); every weight with fewer elements than the small-tensor
  threshold (``--keep-float small=N``, default 2048, coremltools' own ``weight_threshold``: depthwise
  kernels and small layers hold few bytes and each weight there matters more); what ``--keep-float``
  names (``last``, parts of names). A spared layer is left exactly as the base has it, also in the joint
  schemes (no table, no int8): the scheme touches only what it prunes.
- Every other layer is pruned to the target on its own: its smallest-magnitude weights become zero until
  the layer's zero fraction is the target. Per layer and not one global magnitude threshold, because
  folded batch norms leave layers whose weight scales differ by orders of magnitude: a global threshold
  would empty the small-scale layers and barely touch the others. So the prunable weights reach the
  target exactly, and the record also gives the overall sparsity of all conv / dense weights, which is
  lower by what the spared layers hold.

The record lists each layer as written (name, elements, zeros, sparsity, and why it was spared) with
the totals; the zeros are counted in the artifact itself (TFLite buffers, Core ML's decompressed weights).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from deploykit.core.errors import UsageError

LEVELS = (50, 75, 90)  # percent of zeros in each pruned layer
THEN = ("lut4", "int8")  # what a joint scheme does to the non-zeros
N_M = (2, 4)  # sparse2of4: 2 zeros in every 4 weights along the input axis
N_M_NAME = "sparse2of4"
ALIASES = {"sparse2:4": N_M_NAME, "sparse2-4": N_M_NAME}
NAMES = (*(f"sparse{p}" for p in LEVELS), N_M_NAME, *(f"sparse{p}+{then}" for p in LEVELS for then in THEN))


@dataclass(frozen=True)
class SparseScheme:
    name: str
    sparsity: float  # the zero fraction of each pruned layer
    n_m: tuple[int, int] | None = None  # (zeros, of every m) along the input axis
    then: str | None = None  # "lut4" / "int8": how the non-zeros are stored

    @property
    def pattern(self) -> str:
        if self.n_m:
            return f"{self.n_m[0]}:{self.n_m[1]} along the input axis ({self.n_m[0]} smallest of every {self.n_m[1]} zeroed)"
        return "unstructured (each pruned layer's smallest-magnitude weights)"


def is_sparse(name: str) -> bool:
    return name.startswith("sparse")


def parse(name: str) -> SparseScheme:
    """The scheme a registered name means; any other ``sparse...`` name is a usage error listing the valid ones."""
    name = ALIASES.get(name, name)
    if name not in NAMES:
        raise UsageError(f"unknown sparsity scheme {name!r}", hint=f"sparsity schemes: {', '.join(NAMES)} "
                         "(sparse2:4 is sparse2of4); see docs/quantization.md, 'Pruning and sparsity'")
    if name == N_M_NAME:
        return SparseScheme(name, N_M[0] / N_M[1], n_m=N_M)
    match = re.fullmatch(r"sparse(\d+)(?:\+(\w+))?", name)
    return SparseScheme(name, int(match[1]) / 100, then=match[2])


@dataclass(frozen=True)
class Layer:
    """A conv / dense layer of the artifact whose weight is a constant."""

    name: str  # the layer's name in the artifact (TFLite: its output tensor; Core ML: the op)
    weight: str  # the weight's own name (TFLite tensor, Core ML const)
    elements: int


def plan(layers: Sequence[Layer], kept: Iterable[str], threshold: int) -> dict[str, str | None]:
    """{layer name: None when it is pruned, else why it is spared}, in the artifact's order.

    ``kept``: layer names ``--keep-float`` names (last, parts of names); ``threshold``: the small-tensor size
    (``KeepFloat.small_for``: ``--keep-float small=N``, else 2048 elements for the sparse schemes)."""
    kept = set(kept)
    spared: dict[str, str | None] = {}
    for index, layer in enumerate(layers):
        if index == 0:
            spared[layer.name] = "the first conv / dense layer"
        elif layer.elements < threshold:
            spared[layer.name] = f"small: {layer.elements} elements, under {threshold}"
        elif layer.name in kept:
            spared[layer.name] = "--keep-float"
        else:
            spared[layer.name] = None
    return spared


def prune_magnitude(weight, sparsity: float):
    """``weight`` (an array) with its ``floor(size x sparsity)`` smallest-magnitude values set to zero (exactly
    that many, ties broken by position, so the zero fraction is the target whatever the values)."""
    import numpy as np

    flat = weight.reshape(-1)
    count = int(np.floor(flat.size * sparsity + 1e-9))
    if count == 0:
        return weight.copy()
    order = np.argsort(np.abs(flat), kind="stable")
    pruned = flat.copy()
    pruned[order[:count]] = 0
    return pruned.reshape(weight.shape)


def record(scheme: SparseScheme, layers: Sequence[Layer], spared: dict[str, str | None], zeros: dict[str, int]) -> dict:
    """The ``sparsity`` part of the quantization record: each layer as the artifact holds it, and the totals."""
    rows, pruned_total, pruned_zeros, all_total, all_zeros = [], 0, 0, 0, 0
    for layer in layers:
        count = int(zeros[layer.name])
        row = {"name": layer.name, "elements": layer.elements, "zeros": count,
               "sparsity": round(count / layer.elements, 4) if layer.elements else 0.0}
        if spared.get(layer.name):
            row["spared"] = spared[layer.name]
        else:
            pruned_total, pruned_zeros = pruned_total + layer.elements, pruned_zeros + count
        all_total, all_zeros = all_total + layer.elements, all_zeros + count
        rows.append(row)
    return {
        "pruning": "magnitude, per layer, without retraining",
        "pattern": scheme.pattern,
        "target_sparsity": scheme.sparsity,
        "pruned_layers": sum(1 for layer in layers if not spared.get(layer.name)),
        "spared_layers": sum(1 for layer in layers if spared.get(layer.name)),
        "prunable_sparsity": round(pruned_zeros / pruned_total, 4) if pruned_total else 0.0,
        "overall_sparsity": round(all_zeros / all_total, 4) if all_total else 0.0,
        "overall_rule": "prunable: the pruned layers' weights; overall: every conv / dense weight, spared ones included",
        "layers": rows,
    }


def nothing_to_prune(scheme: str, layers: Sequence[Layer], spared: dict[str, str | None]):
    """The error when the rule spares every layer (a tiny model, or a threshold above every weight)."""
    from deploykit.core.errors import ConversionError

    return ConversionError(f"{scheme}: no layer to prune: the rule spares all {len(layers)} conv / dense weights "
                           f"({'; '.join(f'{n}: {why}' for n, why in list(spared.items())[:3])})",
                           hint="lower the small-tensor threshold with --keep-float small=N (default 2048 elements)")
