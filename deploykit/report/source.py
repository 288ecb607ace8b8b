"""The source model's inspection for the record and the report, never failing the conversion.

``deploykit.inspection`` counts parameters, mult-adds, the per-layer-type table and peak activation
memory. The report is most useful when something went wrong, so an inspection that cannot run (a format
or op it does not know yet, or the module missing from an older install) is recorded as
``{"unavailable": why}`` and the page says so, while the conversion goes on.
"""

from __future__ import annotations


def inspect_source(source, inputs=None, allow_h5: bool = False) -> dict:
    """``Inspection.to_json()`` of the file ``source``, or ``{"unavailable": why}``. ``inputs``: convert's own
    (``--input`` strings or ``{name: shape}``), so that mult-adds are counted at the size that was converted."""
    try:
        from deploykit.inspection import inspect_model
    except ImportError as exc:
        return {"unavailable": f"deploykit.inspection could not be imported ({exc})"}
    from deploykit.errors import DeployKitError
    from deploykit.noise import capture_output

    options = {"allow_h5": True} if allow_h5 else {}
    try:
        with capture_output():
            return _plain(inspect_model(str(source), inputs=_input_strings(inputs), **options).to_json())
    except DeployKitError as exc:
        return {"unavailable": exc.message + (f" ({exc.hint})" if exc.hint else "")}
    except Exception as exc:  # noqa: BLE001  (an inspection bug must not cost the user the conversion)
        return {"unavailable": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]}


def _input_strings(inputs) -> list[str] | None:
    """``--input`` strings from either form ``convert`` takes (``{None: (1, 3, 224, 224)}`` for a single input)."""
    if not inputs:
        return None
    if isinstance(inputs, dict):
        return [("" if name is None else f"{name}=") + "x".join(str(d) for d in shape) for name, shape in inputs.items()]
    return [str(item) for item in inputs]


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

