"""Formatting one value of report.html: escaping (every string from a record comes from untrusted files),
numbers with infinities, sizes in the terminal's units, counts, percentages, ids."""

from __future__ import annotations

import math
import re
from html import escape


def e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def dl(facts, raw=frozenset()) -> str:
    return "<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{v if k in raw else e(v if v not in (None, '') else '-')}</dd>"
                            for k, v in facts) + "</dl>"


def tensor(spec: dict) -> str:
    shape = "x".join("?" if d is None else str(d) for d in spec.get("shape") or [])
    return f"{spec.get('name')} {shape} {spec.get('dtype', '')}".strip() + (f" {spec['layout']}" if spec.get("layout") else "")


def as_float(value) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        value = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}.get(value)
        if value is None:
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def finite(value) -> float | None:
    number = as_float(value)
    return number if number is not None and math.isfinite(number) else None


def number(value, fmt: str) -> str:
    number = as_float(value)
    if number is None:
        return "-"
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    return fmt.format(number)


def size(size) -> str:
    from deploykit.report.units import human_size  # the terminal's units, so the page and the tables agree

    return "-" if size is None else human_size(float(size))


def count(value) -> str:
    if value is None:
        return "-"
    value = int(value)
    for limit, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= limit:
            return f"{value / limit:.2f} {unit} ({value:,})"
    return f"{value:,}"


def percent(value) -> str:
    number = as_float(value)
    return "-" if number is None else f"{number:.1f} %"


def ms(value: float) -> str:
    return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms"


def json_bool(value) -> str:
    return {True: "true", False: "false"}.get(value, "unchecked")


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "model"
