"""Input and output names every runtime and app accepts, and pairing them back to the source's names.

Core ML feature names must be identifiers (PaddleOCR's ``sigmoid_0.tmp_0`` crashes ``ct.convert``),
and the Swift / Kotlin code deploykit renders uses TFLite signature keys as identifiers too. One rule
for both targets, so an app sees the same names on iOS and Android: every character outside
``[A-Za-z0-9_]`` becomes ``_``, a leading digit (or an empty name) gets a ``t_`` prefix, and a clash
gets ``_2``, ``_3``, ... Names that already are identifiers are left alone. The rule is deterministic,
so parity can pair a source tensor with its artifact tensor by name without any side table; the
record and the bundle manifest keep the original name beside the artifact's.
"""

from __future__ import annotations

import re
from typing import Iterable

_BAD = re.compile(r"[^A-Za-z0-9_]")


def feature_name(name: str) -> str:
    cleaned = _BAD.sub("_", name)
    if not cleaned or cleaned[0].isdigit():
        cleaned = "t_" + cleaned
    return cleaned


def feature_names(names: Iterable[str]) -> list[str]:
    """Identifier-safe names in the same order, unique among themselves."""
    result: list[str] = []
    taken: set[str] = set()
    for name in names:
        candidate = base = feature_name(name)
        suffix = 2
        while candidate in taken:
            candidate = f"{base}_{suffix}"
            suffix += 1
        taken.add(candidate)
        result.append(candidate)
    return result


def renamed(specs) -> dict[str, str]:
    """Source name -> artifact name for the tensors (inputs, or outputs) of one model."""
    names = [s.name for s in specs]
    return dict(zip(names, feature_names(names)))
