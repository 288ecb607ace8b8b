"""The source model's inspection for the record and the report, never failing the conversion.

``deploykit.inspection`` counts parameters, mult-adds, the per-layer-type table and peak activation
memory. The report is most useful when something went wrong, so an inspection that cannot run (a format
or op it does not know yet, or the module missing from an older install) is recorded as
``{"unavailable": why}`` and the page says so, while the conversion goes on.
"""

from __future__ import annotations


def inspect_source(model) -> dict:
    """``Inspection.to_json()`` of ``model`` (the ``SourceModel`` convert loaded, as the file holds it: the
    inspection reads its graph without loading the file again), or ``{"unavailable": why}``."""
    try:
        from deploykit.inspection import inspect_source as inspect_loaded
    except ImportError as exc:
        return {"unavailable": f"deploykit.inspection could not be imported ({exc})"}
    from deploykit.core.errors import DeployKitError
    from deploykit.core.noise import capture_output

    try:
        with capture_output():
            return _plain(inspect_loaded(model).to_json())
    except DeployKitError as exc:
        return {"unavailable": exc.message + (f" ({exc.hint})" if exc.hint else "")}
    except Exception as exc:  # noqa: BLE001  (an inspection bug must not cost the user the conversion)
        return {"unavailable": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]}


def _plain(data: dict) -> dict:
    """``data`` as plain JSON values: the record is written with ``json.dumps``, and a walker may hand over a
    framework's own number type (a torch ``SymInt`` for a traced dimension) where an int belongs."""
    import json

    def plain(value):
        try:
            number = float(value)
        except (TypeError, ValueError):
            return str(value)
        return int(number) if number.is_integer() else number

    return json.loads(json.dumps(data, default=plain))

