"""Running the selected passes on one conversion path, and the per-artifact pass record.

Each record entry is ``{"name", "stage", "by", "items"}``: ``by`` is ``deploykit`` for a pass that
ran here, or the converter that did the same rewrite itself (batch norms the source had and the
artifact no longer has). The last entry is the artifact check (``deploykit.passes.check``).
"""

from __future__ import annotations

from pathlib import Path

from deploykit.formats import coremltools_facade
from deploykit.passes.fold_batchnorm import PassContext
from deploykit.passes.registry import PassSelection


def apply_source_passes(model, target: str, selection: PassSelection, workspace) -> tuple[object, list[dict]]:
    """``model`` after the source-stage passes chosen for (framework, target), and their records."""
    chosen = selection.for_path(model.framework, target, "source")
    key = ("source-passes", tuple(p.name for p in chosen))
    if key not in workspace.products:
        records, current = [], model
        folder = workspace.root / "passes"
        folder.mkdir(exist_ok=True)
        for entry in chosen:
            result = entry.apply(current, PassContext(folder, target))
            current = result.value
            records.append(_record(entry.name, "source", "deploykit", result.items, result.notes))
        workspace.products[key] = (current, records)
    return workspace.products[key]


def apply_tflite_passes(path: Path, framework: str, selection: PassSelection) -> list[dict]:
    """Rewrite the fp32 .tflite at ``path`` in place with the tflite-stage passes."""
    records = []
    data = path.read_bytes()
    for entry in selection.for_path(framework, "tflite", "tflite"):
        result = entry.apply(data)
        data = result.value
        records.append(_record(entry.name, "tflite", "deploykit", result.items, result.notes))
    path.write_bytes(data)
    return records


def coreml_pipeline(framework: str, selection: PassSelection):
    """A coremltools PassPipeline with the coreml-stage passes added, or None when none are chosen."""
    chosen = selection.for_path(framework, "coreml", "coreml")
    if not chosen:
        return None, []
    ct = coremltools_facade.package()
    pipeline = ct.PassPipeline.DEFAULT
    for entry in chosen:
        pipeline = entry.apply(pipeline).value
    return pipeline, [entry.name for entry in chosen]


def coreml_records(names: list[str]) -> list[dict]:
    """Records of the MIL passes that ran in the last coremltools.convert (items they logged)."""
    logs = _coreml_logs()
    return [_record(name, "coreml", "deploykit", tuple(logs[name]) if name in logs else ()) for name in names]


def clear_coreml_logs() -> None:
    for log in _coreml_logs().values():
        log.clear()


def _coreml_logs() -> dict:
    from deploykit.passes import coreml_exact_reciprocal, coreml_fuse_activation, coreml_names

    return {"fuse_activation": coreml_fuse_activation.LAST_ITEMS, "shorten_names": coreml_names.LAST_ITEMS,
            "exact_reciprocal": coreml_exact_reciprocal.LAST_ITEMS}


def converter_records(sites, records: list[dict], check, converter: str) -> list[dict]:
    """What the converter folded itself: foldable source batch norms not folded here and not left in the artifact."""
    folded_here = {item for r in records if r["name"] == "fold_batchnorm" for item in r["items"]}
    rest = [s.label for s in sites if s.foldable and s.label not in folded_here]
    left = len(check.unfolded_batchnorms)
    entries = []
    if rest:
        items = tuple(rest) if not left else ()
        notes = () if not left else (f"{len(rest) - left} of {len(rest)} foldable batch norms folded; {left} left",)
        entries.append(_record("fold_batchnorm", "conversion", converter, items, notes, count=max(len(rest) - left, 0)))
    skipped = [f"{s.name}: {s.reason}" for s in sites if not s.foldable]
    if skipped:
        entries.append(_record("fold_batchnorm", "source", "not foldable", tuple(skipped)))
    return entries


def _record(name, stage, by, items=(), notes=(), count=None) -> dict:
    entry = {"name": name, "stage": stage, "by": by, "count": len(items) if count is None else count, "items": list(items)}
    if notes:
        entry["notes"] = list(notes)
    return entry
